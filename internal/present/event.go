package present

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"mounttop/inspect"
	"mounttop/internal/termsafe"
	"mounttop/unmount"
)

// EventJSON renders a run's event as the object of one line of `mounttop
// umount --json` and of the journal (unmount.Journal takes it as its
// encoder): "stage" is Stage.String(); "holders" on the plan event lists
// every holder and on the others only those whose state changed; "result"
// is set on the last ("done") event, with the full picture in
// result.holders. Every name from the system goes through termsafe.Name
// (exact bytes, terminal-safe).
func EventJSON(e unmount.Event) ([]byte, error) {
	out := runEventJSON{Stage: e.Stage.String(), Time: e.At, MountID: e.Mount, PID: e.PID, Note: NoteKind(e.Note), What: termsafe.Name(EventWhat(e))}
	if e.Err != nil {
		out.Error = termsafe.Name(e.Err.Error())
	}
	out.Holders = runHolders(e.Holders)
	if e.Stage == unmount.StageDrain {
		n := e.Remaining
		out.Remaining = &n
	}
	for _, r := range e.Releases {
		out.Releases = append(out.Releases, runReleaseJSON{Kind: r.Kind.String(), What: termsafe.Name(ReleaseText(r)), PID: r.PID, Namespace: r.Namespace,
			Mountpoint: termsafe.Name(r.Mountpoint), Name: termsafe.Name(r.Name), Lazy: r.Lazy, Propagates: r.Propagates, Refused: termsafe.Name(ReleaseRefusalText(r)), Host: r.Host})
	}
	out.Release = e.Release
	if e.Filesystem != nil {
		out.Filesystem = newRunFilesystemJSON(e.Filesystem)
	}
	if s := e.Server; s != nil {
		out.Server = &runServerJSON{Answering: s.Answering, Aborted: s.Aborted, How: termsafe.Name(ServerHow(*s))}
		if !s.Answering {
			out.Server.Abort = termsafe.Name(AbortText(s.Abort))
		}
	}
	if r := e.Result; r != nil {
		out.Result = &runResultJSON{Gone: r.Gone, Marked: r.Marked, Summary: termsafe.Name(ResultSummary(*r)), Holders: runHolders(r.Holders)}
		if r.Filesystem != nil {
			out.Result.Filesystem = newRunFilesystemJSON(r.Filesystem)
		}
		for _, h := range r.Remaining {
			out.Result.Remaining = append(out.Result.Remaining, runHolderJSON{PID: h.PID, Comm: termsafe.Name(h.Comm), State: string(h.State)})
		}
	}
	return json.Marshal(out)
}

func runHolders(hs []unmount.HolderState) []runHolderJSON {
	var out []runHolderJSON
	for _, h := range hs {
		j := runHolderJSON{PID: h.PID, Comm: termsafe.Name(h.Comm), State: h.State.String(), Reason: termsafe.Name(HolderReason(h))}
		if h.Namespace != 0 {
			j.Namespace = NamespaceID(h.Namespace)
		}
		out = append(out, j)
	}
	return out
}

// runEventJSON is the wire form of an unmount.Event.
type runEventJSON struct {
	Stage   string          `json:"stage"`
	Time    time.Time       `json:"time"`
	MountID inspect.MountID `json:"mount_id,omitempty"`
	PID     int             `json:"pid,omitempty"`
	// Note is the kind of what the event says (NoteKind:
	// "fuse-conn-aborted", "drain-left", ...), for a script to switch on.
	Note      string           `json:"note,omitempty"`
	What      termsafe.Name    `json:"what,omitempty"`
	Error     termsafe.Name    `json:"error,omitempty"`
	Holders   []runHolderJSON  `json:"holders,omitempty"`
	Remaining *int             `json:"remaining,omitempty"`
	Result    *runResultJSON   `json:"result,omitempty"`
	Releases  []runReleaseJSON `json:"releases,omitempty"`
	Release   bool             `json:"release,omitempty"`
	Server    *runServerJSON   `json:"server,omitempty"`
	// Filesystem (plan): what keeps the filesystem in use after the
	// unmount, as forecast.
	Filesystem *runFilesystemJSON `json:"filesystem,omitempty"`
}

// runFilesystemJSON is unmount.Filesystem: whether the filesystem itself
// is released and what still uses it.
type runFilesystemJSON struct {
	Released   bool                   `json:"released"`
	Checked    bool                   `json:"checked"`
	Device     string                 `json:"device"`
	InUseBy    []runFilesystemUseJSON `json:"in_use_by"`
	Exclusive  bool                   `json:"exclusive,omitempty"` // the block device opened with O_EXCL
	DeviceName termsafe.Name          `json:"device_name,omitempty"`
	Note       termsafe.Name          `json:"note,omitempty"`
}

type runFilesystemUseJSON struct {
	Kind      string        `json:"kind"`
	Where     termsafe.Name `json:"where,omitempty"`
	Namespace string        `json:"namespace,omitempty"` // "mnt:[N]" when not ours
	Host      bool          `json:"host,omitempty"`
	PIDs      []int         `json:"pids,omitempty"`
}

func newRunFilesystemJSON(f *unmount.Filesystem) *runFilesystemJSON {
	out := &runFilesystemJSON{Released: f.Released, Checked: f.Checked, Device: f.Device, InUseBy: []runFilesystemUseJSON{},
		Exclusive: f.Exclusive, DeviceName: termsafe.Name(f.DeviceName), Note: termsafe.Name(DoubtText(f.Doubt))}
	for _, u := range f.InUseBy {
		j := runFilesystemUseJSON{Kind: u.Kind, Where: termsafe.Name(u.Where), Host: u.Host, PIDs: u.PIDs}
		if u.Namespace != 0 {
			j.Namespace = fmt.Sprintf("mnt:[%d]", u.Namespace)
		}
		out.InUseBy = append(out.InUseBy, j)
	}
	return out
}

// runServerJSON is the probe's finding (Plan.Server), on the plan event of
// a staged run.
type runServerJSON struct {
	Answering bool          `json:"answering"`
	Aborted   bool          `json:"aborted,omitempty"`
	How       termsafe.Name `json:"how"`
	Abort     termsafe.Name `json:"abort,omitempty"` // what the run does to cut it off a server that does not answer
}

// runReleaseJSON is one of the plan's releases (unmount.Release).
type runReleaseJSON struct {
	Kind       string        `json:"kind"`
	What       termsafe.Name `json:"what"`
	PID        int           `json:"pid,omitempty"`
	Namespace  uint64        `json:"namespace,omitempty"`
	Mountpoint termsafe.Name `json:"mountpoint,omitempty"`
	Name       termsafe.Name `json:"name,omitempty"`
	Lazy       bool          `json:"lazy,omitempty"`
	Propagates bool          `json:"propagates,omitempty"`
	Refused    termsafe.Name `json:"refused,omitempty"`
	Host       bool          `json:"host,omitempty"` // a copy in the host's mount namespace (pid 1's)
}

// runHolderJSON is one holder's state in a run (unmount.HolderState).
type runHolderJSON struct {
	PID       int           `json:"pid"`
	Comm      termsafe.Name `json:"comm"`
	State     string        `json:"state"`
	Reason    termsafe.Name `json:"reason,omitempty"`
	Namespace string        `json:"namespace,omitempty"` // "mnt:[N]": holds a copy in another mount namespace
}

type runResultJSON struct {
	Gone      bool            `json:"gone"`
	Marked    bool            `json:"marked"`
	Summary   termsafe.Name   `json:"summary"`
	Remaining []runHolderJSON `json:"remaining,omitempty"`
	// Holders: the per-holder picture at the end, in full (the events
	// between carry only changes).
	Holders []runHolderJSON `json:"holders,omitempty"`
	// Filesystem: once the mount is gone, whether the filesystem is.
	Filesystem *runFilesystemJSON `json:"filesystem,omitempty"`
}

// EventText is one event as `mounttop umount` prints it: the stage, what
// happened, and the error when the text does not already say it, on one
// line. The engine's text carries its names escaped; termsafe.Message
// escapes only a control left raw (an error from elsewhere), never a name
// a second time.
func EventText(ev unmount.Event) string {
	what := EventWhat(ev)
	line := fmt.Sprintf("%-8s %s", ev.Stage, what)
	if ev.Err != nil && !strings.Contains(what, ev.Err.Error()) {
		line += " [" + ev.Err.Error() + "]"
	}
	return termsafe.Message(oneLine(line))
}
