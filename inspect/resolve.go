package inspect

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"mounttop/internal/termsafe"
)

// PathError says why a path given by the operator does not name a mount.
// Every message is one line with the path escaped for a terminal.
//
// It escapes here, unlike the rest of inspect, because it is an error
// value: its Error() text is what `mounttop umount PATH` and the view
// print as the error, through %v and wrapping layers that cannot know
// which part is a name (present renders data; an error carries its text).
type PathError struct {
	Path   string // as given
	Reason string // "no such file or directory", "is a symbolic link", "is not a mount point"
	Link   string // the component that is a symbolic link
	On     *Mount // for "is not a mount point": the mount the path lies on
	Err    error
}

func (e *PathError) Error() string {
	switch {
	case e.Link != "":
		return fmt.Sprintf("%s: %s is a symbolic link; mounttop never follows links into an unmount, give the real path",
			termsafe.Quote(e.Path), termsafe.Quote(e.Link))
	case e.On != nil:
		return fmt.Sprintf("%s is not a mount point; it lies on the mount at %s (%s %s)",
			termsafe.Quote(e.Path), termsafe.Quote(e.On.Mountpoint), termsafe.Text(e.On.FSType), termsafe.Text(e.On.Source))
	}
	return fmt.Sprintf("%s: %s", termsafe.Quote(e.Path), e.Reason)
}

func (e *PathError) Unwrap() error { return e.Err }

// ErrNotMountPoint is matched by errors.Is for a path that exists but is not
// a mount point.
var ErrNotMountPoint = errors.New("not a mount point")

func (e *PathError) Is(target error) bool { return target == ErrNotMountPoint && e.On != nil }

// Resolve finds the mount at path, as umount(8) would, but safely:
//   - it walks the path component by component with lstat, refusing any
//     symbolic link (a root tool must not be steered by a link: umount2(2)
//     UMOUNT_NOFOLLOW protects only the last component);
//   - it never looks at a component the table says is a mount point, so
//     an MNT_EXPIRE mark on it survives and a dead server there is not
//     waited on (DESIGN.md);
//   - the mount it returns is the one the path leads to: the top of a
//     stack, never a shadowed mount the table also lists at that path
//     (Mount.Hidden; those are reached by ID);
//   - a path that exists but is not a mount point is refused with the mount
//     it lies on, not silently widened to that mount (fuser -m's trap).
func (s *Snapshot) Resolve(path string) (*Mount, error) {
	if path == "" {
		return nil, &PathError{Path: path, Reason: "empty path"}
	}
	abs := path
	if !strings.HasPrefix(path, "/") {
		wd, err := os.Getwd()
		if err != nil {
			return nil, &PathError{Path: path, Reason: "cannot resolve a relative path", Err: err}
		}
		abs = wd + "/" + path
	}
	parts := strings.Split(abs, "/")
	var stack []string
	last := -1
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] != "" && parts[i] != "." {
			last = i
			break
		}
	}
	for i, part := range parts {
		switch part {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		stack = append(stack, part)
		cur := "/" + strings.Join(stack, "/")
		if m, ok := s.MountAt(cur); ok {
			if i == last {
				return m, nil
			}
			// The root of a mount is never a symbolic link the walk
			// could follow, and looking at it would take a reference
			// on the mount (clearing an MNT_EXPIRE mark) or wait on
			// its server.
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(cur, &st); err != nil {
			reason := "cannot look it up"
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				reason = "no such file or directory"
			}
			return nil, &PathError{Path: path, Reason: reason, Err: err}
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil, &PathError{Path: path, Reason: "is a symbolic link", Link: cur}
		}
	}
	cur := "/" + strings.Join(stack, "/")
	if m, ok := s.MountAt(cur); ok {
		return m, nil // "/" itself, or a path ending in "/." or "/.."
	}
	on, _ := s.MountContaining(cur)
	return nil, &PathError{Path: path, Reason: "is not a mount point", On: on}
}
