package ui

import (
	"strings"
	"testing"
	"time"

	"mounttop/inspect"
	"mounttop/internal/present"
	"mounttop/unmount"
)

// TestPlanLinesDeadServer: the staged dialog says what the probe found: a
// server that does not answer (no syncfs promised, the abort named first),
// a connection aborted already, or nothing at all when it answers.
func TestPlanLinesDeadServer(t *testing.T) {
	target := inspect.Mount{ID: 7, Mountpoint: "/mnt/x", FSType: "fuse.sshfs"}
	abort := unmount.Abort{Kind: unmount.AbortFuseConn, Conn: 45, Once: true, What: "abort FUSE connection 45 (/sys/fs/fuse/connections/45/abort)"}
	cases := []struct {
		name    string
		server  unmount.Server
		want    []string
		notWant []string
	}{
		{"answering", unmount.Server{Probed: true, Answering: true, How: "the server answers (statfs took 1ms)", Abort: abort},
			[]string{"1. Fence /mnt/x: new opens by path fail, written data is synced."}, []string{"not answering", "abort FUSE"}},
		{"not answering", unmount.Server{Probed: true, How: "statfs of /mnt/x did not return within 2s", Abort: abort},
			[]string{"! The filesystem's server is not answering:", "  statfs of /mnt/x did not return within 2s",
				"  Data not yet written cannot be synced (no syncfs). Instead, first:", "  " + abort.What, "1. Fence /mnt/x: new opens by path fail."},
			[]string{"written data is synced"}},
		{"aborted already", unmount.Server{Probed: true, Aborted: true, How: "ENOTCONN", Abort: abort},
			[]string{"! The connection to the filesystem's server is aborted already:"}, []string{"written data is synced", "Instead, first"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := unmount.Plan{Target: target, Mode: unmount.ModeStaged, Policy: unmount.PolicyClose,
				Interval: time.Second, Timeout: 30 * time.Second, Server: tc.server}
			text := strings.Join(present.PlanLines(nil, plan, 5, "x"), "\n")
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("lacks %q:\n%s", w, text)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(text, w) {
					t.Errorf("says %q:\n%s", w, text)
				}
			}
		})
	}
}
