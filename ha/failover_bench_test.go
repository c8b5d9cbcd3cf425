package ha

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

const childEnv = "TANDEM_HA_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(childPrimary(dir))
	}
	if spec := os.Getenv(dbChildEnv); spec != "" {
		os.Exit(dbZombieChild(spec))
	}
	os.Exit(m.Run())
}

// childPrimary runs a primary with the default settings and prints
// "serving" once it serves; it runs until killed.
func childPrimary(dir string) int {
	m, err := lockfile.Open(dir, lockfile.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	hooks := Hooks{
		LoadStore:    func(context.Context, uint64) error { return nil },
		StartServing: func(uint64) { fmt.Println("serving") },
		StopServing:  func() {},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	c, err := NewFileLockCoordinator(m, DefaultConfig(Primary, FileLock), hooks)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err = c.Run(context.Background())
	fmt.Fprintln(os.Stderr, err)
	return 3
}

// BenchmarkFailoverSIGKILL measures, with the default settings (lock poll
// 100 ms, lease 1 s, fence 1 s, empty store), the time from SIGKILL of a
// live primary process to the in-process backup serving.
//
//	go test -run '^$' -bench FailoverSIGKILL -benchtime 5x ./ha/
func BenchmarkFailoverSIGKILL(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += failoverOnce(b)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
}

func failoverOnce(b *testing.B) time.Duration {
	dir := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "serving\n" {
		b.Fatalf("child: %q %v", l, err)
	}
	m, err := lockfile.Open(dir, lockfile.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	serving := make(chan time.Time, 1)
	hooks := Hooks{
		LoadStore:    func(context.Context, uint64) error { return nil },
		StartServing: func(uint64) { serving <- time.Now() },
		StopServing:  func() {},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	c, err := NewFileLockCoordinator(m, DefaultConfig(Backup, FileLock), hooks)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for c.Phase() != PhaseWaitPrimary {
		time.Sleep(time.Millisecond)
	}
	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		b.Fatal(err)
	}
	select {
	case at := <-serving:
		return at.Sub(killed)
	case <-time.After(30 * time.Second):
		b.Fatal("backup not serving within 30 s")
	}
	return 0
}
