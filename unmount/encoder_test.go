package unmount

import (
	"encoding/json"

	"mounttop/inspect"
)

// testEncoder stands in for present.EventJSON in this package's journal
// tests (present imports unmount, so they cannot use it): the fields they
// read. The journal's real lines are tested with present's encoder in
// linear_test.go (package unmount_test) and by cmd's tests.
func testEncoder(e Event) ([]byte, error) {
	type result struct {
		Gone    bool   `json:"gone"`
		Summary string `json:"summary"`
	}
	v := struct {
		Stage  string  `json:"stage"`
		PID    int     `json:"pid,omitempty"`
		What   string  `json:"what,omitempty"`
		Error  string  `json:"error,omitempty"`
		Result *result `json:"result,omitempty"`
	}{Stage: e.Stage.String(), PID: e.PID, What: EventWords(e)}
	if e.Err != nil {
		v.Error = e.Err.Error()
	}
	if r := e.Result; r != nil {
		v.Result = &result{Gone: r.Gone, Summary: summaryOf(r)}
	}
	return json.Marshal(v)
}

// HeldMount is a fake System for tests of package unmount_test: a tmpfs
// at /mnt/t held by n processes with one fd each, which the first revoke
// frees (the first two scans find them, later ones nobody).
func HeldMount(n int) (System, inspect.MountID) {
	f := newFake()
	f.addMount("/mnt", "ext4", false)
	target := f.addMount("/mnt/t", "tmpfs", false)
	f.target = target.ID
	hs := make([]inspect.Holder, n)
	for i := range hs {
		hs[i] = holder(1000+i, "sleep", fdUse(3))
	}
	f.holders = [][]inspect.Holder{hs, hs, nil}
	return f, target.ID
}
