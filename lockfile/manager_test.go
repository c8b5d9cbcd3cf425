package lockfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func openT(t *testing.T, dir string, opts Options) *Manager {
	t.Helper()
	m, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mustTry(t *testing.T, try func() (bool, error), want bool) {
	t.Helper()
	got, err := try()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("acquired = %v, want %v", got, want)
	}
}

func TestOpenCreatesNodeIDOnce(t *testing.T) {
	dir := t.TempDir()
	m1 := openT(t, dir, Options{})
	if m1.NodeID().IsZero() {
		t.Fatal("zero node ID")
	}
	m2 := openT(t, dir, Options{})
	if m1.NodeID() != m2.NodeID() {
		t.Fatalf("node IDs differ: %s %s", m1.NodeID(), m2.NodeID())
	}
	r, err := m2.ReadState()
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateFirstStart || r.Epoch != 0 || r.NodeID != m1.NodeID() {
		t.Fatalf("fresh record %+v", r)
	}
	m1.Close()
	m3 := openT(t, dir, Options{})
	if m3.NodeID() != m2.NodeID() {
		t.Fatal("node ID changed on reopen")
	}
}

// OFD locks conflict between open file descriptions even inside one
// process: two Managers on one directory exclude each other.
func TestTwoManagersConflict(t *testing.T) {
	dir := t.TempDir()
	a, b := openT(t, dir, Options{}), openT(t, dir, Options{})
	mustTry(t, a.TryAcquirePrimary, true)
	mustTry(t, a.TryAcquirePrimary, true) // re-acquiring our own lock is a no-op
	mustTry(t, b.TryAcquirePrimary, false)
	mustTry(t, b.TryAcquireBackup, true)
	mustTry(t, a.TryAcquireBackup, false)
	if err := a.ReleasePrimary(); err != nil {
		t.Fatal(err)
	}
	mustTry(t, b.TryAcquirePrimary, true)
	mustTry(t, a.TryAcquirePrimary, false)
	if err := b.ReleaseBackup(); err != nil {
		t.Fatal(err)
	}
	mustTry(t, a.TryAcquireBackup, true)
}

// Opening and closing the lock file elsewhere in the process does not drop
// an OFD lock (it would drop a classic POSIX lock).
func TestOtherCloseKeepsLock(t *testing.T) {
	dir := t.TempDir()
	a, b := openT(t, dir, Options{}), openT(t, dir, Options{})
	mustTry(t, a.TryAcquirePrimary, true)
	f, err := os.Open(filepath.Join(dir, PrimaryFileName))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustTry(t, b.TryAcquirePrimary, false)
}

func TestAcquireWaitsAndCancels(t *testing.T) {
	dir := t.TempDir()
	a := openT(t, dir, Options{PollInterval: time.Millisecond})
	b := openT(t, dir, Options{PollInterval: time.Millisecond})
	if err := a.AcquirePrimary(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.AcquirePrimary(ctx) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	go func() { done <- b.AcquirePrimary(context.Background()) }()
	if err := a.ReleasePrimary(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !b.HoldsPrimary() || a.HoldsPrimary() {
		t.Fatal("wrong holder")
	}
}

func TestEpochStrictlyIncreases(t *testing.T) {
	dir := t.TempDir()
	ms := []*Manager{openT(t, dir, Options{}), openT(t, dir, Options{})}
	if _, err := ms[0].BumpEpoch(StateActive); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("bump without lock: %v", err)
	}
	var last uint64
	for i := range 6 {
		m := ms[i%2]
		mustTry(t, m.TryAcquirePrimary, true)
		e, err := m.BumpEpoch(StateActive)
		if err != nil {
			t.Fatal(err)
		}
		if e <= last {
			t.Fatalf("epoch %d after %d", e, last)
		}
		last = e
		if err := m.WriteState(StatePaused); err != nil {
			t.Fatal(err)
		}
		r, err := ms[(i+1)%2].ReadState()
		if err != nil {
			t.Fatal(err)
		}
		if r.Epoch != e || r.State != StatePaused {
			t.Fatalf("peer reads %+v, want epoch %d P", r, e)
		}
		if err := m.ReleasePrimary(); err != nil {
			t.Fatal(err)
		}
	}
	r, err := ReadStateFile(filepath.Join(dir, StateFileName))
	if err != nil || r.Epoch != last {
		t.Fatalf("ReadStateFile: %+v %v", r, err)
	}
}

func TestCorruptStateFile(t *testing.T) {
	dir := t.TempDir()
	m := openT(t, dir, Options{})
	m.Close()
	p := filepath.Join(dir, StateFileName)
	b, _ := os.ReadFile(p)
	b[30] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	var fe *FormatError
	if !errors.As(err, &fe) || fe.File != p || fe.Offset != crcOffset {
		t.Fatalf("got %v, want FormatError at %s offset %d", err, p, crcOffset)
	}
}

const (
	childEnv         = "TANDEM_LOCKFILE_CHILD_DIR"
	childFailbackEnv = "TANDEM_LOCKFILE_CHILD_FAILBACK" // hold the failback lock instead
)

// TestMain lets the test binary act as a child broker holding the primary
// lock (re-exec with childEnv set).
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(childHold(dir))
	}
	if dir := os.Getenv(zombieEnv); dir != "" {
		os.Exit(zombieChild(dir))
	}
	os.Exit(m.Run())
}

func childHold(dir string) int {
	m, err := Open(dir, Options{PollInterval: time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv(childFailbackEnv) != "" {
		if ok, err := m.TryAcquireFailback(); !ok || err != nil {
			fmt.Fprintln(os.Stderr, "failback lock:", ok, err)
			return 1
		}
	} else {
		if err := m.AcquirePrimary(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := m.BumpEpoch(StateActive); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Println("locked")
	select {} // hold until killed
}

// A process holding the primary lock is SIGKILLed: the kernel releases the
// lock and another Manager acquires it, seeing state L (crash: failover).
func TestChildKilledReleasesLock(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := startChild(t, dir, false)
	m := openT(t, dir, Options{PollInterval: time.Millisecond})
	mustTry(t, m.TryAcquirePrimary, false)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.AcquirePrimary(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := m.ReadState()
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateActive || r.Epoch != 1 {
		t.Fatalf("state after crash %+v, want L epoch 1", r)
	}
	e, err := m.BumpEpoch(StateActive)
	if err != nil || e != 2 {
		t.Fatalf("bump after takeover: %d %v", e, err)
	}
}

// A starting primary that holds the failback lock is seen as waiting; once
// it is SIGKILLed, it is not (its F is stale).
func TestChildKilledReleasesFailbackLock(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := startChild(t, dir, true)
	m := openT(t, dir, Options{})
	if w, err := m.FailbackWaiting(); err != nil || !w {
		t.Fatalf("waiting = %v, %v; want true", w, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w, err := m.FailbackWaiting()
		if err != nil {
			t.Fatal(err)
		}
		if !w {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("failback lock still held 30 s after SIGKILL")
		}
		time.Sleep(time.Millisecond)
	}
}

// startChild re-executes the test binary holding the primary lock (or the
// failback lock) in dir, and waits until it says so.
func startChild(t *testing.T, dir string, failback bool) (*exec.Cmd, io.ReadCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	if failback {
		cmd.Env = append(cmd.Env, childFailbackEnv+"=1")
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	return cmd, out
}

func TestFailbackLock(t *testing.T) {
	dir := t.TempDir()
	primary, live := openT(t, dir, Options{}), openT(t, dir, Options{})
	if w, err := live.FailbackWaiting(); err != nil || w {
		t.Fatalf("nobody waiting: %v %v", w, err)
	}
	mustTry(t, primary.TryAcquireFailback, true)
	if w, err := live.FailbackWaiting(); err != nil || !w {
		t.Fatalf("primary waiting: %v %v", w, err)
	}
	mustTry(t, live.TryAcquirePrimary, true)
	e, err := live.BumpEpoch(StateActive)
	if err != nil {
		t.Fatal(err)
	}
	v, err := live.Verify(e)
	if err != nil || !v.FailbackWaiting {
		t.Fatalf("verification %+v %v: want FailbackWaiting", v, err)
	}
	if err := primary.ReleaseFailback(); err != nil {
		t.Fatal(err)
	}
	if v, err := live.Verify(e); err != nil || v.FailbackWaiting {
		t.Fatalf("verification %+v %v: want no FailbackWaiting", v, err)
	}
}

// An epoch written back over a newer one in server.lock (a writer whose
// lock on it was lost) is never handed out again: the last live's
// heartbeat in primary.lock carries its epoch.
func TestBumpEpochSurvivesRegression(t *testing.T) {
	dir := t.TempDir()
	m := openT(t, dir, Options{})
	mustTry(t, m.TryAcquirePrimary, true)
	for range 3 {
		if _, err := m.BumpEpoch(StateActive); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, StateFileName)
	r, err := ReadStateFile(p)
	if err != nil || r.Epoch != 3 {
		t.Fatalf("%+v %v", r, err)
	}
	r.Epoch, r.State = 1, StateFailingBack
	if err := os.WriteFile(p, r.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if e, err := m.BumpEpoch(StateActive); err != nil || e != 4 {
		t.Fatalf("bump after regression: %d %v, want 4", e, err)
	}
}

// TestWriteStateAt: the state write of a live at its stop (P) happens only
// under its own epoch: once another broker took a newer one (in
// server.lock, or only in primary.lock's heartbeat after server.lock was
// written back over), it fails with an *EpochError and changes nothing.
func TestWriteStateAt(t *testing.T) {
	dir := t.TempDir()
	a := openT(t, dir, Options{})
	mustTry(t, a.TryAcquirePrimary, true)
	e1, err := a.BumpEpoch(StateActive)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WriteStateAt(StatePaused, e1); err != nil {
		t.Fatalf("write under our own epoch: %v", err)
	}
	if err := a.WriteStateAt(StateActive, e1); err != nil {
		t.Fatal(err)
	}
	// The lock is lost silently; b takes the next epoch.
	if err := a.ReleasePrimary(); err != nil {
		t.Fatal(err)
	}
	b := openT(t, dir, Options{})
	mustTry(t, b.TryAcquirePrimary, true)
	e2, err := b.BumpEpoch(StateActive)
	if err != nil {
		t.Fatal(err)
	}
	var ee *EpochError
	if err := a.WriteStateAt(StatePaused, e1); !errors.As(err, &ee) || ee.Found != e2 {
		t.Fatalf("write under a superseded epoch: %v, want an EpochError finding %d", err, e2)
	}
	if r, err := a.ReadState(); err != nil || r.State != StateActive || r.Epoch != e2 {
		t.Fatalf("state after the refused write: %+v %v", r, err)
	}
	// server.lock written back to the old epoch by a writer whose lock
	// was lost: the heartbeat's newer epoch still refuses the write.
	path := filepath.Join(dir, StateFileName)
	r, err := ReadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r.Epoch = e1
	if err := os.WriteFile(path, r.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteStateAt(StatePaused, e1); !errors.As(err, &ee) || ee.Found != e2 {
		t.Fatalf("write under an epoch only primary.lock supersedes: %v", err)
	}
	if err := a.WriteStateAt(State('x'), e1); err == nil {
		t.Fatal("WriteStateAt accepted a bad letter")
	}
}
