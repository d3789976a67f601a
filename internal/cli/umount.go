package cli

import (
	"strings"

	"mounttop/inspect"
	"mounttop/unmount"
)

// Umount is `mounttop umount`'s request, checked: the mode, the target
// (a PATH or a unique ID) and the plan's settings.
type Umount struct {
	Path     string          // the PATH given, or ""
	ID       inspect.MountID // --id, or 0
	Rollback bool            // --rollback-fence: an act of its own (RollbackFence)
	DryRun   bool
	Yes      bool
	JSON     bool
	Journal  string
	// Plan is the plan to prepare, Target left for the caller to fill.
	Plan unmount.Plan
}

// modes are umount's four mode flags.
var modes = []struct {
	flag string
	mode unmount.Mode
}{{"lazy", unmount.ModeLazy}, {"expire", unmount.ModeExpire}, {"force", unmount.ModeForce}, {"staged", unmount.ModeStaged}}

// policies are --revoke's values.
var policies = map[string]unmount.Policy{"close": unmount.PolicyClose, "close-plain": unmount.PolicyClosePlain, "signal": unmount.PolicySignal}

// UmountFrom checks umount's parsed arguments and builds the request: one
// mode, one target, and only the flags that go with that mode. Every
// refusal is a UsageError that names the flags; nothing has been touched.
func UmountFrom(p *Parsed) (*Umount, error) {
	u := &Umount{ID: inspect.MountID(p.Uint("id")), DryRun: p.Bool("dry-run"), Yes: p.Bool("yes"), JSON: p.Bool("json"), Journal: p.String("journal")}
	if p.Bool("rollback-fence") {
		return u, rollbackFrom(p, u)
	}
	mode, err := modeFrom(p)
	if err != nil {
		return nil, err
	}
	if err := targetFrom(p, u); err != nil {
		return nil, err
	}
	if err := checkCombination(p, mode); err != nil {
		return nil, err
	}
	timeout := p.Duration("timeout")
	if mode == unmount.ModeExpire && !p.Given("timeout") {
		timeout = 0 // expire-when-idle waits until the mount goes or Ctrl-C
	}
	u.Plan = unmount.Plan{Mode: mode, Policy: policies[p.String("revoke")], Grace: p.Duration("grace"),
		Interval: p.Duration("interval"), Timeout: timeout, CallTimeout: p.Duration("call-timeout"),
		Recursive: p.Bool("recursive"), ExpireWhenIdle: p.Bool("expire-when-idle"),
		Release: p.Bool("release"), ReleaseHost: p.Bool("release-host"), AllowSystem: p.Bool("allow-system-mount")}
	return u, nil
}

// modeFrom turns the four mode flags into one Mode, refusing none or
// several.
func modeFrom(p *Parsed) (unmount.Mode, error) {
	var set []string
	var m unmount.Mode
	for _, c := range modes {
		if p.Bool(c.flag) {
			set = append(set, "--"+c.flag)
			m = c.mode
		}
	}
	switch len(set) {
	case 0:
		return 0, Usagef("umount: choose one of --lazy, --expire, --force, --staged (see mounttop umount --help)")
	case 1:
		return m, nil
	}
	return 0, Usagef("umount: one mode at a time, not %s", strings.Join(set, " and "))
}

// targetFrom takes the one PATH or the --id.
func targetFrom(p *Parsed, u *Umount) error {
	switch {
	case p.Given("id") && len(p.Pos) > 0:
		return Usagef("umount: give a PATH or --id, not both")
	case p.Given("id") && u.ID == 0:
		return Usagef("umount: --id needs a unique mount ID (mounttop list --json shows them)")
	case len(p.Pos) == 0 && !p.Given("id"):
		return Usagef("umount: which mount? give its PATH (or --id UNIQUE_ID)")
	case len(p.Pos) > 1:
		return Usagef("umount: one PATH at a time (got %d)", len(p.Pos))
	case len(p.Pos) == 1:
		u.Path = p.Pos[0]
	}
	return nil
}

// checkCombination refuses a flag given with a mode it does not go with,
// and durations out of range.
func checkCombination(p *Parsed, mode unmount.Mode) error {
	staged := mode == unmount.ModeStaged
	switch {
	case p.Bool("release") && !staged:
		return Usagef("umount: --release goes with --staged (the staged run releases after revoking)")
	case p.Bool("release-host") && !p.Bool("release"):
		return Usagef("umount: --release-host goes with --release")
	case !staged && (p.Given("revoke") || p.Given("grace")):
		return Usagef("umount: --revoke and --grace apply to --staged only")
	case p.Bool("expire-when-idle") && mode != unmount.ModeExpire:
		return Usagef("umount: --expire-when-idle goes with --expire")
	case p.Duration("interval") <= 0 || p.Duration("grace") <= 0 || p.Duration("timeout") < 0 || p.Duration("call-timeout") <= 0:
		return Usagef("umount: --interval, --grace and --call-timeout must be positive, --timeout not negative")
	case !staged && p.Given("call-timeout"):
		return Usagef("umount: --call-timeout applies to --staged only")
	}
	return nil
}

// rollbackFrom checks `umount --rollback-fence PATH`: an act of its own,
// with --dry-run, --yes and --journal only.
func rollbackFrom(p *Parsed, u *Umount) error {
	u.Rollback = true
	switch {
	case p.Bool("lazy") || p.Bool("expire") || p.Bool("force") || p.Bool("staged"):
		return Usagef("umount: --rollback-fence is an act of its own, not one with --lazy, --expire, --force or --staged")
	case p.Given("id"):
		return Usagef("umount: --rollback-fence takes the fenced PATH, not --id")
	case !p.GivenOnly("rollback-fence", "dry-run", "yes", "journal"):
		return Usagef("umount: --rollback-fence goes with --dry-run, --yes and --journal only")
	case len(p.Pos) != 1:
		return Usagef("umount: --rollback-fence needs the one PATH the fence covers (mounttop list names it)")
	}
	u.Path = p.Pos[0]
	return nil
}
