package scantext

import "mounttop/internal/termsafe"

// The sentences below are shown inside unmount's errors as well as by
// present: an error is text, so, unlike the rest of this package, they
// escape the names they carry as they are built (termsafe.Quote, Text),
// once; whoever shows them passes them through termsafe.Message, which
// leaves those escapes as they are.

// SystemMount says why a mount is one the system runs on: by where it is
// mounted (api false) or because its type is a kernel API filesystem.
func SystemMount(api bool, mountpoint, fstype string) string {
	if api {
		return termsafe.Quote(mountpoint) + " is a kernel API filesystem (" + termsafe.Text(fstype) + "), not storage"
	}
	return termsafe.Quote(mountpoint) + " is a mount the system runs on"
}

// AllowSystem is how to lift the refusal of a mount the system runs on.
const AllowSystem = "mounttop umount --allow-system-mount overrides this"
