package present

import (
	"encoding/json"
	"testing"

	"mounttop/inspect"
)

// TestKernelName: an io_uring registered file is named by its ring's fd
// and its index (inspect gives the numbers, no sentence); every other
// kernel holder by its Name.
func TestKernelName(t *testing.T) {
	for _, tc := range []struct {
		k    inspect.KernelHolder
		want string
	}{
		{inspect.KernelHolder{Kind: inspect.KernelIOURing, FD: 5, Index: 0, PID: 4}, "io_uring fd 5, file 0"},
		{inspect.KernelHolder{Kind: inspect.KernelIOURing, FD: 12, Index: 31}, "io_uring fd 12, file 31"},
		{inspect.KernelHolder{Kind: inspect.KernelLoop, Name: "/dev/loop3"}, "/dev/loop3"},
		{inspect.KernelHolder{Kind: inspect.KernelSwap, Name: "/t/swap"}, "/t/swap"},
	} {
		if got := KernelName(tc.k); got != tc.want {
			t.Errorf("KernelName(%+v) = %q, want %q", tc.k, got, tc.want)
		}
	}
}

// TestKernelNameEscapedOnce: an io_uring holder of a file with a newline
// and a colour escape in its path shows the path escaped once in the
// holders pane's line, and exactly in the JSON.
func TestKernelNameEscapedOnce(t *testing.T) {
	k := inspect.KernelHolder{Kind: inspect.KernelIOURing, FD: 7, Index: 2, Path: hostileMount + "/q", PID: 4242}
	line := KernelLine(&k)
	checkShownOnce(t, "KernelLine", line, "io_uring fd 7, file 2", shownMount+"/q")
	doc, err := json.Marshal(Kernel(k))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Name, Path string }
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "io_uring fd 7, file 2" || got.Path != hostileMount+"/q" {
		t.Errorf("JSON: %s", doc)
	}
}
