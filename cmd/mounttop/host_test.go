package main

import (
	"encoding/json"
	"strings"
	"testing"

	"mounttop/internal/testns"
)

// TestHostNamespaceInOutput: list says which mount namespace it shows and
// whether it is the host's (the tests run in a private copy: it is not);
// --release-host is refused without --release, with nothing changed.
func TestHostNamespaceInOutput(t *testing.T) {
	testns.Require(t, testns.RealRoot) // a user namespace may not read pid 1's
	dir := testns.Tmpfs(t, "")
	r := runMounttop(t, "", nil, "list", "--json")
	var out struct {
		MountNS uint64 `json:"mnt_ns"`
		HostNS  uint64 `json:"host_mnt_ns"`
		Host    *bool  `json:"host"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.MountNS == 0 || out.HostNS == 0 || out.Host == nil || *out.Host {
		t.Errorf("list --json: %+v, want our namespace, pid 1's, and host false", out)
	}
	if r := runMounttop(t, "", nil, "list"); !strings.HasPrefix(r.stdout, "mount namespace mnt:[") || !strings.Contains(strings.SplitN(r.stdout, "\n", 2)[0], "not the host's (pid 1's is mnt:[") {
		t.Errorf("list text's first line: %q", strings.SplitN(r.stdout, "\n", 2)[0])
	}
	r = runMounttop(t, "", nil, "umount", "--staged", "--release-host", "--yes", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "--release-host goes with --release") || !testns.IsMountPoint(dir) {
		t.Errorf("--release-host alone: exit %d, stderr %q", r.code, r.stderr)
	}
}
