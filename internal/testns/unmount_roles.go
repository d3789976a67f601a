package testns

import (
	"os/signal"

	"golang.org/x/sys/unix"
)

// RoleIgnoreTerm (DIR): cwd in DIR, SIGTERM ignored: only the SIGKILL that
// the staged unmount's signal policy sends after the grace period stops it.
const RoleIgnoreTerm = "ignore-term"

func init() {
	RegisterRole(RoleIgnoreTerm, 1, func(args []string) error {
		signal.Ignore(unix.SIGTERM)
		if err := unix.Chdir(args[0]); err != nil {
			return err
		}
		Say("ready")
		Forever()
		return nil
	})
}
