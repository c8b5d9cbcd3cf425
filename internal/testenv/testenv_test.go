package testenv_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestFreePortBindable(t *testing.T) {
	port := testenv.FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort = %d", port)
	}
	// Below the ephemeral range, where outgoing connections never take it.
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo >= 11000 && (port < 10000 || port >= min(lo, 20000)) {
			t.Fatalf("FreePort = %d: want 10000-%d (ephemeral range %d-%d)", port, min(lo, 20000)-1, lo, hi)
		}
	}
	seen := map[int]bool{port: true}
	for range 200 {
		p := testenv.FreePort(t)
		if seen[p] {
			t.Fatalf("FreePort handed out %d twice", p)
		}
		seen[p] = true
	}
	l, err := net.Listen("tcp", testenv.FreeAddr(t))
	if err != nil {
		t.Fatalf("listen on FreeAddr: %v", err)
	}
	l.Close()
}

func TestUniqueName(t *testing.T) {
	a, b := testenv.UniqueName(t), testenv.UniqueName(t)
	if a == b {
		t.Fatalf("UniqueName twice = %q", a)
	}
	for _, s := range []string{a, b} {
		if len(s) > 40 || !strings.HasPrefix(s, "t_") || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Errorf("UniqueName = %q: want [a-z0-9_]{,40} starting with t_", s)
		}
	}
}

func TestTempDir(t *testing.T) {
	var dir string
	t.Run("inner", func(t *testing.T) {
		dir = testenv.TempDir(t, "x/y")
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("TempDir %s still there after its test: %v", dir, err)
	}
}

func TestProcessExitCodeAndLog(t *testing.T) {
	tests := []struct {
		name   string
		script string
		code   int
		log    string
	}{
		{"ok", "echo out; echo err >&2", 0, "out\nerr\n"},
		{"fails", "echo bye; exit 7", 7, "bye\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testenv.Start(t, tc.name, "/bin/sh", "-c", tc.script)
			code, err := p.Wait(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if got := p.Log(); got != tc.log {
				t.Errorf("log %q, want %q", got, tc.log)
			}
		})
	}
}

func TestProcessStopKillWait(t *testing.T) {
	// Stop: SIGTERM reaches a shell that traps it and exits 0.
	p := testenv.Start(t, "term", "/bin/sh", "-c", `trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done`)
	p.WaitLog(t, "ready", 10*time.Second)
	if _, err := p.Wait(100 * time.Millisecond); err == nil {
		t.Fatal("Wait on a running process returned no error")
	}
	code, err := p.Stop(10 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("Stop = %d, %v; want 0, nil", code, err)
	}
	if !strings.Contains(p.Log(), "got-term") {
		t.Errorf("log %q lacks got-term", p.Log())
	}

	// Kill: SIGKILL of the whole group, including a child of the process.
	k := testenv.Start(t, "kill", "/bin/sh", "-c", `sleep 1000 & echo child $!; wait`)
	k.WaitLog(t, "child ", 10*time.Second)
	var child int
	for _, f := range strings.Fields(k.Log()) {
		if n, err := strconv.Atoi(f); err == nil {
			child = n
		}
	}
	if err := k.Kill(); err != nil {
		t.Fatal(err)
	}
	if code, ok := k.ExitCode(); !ok || code != -1 {
		t.Errorf("ExitCode after Kill = %d, %v; want -1, true", code, ok)
	}
	if child == 0 {
		t.Fatalf("no child pid in log %q", k.Log())
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil {
		// A killed child is a zombie until init reaps it; /proc tells.
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat"); err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the killed process still runs", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWaitListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	testenv.WaitListening(t, nil, l.Addr().String(), 5*time.Second)
}

func TestBuildTandem(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/tandem; skipped with -short")
	}
	bin := testenv.BuildTandem(t)
	if again := testenv.BuildTandem(t); again != bin {
		t.Fatalf("second BuildTandem = %s, want the first %s", again, bin)
	}
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s help: %v\n%s", bin, err, out)
	}
	if !strings.Contains(string(out), "usage: tandem") {
		t.Fatalf("%s help printed %q", bin, out)
	}
}
