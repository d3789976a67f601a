// Package mountapi wraps the Linux mount-API system calls that golang.org/x/sys
// does not cover yet: listmount(2) and statmount(2) (Linux 6.8+), and the
// flags of move_mount(2) and statx(2) that mounttop relies on.
package mountapi

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Flags and masks from include/uapi/linux/mount.h and stat.h that x/sys lacks.
const (
	// MoveMountBeneath mounts the source beneath the top mount at the
	// target (Linux 6.5+): the basis of the fence.
	MoveMountBeneath = 0x200

	statmountMntBasic = 0x2
	lsmtRoot          = ^uint64(0)
	mntIDReqSizeVer0  = 24
)

// mntIDReq is struct mnt_id_req, version 0 (24 bytes): size, spare,
// mnt_id, param.
type mntIDReq struct {
	size  uint32
	spare uint32
	mntID uint64
	param uint64
}

// ErrUnsupported reports a kernel without listmount/statmount (before 6.8).
var ErrUnsupported = errors.New("listmount/statmount not supported by this kernel (needs Linux 6.8+)")

// ListMounts returns the unique IDs of every mount in the caller's mount
// namespace, via listmount(2) from the namespace root, paged.
func ListMounts() ([]uint64, error) {
	var all []uint64
	buf := make([]uint64, 512)
	last := uint64(0)
	for {
		req := mntIDReq{size: mntIDReqSizeVer0, mntID: lsmtRoot, param: last}
		n, _, errno := unix.Syscall6(unix.SYS_LISTMOUNT, uintptr(unsafe.Pointer(&req)),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
		if errno != 0 {
			if errno == unix.ENOSYS {
				return nil, ErrUnsupported
			}
			return nil, errno
		}
		all = append(all, buf[:n]...)
		if int(n) < len(buf) {
			return all, nil
		}
		last = buf[n-1]
	}
}

// MountIDs is the identity part of struct statmount (STATMOUNT_MNT_BASIC).
type MountIDs struct {
	Unique, ParentUnique uint64
	Old, ParentOld       uint32
	Attr, Propagation    uint64
}

// StatMount returns the IDs of the mount with the given unique ID, by
// statmount(2). It walks no path, so it leaves expiry marks alone (unlike
// stat or statx of the mount point). ENOENT means the mount is gone from
// this namespace (or detached).
func StatMount(unique uint64) (MountIDs, error) {
	var out [512]byte
	req := mntIDReq{size: mntIDReqSizeVer0, mntID: unique, param: statmountMntBasic}
	_, _, errno := unix.Syscall6(unix.SYS_STATMOUNT, uintptr(unsafe.Pointer(&req)),
		uintptr(unsafe.Pointer(&out[0])), uintptr(len(out)), 0, 0, 0)
	if errno != 0 {
		if errno == unix.ENOSYS {
			return MountIDs{}, ErrUnsupported
		}
		return MountIDs{}, errno
	}
	le := binary.LittleEndian
	return MountIDs{
		Unique:       le.Uint64(out[40:]),
		ParentUnique: le.Uint64(out[48:]),
		Old:          le.Uint32(out[56:]),
		ParentOld:    le.Uint32(out[60:]),
		Attr:         le.Uint64(out[64:]),
		Propagation:  le.Uint64(out[72:]),
	}, nil
}
