package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
)

// tandemBinary is the tandem binary built once per test process
// (testenv.Main removes it at the end).
func tandemBinary(t *testing.T) string {
	t.Helper()
	return testenv.BuildTandem(t)
}

// freePort is testenv.FreePort: never a port handed out before in this
// process (a broker's acceptor and HTTP ports got the same one once).
func freePort(t *testing.T) int {
	t.Helper()
	return testenv.FreePort(t)
}

// brokerProc is a `tandem run` process on fixed ports and a data
// directory that survive restarts.
type brokerProc struct {
	t        *testing.T
	bin      string
	dir      string // its own directory: working directory and log
	data     string
	port     int
	httpPort int
	cmd      *exec.Cmd
	exited   chan struct{}
	exitCode int
	logs     *os.File
	banner   []string
	env      []string // added to the process's environment (test hooks)
}

func newBrokerProc(t *testing.T) *brokerProc {
	t.Helper()
	dir := t.TempDir()
	logs, err := os.Create(filepath.Join(dir, "broker.log"))
	if err != nil {
		t.Fatal(err)
	}
	b := &brokerProc{t: t, bin: tandemBinary(t), dir: dir, data: filepath.Join(dir, "data"),
		port: freePort(t), httpPort: freePort(t), logs: logs}
	t.Cleanup(func() {
		b.kill()
		logs.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("broker log:\n%s", tail(string(out), 4000))
		}
	})
	return b
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// URL is the broker's client URL.
func (b *brokerProc) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.port) }

// start runs the broker and waits until its acceptor answers (30 s).
func (b *brokerProc) start(extra ...string) {
	b.t.Helper()
	args := append([]string{"run", "--data", b.data, "--listen", b.URL(),
		"--http", fmt.Sprintf("127.0.0.1:%d", b.httpPort)}, extra...)
	cmd := exec.Command(b.bin, args...)
	// The broker's own directory (no ./etc/broker.xml there), never the
	// data directory's parent: a test may put the data on a faultfs mount
	// served by this process, and a child that touches the mount before
	// its exec (a chdir there) deadlocks the test binary: Go's fork holds
	// a P in vfork until the child execs, a stop-the-world (GC) then waits
	// for that P, and the FUSE server goroutines that would answer the
	// child's request get none (seen: TestHaltOnFsyncError hung 20 min).
	cmd.Dir = b.dir
	cmd.Stderr = b.logs
	if len(b.env) > 0 {
		cmd.Env = append(os.Environ(), b.env...)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.cmd, b.exited, b.banner = cmd, make(chan struct{}), nil
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintf(b.logs, "stdout: %s\n", sc.Text())
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	go func(exited chan struct{}) {
		err := cmd.Wait()
		b.exitCode = 0
		if ee, ok := err.(*exec.ExitError); ok {
			b.exitCode = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				b.exitCode = -int(ws.Signal())
			}
		}
		close(exited)
	}(b.exited)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				<-b.exited
				b.startFailed()
			}
			b.banner = append(b.banner, l)
			if strings.HasPrefix(strings.TrimSpace(l), "config:") { // the banner's last line
				b.waitPort()
				return
			}
		case <-b.exited:
			b.startFailed()
		case <-deadline:
			b.t.Fatal("broker did not print its banner within 30s")
		}
	}
}

// startFailed ends the test: a skip when this build has no file journal
// yet, else a failure.
func (b *brokerProc) startFailed() {
	b.t.Helper()
	b.cmd = nil
	out, _ := os.ReadFile(b.logs.Name())
	if strings.Contains(string(out), "file journal is not available") {
		b.t.Skip("this build has no file journal: kill/restart tests need it")
	}
	b.t.Fatalf("broker exited during start with code %d", b.exitCode)
}

func (b *brokerProc) waitPort() {
	b.t.Helper()
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatal("broker port not open after 30s")
}

// kill sends SIGKILL and waits for the process to end.
func (b *brokerProc) kill() {
	if b.cmd == nil {
		return
	}
	select {
	case <-b.exited:
	default:
		b.cmd.Process.Signal(syscall.SIGKILL)
		<-b.exited
	}
	b.cmd = nil
}

// stop sends SIGTERM and returns the exit code.
func (b *brokerProc) stop() int {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		b.t.Fatal("broker did not stop within 30s of SIGTERM")
	}
	b.cmd = nil
	return b.exitCode
}

// status fetches GET /status.
func (b *brokerProc) status() map[string]any {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/status", b.httpPort), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		b.t.Fatal(err)
	}
	return st
}

// requireFileStore skips the test unless the broker runs on the file
// journal (kill tests on a memory store would prove nothing).
func (b *brokerProc) requireFileStore() {
	b.t.Helper()
	if st := b.status(); st["store"] != "file" {
		b.t.Skipf("broker store is %v, not file: kill/restart tests need the file journal", st["store"])
	}
}
