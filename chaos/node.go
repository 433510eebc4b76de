package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Node is one `oms serve` child process: how it was started, so that it
// can be started again on the same ports, and what it printed.
type Node struct {
	Name    string
	Binary  string
	DataDir string
	// Args are what follows `oms serve`.
	Args []string
	// URL is the client address of its NATS server, HTTP and Internal
	// those of its listeners, as it printed them.
	URL, HTTP, Internal string

	mu     sync.Mutex
	cmd    *exec.Cmd
	out    strings.Builder
	exited chan struct{}
}

// FreePort returns a loopback port nothing listens on now. Another
// process may take it before the node binds it; Start then fails, and the
// caller starts again on other ports.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readyLine is the last line `oms serve` prints once it serves.
const readyLine = "data dir:"

// Start runs the node and returns once it serves (it printed its
// addresses), or with its output when it exits first or within limit does
// not get there.
func (n *Node) Start(ctx context.Context, limit time.Duration) error {
	cmd := exec.Command(n.Binary, append([]string{"serve", "--data-dir", n.DataDir}, n.Args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = writerFunc(n.write)
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan struct{})
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.out.WriteString(fmt.Sprintf("--- %s started %s\n", n.Name, time.Now().Format(time.TimeOnly)))
	n.mu.Unlock()
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			_, _ = n.write([]byte(line + "\n"))
			f := strings.Fields(line)
			n.mu.Lock()
			switch {
			case len(f) >= 2 && f[0] == "NATS:":
				n.URL = f[1]
			case len(f) >= 2 && f[0] == "HTTP:":
				n.HTTP = f[1]
			case len(f) >= 2 && f[0] == "internal:":
				n.Internal = f[1]
			}
			n.mu.Unlock()
			if strings.HasPrefix(strings.TrimSpace(line), readyLine) {
				once.Do(func() { close(ready) })
			}
		}
		_ = cmd.Wait()
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("%s exited before it served; its output:\n%s", n.Name, n.Output())
	case <-timer.C:
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("%s did not serve within %s; its output:\n%s", n.Name, limit, n.Output())
}

func (n *Node) write(b []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.Write(b)
}

// Output is everything the node printed, over all its starts.
func (n *Node) Output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

// Running reports whether the process is alive (a stopped one is).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would,
// and waits for it to be gone.
func (n *Node) Kill() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return errors.New(n.Name + " was never started")
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies too
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-exited
	return nil
}

// Freeze stops the process (SIGSTOP): it holds its sockets and its
// ownership claims but answers nothing, as a node in a long GC pause or
// on a stalled VM does.
func (n *Node) Freeze() error { return n.signal(syscall.SIGSTOP) }

// Thaw lets a frozen process run again (SIGCONT).
func (n *Node) Thaw() error { return n.signal(syscall.SIGCONT) }

// Terminate asks the process to stop (SIGTERM) and waits up to limit.
func (n *Node) Terminate(limit time.Duration) error {
	if err := n.signal(syscall.SIGTERM); err != nil {
		return err
	}
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	select {
	case <-exited:
		return nil
	case <-time.After(limit):
		_ = n.Kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM", n.Name, limit)
	}
}

func (n *Node) signal(s syscall.Signal) error {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return errors.New(n.Name + " was never started")
	}
	return cmd.Process.Signal(s)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

var _ io.Writer = writerFunc(nil)
