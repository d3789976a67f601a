package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// tmuxControl is a tmux control-mode client (tmux(1), CONTROL MODE) on
// our own server: commands go to its stdin, their output comes back
// between %begin and %end lines, and every write of the pane arrives as
// an %output notification.
//
// The view's key latency is measured through it, not by a `tmux
// send-keys` and a `tmux capture-pane` process per poll: on a machine of
// two CPUs, a poll loop of fork+exec took most of a CPU from the view it
// was timing and from the tmux server that must deliver the key and the
// answer, and each exec added milliseconds of its own to every figure.
// Here a key costs one line written, and the measurement waits without
// spending CPU until the pane writes.
type tmuxControl struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	mu    sync.Mutex    // one command at a time: replies come in order
	reply chan []string // a command's output lines (an %error block: nil)
	// output receives the time of every %output notification (dropped
	// when nobody is waiting and the buffer is full: only "the pane
	// wrote since" matters).
	output chan time.Time
	done   chan struct{}
}

// attachControl attaches a control client to session on server sock.
// A control client has no size of its own unless it asks for one, so the
// pane keeps the size new-session gave it.
func attachControl(ctx context.Context, sock, session string) (*tmuxControl, error) {
	cmd := exec.CommandContext(ctx, "tmux", "-L", sock, "-f", "/dev/null", "-C", "attach-session", "-t", session)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	cmd.Dir = "/"
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("tmux -C attach: %w", err)
	}
	c := &tmuxControl{cmd: cmd, in: in, reply: make(chan []string, 1), output: make(chan time.Time, 256), done: make(chan struct{})}
	go c.read(out)
	return c, nil
}

// read splits the client's stdout into command replies and %output
// notifications. Only blocks of our commands (flags 1, tmux(1): "the
// command was sent by this client") are replies; the attach's own block
// is not.
func (c *tmuxControl) read(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var block []string
	in, ours := false, false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case in && (strings.HasPrefix(line, "%end ") || strings.HasPrefix(line, "%error ")):
			in = false
			if ours {
				if strings.HasPrefix(line, "%error ") {
					block = nil
				}
				c.reply <- block
			}
		case in:
			block = append(block, line)
		case strings.HasPrefix(line, "%begin "):
			in, block = true, []string{}
			f := strings.Fields(line)
			ours = len(f) == 4 && f[3] == "1"
		case strings.HasPrefix(line, "%output "):
			select {
			case c.output <- time.Now():
			default:
			}
		}
	}
}

// run sends one command and returns its output lines.
func (c *tmuxControl) run(ctx context.Context, command string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.in, command+"\n"); err != nil {
		return nil, fmt.Errorf("tmux control: %w", err)
	}
	select {
	case lines := <-c.reply:
		if lines == nil {
			return nil, fmt.Errorf("tmux control: %q failed", command)
		}
		return lines, nil
	case <-c.done:
		return nil, errors.New("tmux control client exited")
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("tmux control: no reply to %q within 10s", command)
	}
}

// drainOutput forgets the notifications received so far.
func (c *tmuxControl) drainOutput() {
	for {
		select {
		case <-c.output:
		default:
			return
		}
	}
}

// close detaches the client (stdin closed ends control mode).
func (c *tmuxControl) close() {
	c.in.Close()
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
		c.cmd.Process.Kill()
	}
	c.cmd.Wait()
}
