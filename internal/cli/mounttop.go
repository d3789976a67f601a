package cli

import (
	"time"

	"mounttop/ui"
	"mounttop/unmount"
)

// Exit codes shared by every subcommand (EXIT STATUS).
const (
	ExitOK        = 0
	ExitFailed    = 1
	ExitUsage     = 2 // bad usage or refused input: nothing was changed
	ExitMarked    = 3 // umount --expire marked the mount, not yet unmounted
	ExitAbandoned = 4 // umount gave up waiting at --timeout plus 5s
)

// MinInterval is the shortest refresh interval the view accepts.
const MinInterval = 100 * time.Millisecond

// Shared flags.
var (
	flagProc = Flag{Name: "proc", Kind: String, Arg: "DIR", Default: "/proc", Complete: CompleteDir,
		Help: "the proc filesystem to read (a fixture tree, or another namespace's /proc)"}
	flagJSON = Flag{Name: "json", Kind: Bool,
		Help: "print JSON (names carried exactly; invalid UTF-8 as \\udcXX); the fields are in JSON FIELDS of mounttop(1)"}
	flagScanTimeout = Flag{Name: "timeout", Kind: Duration, Arg: "D", Default: "10s",
		Help: "give up on the scan after this long (partial results are reported)"}
	flagJournal = Flag{Name: "journal", Kind: String, Arg: "PATH|-", Complete: CompleteFile,
		Help: "append every unmount action to the journal at PATH, - for none (default /var/log/mounttop/journal.jsonl for root, $XDG_STATE_HOME/mounttop/journal.jsonl otherwise); the expiry book expire.json goes beside it"}
	flagInterval = Flag{Name: "interval", Kind: Duration, Arg: "D", Default: "2s",
		Help: "refresh the view in the background every D (at least 100ms)"}
	flagVersion = Flag{Name: "version", Kind: Bool, Help: "print the version, the build and the kernel features found, and exit"}
	argMount    = Arg{Name: "PATH", Complete: CompleteMounts,
		Help: "a mount point, looked up in the mount table and never walked (so it cannot clear an expiry mark); no component of it may be a symbolic link"}
)

// Mounttop is mounttop's command line: every command, flag, exit code
// and key, with the text --help, the man page and the completions show.
// docs are the JSON documents the commands print (their types live with
// their renderers).
func Mounttop(docs ...JSONDoc) *Program {
	var keys []KeyGroup
	for _, g := range ui.DefaultKeyHelp() {
		kg := KeyGroup{Name: g.Name}
		for _, k := range g.Keys {
			kg.Keys = append(kg.Keys, Key{k.Keys, k.Help})
		}
		keys = append(keys, kg)
	}
	return &Program{
		Name:  "mounttop",
		Brief: "show who holds each mount, and get it off the system",
		Root: Command{
			Brief:    "the interactive view",
			Synopsis: []string{"[--interval D] [--proc DIR] [--journal PATH|-] [PATH]"},
			Description: []string{
				"mounttop shows the mount tree and, for each mount, who holds it and how: processes with open fds (and their access mode), cwd and root (per thread), executables, memory mappings and file locks, plus the holders fuser and lsof never show: copies of the mount in other mount namespaces, overlays using a directory on it as a layer, loop devices and swap files backed by it, io_uring registered files, binfmt_misc interpreters, submounts, and mounts that were lazily unmounted but are still alive.",
				"It unmounts: lazy (MNT_DETACH), expire (MNT_EXPIRE, the two-step), force (MNT_FORCE), or a staged forced unmount modelled on the fumount kernel patch: fence new opens, revoke the existing users (their fds give EBADF, their mappings SIGSEGV, they keep running), drain every interval until nothing holds it, then unmount for real. After every unmount it says whether the filesystem itself is released or what still keeps it in use.",
				"Without a command, mounttop runs the interactive view: the mount tree above, the holders of the selected mount below, a live progress pane while an unmount runs. Every unmount asks first, in a dialog that starts on No. The view refreshes in the background, never freezes on a hung filesystem, and restores the terminal on exit, on a panic and on SIGTERM or SIGHUP (a running unmount is cancelled and rolled back first). PATH opens the view on that mount.",
			},
			Flags: []Flag{flagInterval, flagProc, flagJournal, flagVersion},
			Args:  []Arg{{Name: "PATH", Complete: CompleteMounts, Help: "open the view with the mount at (or containing) PATH selected; looked up in the mount table, never walked"}},
		},
		Commands: []Command{
			{
				Name:     "list",
				Brief:    "the mount tree, one line per mount, with holder counts",
				Synopsis: []string{"[--json] [--proc DIR] [--timeout D]"},
				Description: []string{
					"The mount tree of this mount namespace, like findmnt, one line per mount, with the number of processes holding each. Walks no mount point: MNT_EXPIRE marks survive. The first line names the namespace and whether it is the host's (pid 1's).",
					"A mount no path leads to (shadowed by a later mount over it or over a directory above it) is marked hidden: reach it by its unique ID (--id). AUTOMOUNT says what mounts it again on access and when it expires by itself: autofs (with its timeout), a systemd automount unit, the kernel (NFS, AFS, CIFS submounts), or \"trigger\" for an autofs trigger mount itself. A fence a killed run left is listed last, with the command that rolls it back.",
				},
				Flags: []Flag{flagJSON, flagProc, flagScanTimeout},
			},
			{
				Name:     "holders",
				Brief:    "who holds the mount at PATH, and how",
				Synopsis: []string{"[--json] [--proc DIR] [--timeout D] PATH", "[--json] --id UNIQUE_ID"},
				Description: []string{
					"Who holds the mount at PATH, and how: open fds (with access mode), cwd and root, executable, memory mappings and file locks, per process. PATH must be a mount point: a path inside a mount is refused with the mount it lies on.",
					"Also the holders that are not processes (loop devices, swap files, nfsd exports, io_uring registered files, binfmt_misc, submounts, overlays with a layer on it, in any namespace, each with the action that would release it), copies of the filesystem in other mount namespaces with their holders (whether our umount propagates there; the host's namespace named as such), and the other mounts of the same filesystem.",
				},
				Flags: []Flag{flagJSON, flagProc, flagScanTimeout,
					{Name: "id", Kind: Uint, Arg: "UNIQUE_ID", Help: "the mount's unique ID instead of PATH (the unique_id of mounttop list --json): a hidden or a detached mount"}},
				Args: []Arg{argMount},
			},
			{
				Name:  "umount",
				Brief: "unmount PATH: --lazy, --expire, --force or --staged",
				Synopsis: []string{
					"(--lazy | --expire | --force | --staged) [flags] PATH",
					"--staged [--release] [flags] --id UNIQUE_ID",
					"--rollback-fence [--dry-run] [--yes] [--journal PATH|-] PATH",
				},
				Description: []string{
					"Get the mount at PATH off the system. PATH must be a mount point; no component of it may be a symbolic link (mounttop never follows one into an unmount). The mount is identified when the command starts and re-checked by its unique mount ID right before acting. It prints the plan, asks (or --yes), runs, and prints each stage and the result.",
					"--id names the mount by its unique ID instead: any mount of this namespace, or a detached one, lazily unmounted and still held by processes. A detached mount is in no mount table, so only --staged can take it: no fence, its holders are revoked and drained until none is left and the kernel lets it go.",
					"Every plan says what will keep the filesystem itself in use after the unmount, and every result whether it is: \"filesystem released\" or \"filesystem still in use by: ...\" (other mounts of it, here or in other mount namespaces; a detached mount still held; overlays using it as a layer; loop devices; swap files; for a block device, a claim that keeps an exclusive open failing with EBUSY). --json carries it as \"filesystem\" on the plan event and in \"result\".",
					"A server that does not answer (a stopped FUSE daemon, an NFS or CIFS server gone) never hangs mounttop: every call that can wait on it has a deadline (--call-timeout) and is abandoned, and said, when it passes. --staged first probes the server (statfs, 2s); if it does not answer, the plan says so and the run cuts the filesystem off it before revoking (FUSE: the connection's abort file in /sys/fs/fuse/connections, or MNT_FORCE; NFS, CIFS: MNT_FORCE), skips syncfs, then revokes, drains and unmounts as usual. The holders keep running; their I/O on the mount fails.",
					"SIGINT, SIGTERM or SIGHUP cancel the run: before any holder is revoked the fence is rolled back; mounttop exits within 5s. A second one exits at once, printing what is still pending (calls blocked in the kernel, holders being revoked).",
				},
				Flags: []Flag{
					{Name: "lazy", Kind: Bool, Help: "umount2(MNT_DETACH): gone from the namespace at once; the filesystem lives on until its holders let go"},
					{Name: "expire", Kind: Bool, Help: "umount2(MNT_EXPIRE): the first call on an idle mount marks it (exit 3), the next one unmounts it if nothing touched it in between; a busy mount is reported with its holders"},
					{Name: "force", Kind: Bool, Help: "umount2(MNT_FORCE): aborts requests to a dead server (NFS, CIFS, 9p, Ceph, FUSE); ignored by local filesystems (use --staged)"},
					{Name: "staged", Kind: Bool, Help: "the staged forced unmount: fence new opens, syncfs, revoke the holders (--revoke), drain every --interval, unmount for real"},
					{Name: "revoke", Kind: Enum, Arg: "POLICY", Default: "close", Values: []string{"close", "close-plain", "signal"}, Complete: CompleteValues,
						Help: "with --staged, how holders are revoked: close (ptrace: a placeholder on each fd, mappings unmapped, cwd into an empty read-only directory; the processes keep running), close-plain (the same, but the fds closed: their numbers are free for the next open) or signal (SIGTERM, SIGKILL after --grace)"},
					{Name: "grace", Kind: Duration, Arg: "D", Default: unmount.DefaultGrace.String(), Help: "with --revoke signal: from SIGTERM to SIGKILL"},
					{Name: "interval", Kind: Duration, Arg: "D", Default: unmount.DefaultInterval.String(), Help: "with --staged: the drain's rescan interval; with --expire-when-idle: the re-arm interval"},
					{Name: "timeout", Kind: Duration, Arg: "D", Default: unmount.DefaultTimeout.String(), Help: "with --staged: give up (and roll the fence back) this long after the run starts; mounttop exits by --timeout plus 5s whatever the kernel does; with --expire-when-idle: 0 (its default) waits until cancelled"},
					{Name: "call-timeout", Kind: Duration, Arg: "D", Default: unmount.DefaultCallTimeout.String(), Help: "with --staged: abandon a call that waits on the filesystem's server (open, syncfs, statfs, fence, rollback) after this; at most --timeout"},
					{Name: "recursive", Kind: Bool, Help: "also unmount the submounts, deepest first; with --staged, also the overlays of this namespace that use the mount or a submount as a layer: their holders are revoked with the mount's and each overlay is unmounted before the mount (without it such an overlay is only named: it keeps the filesystem alive after the unmount)"},
					{Name: "expire-when-idle", Kind: Bool, Help: "with --expire: re-arm every --interval until the mount goes"},
					{Name: "release", Kind: Bool, Help: "with --staged: also free what holds the mount besides this namespace's processes, as the plan lists them: revoke the holders of its copies in other mount namespaces that our unmount propagates to, unmount other copies there (setns; lazily if held there), detach loop devices backed by a file on it (unless the loop device is itself mounted), swapoff swap files on it; without it these are only named"},
					{Name: "release-host", Kind: Bool, Help: "with --release: also unmount a copy in the host's mount namespace (pid 1's); refused without it: run from inside a container or an unshare'd shell, that changes what the whole machine sees"},
					{Name: "allow-system-mount", Kind: Bool, Help: "also take a mount the system runs on: /, /proc, /sys, /dev, /dev/pts, /dev/shm, /run, /sys/fs/cgroup, any kernel API filesystem by type (proc, sysfs, devtmpfs, devpts, cgroup, cgroup2, mqueue, debugfs, tracefs, bpf, autofs, ...), the /proc mounttop reads and the mount its journal is on; refused without it (exit 2); mounttop's own executable and cwd are never unmounted from under it"},
					{Name: "id", Kind: Uint, Arg: "UNIQUE_ID", Help: "the mount's unique ID instead of PATH (the unique_id of mounttop list --json; also a detached mount)"},
					{Name: "rollback-fence", Kind: Bool, Help: "roll back the fence a killed run left at PATH: the filesystem back in place with its unique ID, the fence gone (mounttop list names them); goes with --dry-run, --yes and --journal only"},
					{Name: "dry-run", Kind: Bool, Help: "print the plan and change nothing"},
					{Name: "yes", Kind: Bool, Help: "do not ask for confirmation (without a terminal on stdin, mounttop refuses to act without it)"},
					{Name: "json", Kind: Bool, Help: "one JSON object per event per line, each with \"stage\"; the last (\"done\") has \"result\""},
					flagJournal,
				},
				Args: []Arg{argMount},
			},
			{
				Name:     "demo",
				Brief:    "the interactive view in a private sandbox with busy demo mounts",
				Synopsis: []string{"[--interval D]"},
				Description: []string{
					"The interactive view in a private sandbox: a new mount namespace (inside a user namespace when not root, so no sudo is needed) with busy demo mounts under /mnt and demo holders of every kind: a blocked reader, a shell in a build directory, a media player mapping a file, a database holding a lock, two indexers re-opening files, and an idle mount to expire. Every action works for real, on the sandbox only. On exit nothing is left behind: the holders are killed and the namespace goes away.",
				},
				Flags: []Flag{flagInterval},
			},
			{
				Name:        "version",
				Brief:       "the version, the build and the kernel features found",
				Synopsis:    []string{"[--json]"},
				Description: []string{"The version (\"devel\" for a plain go build), the commit (with \"-dirty\" when built from a modified tree), the Go version, and the kernel features mounttop found: unique mount IDs (listmount/statmount), MOVE_MOUNT_BENEATH (the staged unmount's fence), pidfd, openat2 and fusectl, with what it falls back to where one is missing. Same as mounttop --version. Put it in every bug report."},
				Flags:       []Flag{{Name: "json", Kind: Bool, Help: "print it as one JSON object"}},
			},
			{
				Name:        "completion",
				Brief:       "print the shell completion script for bash, zsh or fish",
				Synopsis:    []string{"bash|zsh|fish"},
				Description: []string{"Prints a completion script: subcommands, flags, flag values where they are enumerable, and for PATH the current mount points, read from the mount table (never by walking a mount). For example: mounttop completion bash > /etc/bash_completion.d/mounttop, mounttop completion zsh > \"${fpath[1]}/_mounttop\", mounttop completion fish > ~/.config/fish/completions/mounttop.fish."},
				Args:        []Arg{{Name: "SHELL", Values: Shells, Complete: CompleteValues, Help: "bash, zsh or fish"}},
			},
			{
				Name:        "man",
				Hidden:      true,
				Brief:       "print the manual page mounttop(1) in roff",
				Description: []string{"mounttop man > mounttop.1; man ./mounttop.1"},
			},
			{
				Name:        "__complete",
				Hidden:      true,
				Brief:       "print the mount points, one a line, for the completion scripts",
				Synopsis:    []string{"mounts"},
				Description: []string{"Reads /proc/self/mountinfo and unescapes its paths; never stats or walks a mount."},
			},
		},
		ExitCodes: []ExitCode{
			{Code: "0", Meaning: "success; for umount, the mount is gone (verified)"},
			{Code: "1", Meaning: "failure"},
			{Code: "2", Meaning: "bad usage or refused input: nothing was changed"},
			{Code: "3", Meaning: "--expire marked the mount but has not unmounted it yet", Only: []string{"umount"}},
			{Code: "4", Meaning: "gave up waiting: the run did not end within --timeout plus 5s (what is still pending is printed)", Only: []string{"umount"}},
			{Code: "128+N", Meaning: "ended by signal N (130 for SIGINT)", Only: []string{"umount"}},
		},
		Keys: keys,
		JSON: docs,
		Files: []Entry{
			{"/var/log/mounttop/journal.jsonl", "the journal, for root: one JSON object per line per unmount event (the fields of mounttop umount --json, plus the run's id and target), appended by the view and by umount; --journal PATH picks another, --journal - none. A journal on the mount being unmounted (or below it) is moved to the first fallback state directory for the run, so it never keeps the target busy."},
			{"$XDG_STATE_HOME/mounttop/journal.jsonl", "the journal for anyone else (default ~/.local/state/mounttop/journal.jsonl)."},
			{"expire.json", "the expiry book, beside the journal: the MNT_EXPIRE marks mounttop set (mount, when marked, attempts, times an access cleared it), so the view's EXPIRY column survives a restart."},
			{"$XDG_RUNTIME_DIR/mounttop, /run/mounttop", "the fallback state directories (the second for root only), where the journal and the expiry book go while their own directory lies on the mount being unmounted. A state directory that is not safe to write in as root (writable by others, not owned by root) is refused."},
			{"/proc/self/mountinfo", "the mount table; mounttop reads it (and listmount(2), statmount(2) for the unique mount IDs) and never walks a mount point."},
			{"/sys/fs/fuse/connections", "fusectl: the abort file of a FUSE connection whose daemon does not answer."},
		},
		Environment: []Entry{
			{"NO_COLOR", "when set (to anything), the view uses no colour (https://no-color.org)."},
			{"XDG_STATE_HOME", "where the journal goes for a user other than root."},
			{"XDG_RUNTIME_DIR", "the first fallback state directory."},
			{"HOME", "the journal's place when XDG_STATE_HOME is not set."},
			{"TERM", "the terminal's type, for the view."},
		},
		Examples: []Example{
			{"The dead NFS server", "umount says target is busy, and lsof hangs on the mount. mounttop never waits on the server without a deadline: holders shows who holds it; the staged unmount probes the server, cuts the mount off it (MNT_FORCE) when it does not answer, revokes the holders and unmounts.",
				[]string{"sudo mounttop holders /mnt/nfs", "sudo mounttop umount --staged --dry-run /mnt/nfs", "sudo mounttop umount --staged /mnt/nfs"}},
			{"The container holding a copy", "The umount worked, yet the disk stays busy: a container's mount namespace holds a copy of the mount. holders lists the copy, its namespace and its holders; --staged --release revokes them and unmounts the copy too.",
				[]string{"sudo mounttop holders /srv/data", "sudo mounttop umount --staged --release /srv/data"}},
			{"The loop device", "An image file on the mount is attached to a loop device: no process holds the mount, yet it is busy. holders names the loop device as a kernel holder; --release detaches it (unless it is itself mounted).",
				[]string{"sudo mounttop holders /mnt/images", "sudo mounttop umount --staged --release --yes /mnt/images"}},
			{"The lazily unmounted disk still busy", "After umount -l the mount is gone from every table, yet the disk cannot be ejected: a process still holds the detached mount. list shows it as detached with its unique ID; a staged unmount by --id revokes its holders and waits until the kernel lets it go.",
				[]string{"sudo mounttop list --json", "sudo mounttop umount --staged --id 123456"}},
		},
		SeeAlso: []string{"umount(8)", "umount(2)", "findmnt(8)", "fuser(1)", "lsof(8)", "mount_namespaces(7)", "proc(5)"},
	}
}
