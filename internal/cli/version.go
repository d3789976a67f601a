package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"mounttop/internal/mountapi"
)

// Version is what `mounttop version` prints.
type Version struct {
	Version  string             `json:"version"`  // the release, or "devel"
	Commit   string             `json:"commit"`   // the vcs revision, "-dirty" appended for a modified tree; "" unknown
	Time     string             `json:"time"`     // the commit's time, RFC 3339; "" unknown
	Go       string             `json:"go"`       // the Go version that built it
	Platform string             `json:"platform"` // GOOS/GOARCH
	Kernel   string             `json:"kernel"`   // uname -r
	Features []mountapi.Feature `json:"features"`
}

// BuildVersion reads the build information: release is the version set at
// link time (-ldflags "-X main.version=1.2.0") or ""; a plain `go build`
// in a clone gives "devel" with the vcs commit the go command stamped.
func BuildVersion(release string) Version {
	v := Version{Version: "devel", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if mv := info.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv // go install mounttop@vX.Y.Z
		}
		v.Go = info.GoVersion
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && v.Commit != "" {
			v.Commit += "-dirty"
		}
	}
	if release != "" {
		v.Version = release
	}
	return v
}

// WithFeatures adds the kernel's release and the features probed on it
// (each probe bounded: none waits on a filesystem).
func (v Version) WithFeatures(ctx context.Context, procRoot string) Version {
	v.Kernel = mountapi.KernelRelease()
	v.Features = mountapi.Features(ctx, procRoot)
	return v
}

// WriteText prints v for a person (and a bug report).
func (v Version) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "mounttop %s\n", v.Version)
	commit := v.Commit
	if commit == "" {
		commit = "unknown (no VCS stamp: built outside a git checkout, or with -buildvcs=false)"
	}
	fmt.Fprintf(&b, "commit   %s\n", commit)
	if v.Time != "" {
		fmt.Fprintf(&b, "time     %s\n", v.Time)
	}
	fmt.Fprintf(&b, "go       %s %s\n", v.Go, v.Platform)
	fmt.Fprintf(&b, "kernel   %s\n", v.Kernel)
	for _, f := range v.Features {
		mark := "no "
		if f.Found {
			mark = "yes"
		}
		fmt.Fprintf(&b, "  %s %-20s %s\n", mark, f.Name, f.Note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
