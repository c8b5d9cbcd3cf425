package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// serveLog records StartServing/StopServing of several in-process brokers
// and fails the test if two ever serve at once.
type serveLog struct {
	t       *testing.T
	mu      sync.Mutex
	serving map[string]uint64 // broker -> epoch
	epochs  []uint64          // activations in order
	changed chan struct{}
}

func newServeLog(t *testing.T) *serveLog {
	return &serveLog{t: t, serving: map[string]uint64{}, changed: make(chan struct{}, 100)}
}

func (l *serveLog) hooks(name string) Hooks {
	return Hooks{
		LoadStore: func(ctx context.Context, epoch uint64) error { return nil },
		StartServing: func(epoch uint64) {
			l.mu.Lock()
			for other, e := range l.serving {
				l.t.Errorf("%s serves epoch %d while %s serves epoch %d", name, epoch, other, e)
			}
			if n := len(l.epochs); n > 0 && l.epochs[n-1] >= epoch {
				l.t.Errorf("%s activates epoch %d after epoch %d", name, epoch, l.epochs[n-1])
			}
			l.serving[name] = epoch
			l.epochs = append(l.epochs, epoch)
			l.mu.Unlock()
			l.changed <- struct{}{}
		},
		StopServing: func() {
			l.mu.Lock()
			delete(l.serving, name)
			l.mu.Unlock()
			l.changed <- struct{}{}
		},
	}
}

// waitServing waits until name serves (or, with name "", nobody serves).
func (l *serveLog) waitServing(name string) uint64 {
	l.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		e, ok := l.serving[name]
		none := len(l.serving) == 0
		l.mu.Unlock()
		if (name != "" && ok) || (name == "" && none) {
			return e
		}
		select {
		case <-l.changed:
		case <-deadline:
			l.t.Fatalf("%q not serving within 30 s (serving: %v)", name, l.serving)
		}
	}
}

// Generous leases: the test machine is shared and slow; nothing here
// asserts timing.
var (
	testLockOpts = lockfile.Options{PollInterval: 5 * time.Millisecond, Lease: 2 * time.Second, CheckInterval: 50 * time.Millisecond}
)

func testCfg(role Role, mod func(*Config)) Config {
	c := DefaultConfig(role, FileLock)
	c.RetryInterval, c.Lease, c.FenceWait = testLockOpts.PollInterval, testLockOpts.Lease, testLockOpts.Lease
	if mod != nil {
		mod(&c)
	}
	return c
}

type runner struct {
	c    *FileLockCoordinator
	m    *lockfile.Manager
	done chan error
}

func startNode(t *testing.T, dir string, cfg Config, hooks Hooks) *runner {
	t.Helper()
	m, err := lockfile.Open(dir, testLockOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if hooks.Logger == nil {
		hooks.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	c, err := NewFileLockCoordinator(m, cfg, hooks)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{c: c, m: m, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (r *runner) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("node did not finish within 30 s")
		return nil
	}
}

// Two brokers in one process on a real lock directory: the primary serves,
// stops with failover, the backup takes over with a newer epoch, the
// primary returns and the backup fails back and waits again.
func TestFileLockFailoverAndFailback(t *testing.T) {
	dir := t.TempDir()
	log := newServeLog(t)
	p := startNode(t, dir, testCfg(Primary, nil), log.hooks("primary"))
	e1 := log.waitServing("primary")
	if !p.c.CanAck() {
		t.Fatal("active primary cannot ack")
	}
	if st := p.c.Status(); st != (Status{Role: "primary", State: "active", Phase: "active", Epoch: e1}) {
		t.Fatalf("status %+v", st)
	}
	b := startNode(t, dir, testCfg(Backup, nil), log.hooks("backup"))

	p.c.Stop(FailoverYes)
	if err := p.wait(t); err != nil {
		t.Fatalf("primary stop: %v", err)
	}
	e2 := log.waitServing("backup")
	if e2 <= e1 || !b.c.CanAck() {
		t.Fatalf("backup epoch %d after %d, can ack %v", e2, e1, b.c.CanAck())
	}

	p2 := startNode(t, dir, testCfg(Primary, nil), log.hooks("primary"))
	e3 := log.waitServing("primary")
	if e3 <= e2 {
		t.Fatalf("failback epoch %d after %d", e3, e2)
	}
	if b.c.CanAck() {
		t.Fatal("backup still acks after failback")
	}
	// Clean stop without failover: P is written, the backup stays passive.
	p2.c.Stop(FailoverNo)
	if err := p2.wait(t); err != nil {
		t.Fatal(err)
	}
	r, err := lockfile.ReadStateFile(filepath.Join(dir, lockfile.StateFileName))
	if err != nil || r.State != lockfile.StatePaused || r.Epoch != e3 {
		t.Fatalf("after clean stop: %+v %v", r, err)
	}
	if ph := b.c.Phase(); ph != PhaseWaitPrimary {
		t.Fatalf("backup phase %s, want %s", ph, PhaseWaitPrimary)
	}
	b.c.Stop(FailoverDefault)
	if err := b.wait(t); err != nil {
		t.Fatal(err)
	}
	log.waitServing("")
}

// A newer epoch appears in server.lock (another broker activated after our
// lock was lost): the live halts and acknowledges nothing.
func TestFileLockHaltsOnNewerEpoch(t *testing.T) {
	dir := t.TempDir()
	log := newServeLog(t)
	p := startNode(t, dir, testCfg(Primary, nil), log.hooks("primary"))
	e := log.waitServing("primary")
	path := filepath.Join(dir, lockfile.StateFileName)
	rec, err := lockfile.ReadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rec.Epoch = e + 1
	if err := os.WriteFile(path, rec.Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	err = p.wait(t)
	var he *HaltError
	var ee *lockfile.EpochError
	if !errors.As(err, &he) || !errors.As(err, &ee) {
		t.Fatalf("got %v, want HaltError with EpochError", err)
	}
	if p.c.CanAck() {
		t.Fatal("halted node can ack")
	}
	log.waitServing("")
}

// A storage error from the broker halts it; the backup takes over.
func TestFileLockStorageErrorFailsOver(t *testing.T) {
	dir := t.TempDir()
	log := newServeLog(t)
	p := startNode(t, dir, testCfg(Primary, nil), log.hooks("primary"))
	e1 := log.waitServing("primary")
	startNode(t, dir, testCfg(Backup, nil), log.hooks("backup"))
	p.c.StorageError(fmt.Errorf("journal: fdatasync: %w", os.ErrInvalid))
	if err := p.wait(t); !errors.As(err, new(*HaltError)) {
		t.Fatalf("got %v, want HaltError", err)
	}
	if e2 := log.waitServing("backup"); e2 <= e1 {
		t.Fatalf("backup epoch %d after %d", e2, e1)
	}
}
