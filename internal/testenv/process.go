package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a real child process started by a test, with stdout and stderr
// captured to a log file. It runs in a process group of its own, so Kill and
// Stop reach its children too. A goroutine owned by the Process waits for
// it; the test's cleanup kills it if it is still running, and logs the tail
// of its log when the test failed.
type Process struct {
	Name    string // for messages
	LogPath string // stdout and stderr

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
}

// Start starts path with args as a Process named name, in a working
// directory and with a log file of the test's own. Use StartCmd to set the
// environment or the directory.
func Start(t testing.TB, name, path string, args ...string) *Process {
	t.Helper()
	return StartCmd(t, name, exec.Command(path, args...))
}

// StartCmd starts cmd (not yet started; Stdout and Stderr must be unset) as
// a Process named name. Its output goes to a log file in a TempDir; when
// cmd.Dir is empty it runs in that directory too.
func StartCmd(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	dir := TempDir(t, name)
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testenv: %s: %v", name, err)
	}
	if cmd.Dir == "" {
		cmd.Dir = dir
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("testenv: start %s (%s): %v", name, cmd.Path, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is in cmd.ProcessState
		f.Close()
		close(p.done)
	}()
	t.Logf("testenv: started %s pid %d: %s (log %s)", name, cmd.Process.Pid, strings.Join(cmd.Args, " "), logPath)
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Kill()
		}
		if t.Failed() {
			t.Logf("testenv: last lines of %s:\n%s", logPath, p.Tail(40))
		}
	})
	return p
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited (and been reaped).
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done returns a channel closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitCode returns the exit code, -1 when a signal ended the process, and
// false while it runs.
func (p *Process) ExitCode() (int, bool) {
	if !p.Exited() {
		return 0, false
	}
	return p.cmd.ProcessState.ExitCode(), true
}

// Signal sends sig to the process's group (the process and its children).
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := syscall.Kill(-p.Pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("testenv: signal %v to %s (pid %d): %w", sig, p.Name, p.Pid(), err)
	}
	return nil
}

// Kill sends SIGKILL (a crash: nothing is flushed) and waits until the
// process is reaped.
func (p *Process) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// Stop sends SIGTERM and waits up to timeout for the process to exit; then
// it sends SIGKILL and returns an error saying so. It returns the exit code
// of a process that exited by itself.
func (p *Process) Stop(timeout time.Duration) (int, error) {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	code, err := p.Wait(timeout)
	if err != nil {
		_ = p.Kill()
		return -1, fmt.Errorf("testenv: %s did not stop within %v of SIGTERM; killed", p.Name, timeout)
	}
	return code, nil
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when a signal ended it). After timeout it returns an error and
// leaves the process running.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.WaitContext(ctx)
}

// WaitContext is Wait bounded by ctx.
func (p *Process) WaitContext(ctx context.Context) (int, error) {
	select {
	case <-p.done:
		code, _ := p.ExitCode()
		return code, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("testenv: %s (pid %d) still running: %w", p.Name, p.Pid(), ctx.Err())
	}
}

// Log returns everything the process has written so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitLog waits until the log contains substr, and fails the test (showing
// the log's tail) when timeout passes or the process exits first.
func (p *Process) WaitLog(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.LogPath)
		if bytes.Contains(b, []byte(substr)) {
			return
		}
		if p.Exited() {
			code, _ := p.ExitCode()
			t.Fatalf("testenv: %s exited (code %d) before logging %q; log:\n%s", p.Name, code, substr, p.Tail(40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s did not log %q within %v; log:\n%s", p.Name, substr, timeout, p.Tail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitListening waits until addr accepts TCP connections, and fails the
// test when timeout passes or, with p non-nil, the process exits first.
func WaitListening(t testing.TB, p *Process, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if p != nil && p.Exited() {
			code, _ := p.ExitCode()
			t.Fatalf("testenv: %s exited (code %d) before listening on %s; log:\n%s", p.Name, code, addr, p.Tail(40))
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("testenv: nothing listens on %s after %v: %v", addr, timeout, err)
			if p != nil {
				msg += "; log of " + p.Name + ":\n" + p.Tail(40)
			}
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
