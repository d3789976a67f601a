package unmount

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ClaimDevice opens the block device major:minor with O_EXCL and closes it
// at once: open(2) of a block device with O_EXCL fails with EBUSY while a
// mounted filesystem (or another exclusive opener: a loop's partition
// scan, device-mapper, md, a swap area) claims it, so success means the
// filesystem on it is gone. The node is found through sysfs
// (/sys/dev/block/MAJ:MIN/uevent, DEVNAME) and checked by fstat(2) to be
// that very device; the open asks nothing of any filesystem's server. It
// returns the node's path; ErrNotBlockDevice for a filesystem with no
// block device (tmpfs, overlay: anonymous devices).
func (k *kernel) ClaimDevice(major, minor int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/uevent", major, minor))
	if err != nil {
		if os.IsNotExist(err) {
			return "", ErrNotBlockDevice
		}
		return "", err
	}
	var name string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "DEVNAME="); ok {
			name = "/dev/" + v
		}
	}
	if name == "/dev/" || name == "" || strings.Contains(name, "..") {
		return "", fmt.Errorf("block device %d:%d: no DEVNAME in sysfs", major, minor)
	}
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return name, &os.PathError{Op: "open O_EXCL", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return name, &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(uint32(major), uint32(minor)) {
		return name, fmt.Errorf("%s is not block device %d:%d", name, major, minor)
	}
	return name, nil
}
