package ha

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// activeNode steps a file-lock node of cfg to active under epoch, its
// first verification at the moment it loaded; it returns that moment.
func activeNode(t *testing.T, cfg Config, epoch uint64) (*Node, time.Duration) {
	t.Helper()
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Duration(0)
	step := func(ev Event) []Action {
		ev.Now = now
		return n.Step(ev)
	}
	step(Event{Kind: EvStart})
	for n.Phase() != PhaseFencing {
		ev := Event{Kind: EvDone, Op: n.Pending(), Ok: true, State: lockfile.StateActive, Waiting: true, Epoch: epoch}
		if n.Pending() == ActNone {
			t.Fatalf("stuck in %s", n)
		}
		step(ev)
	}
	for n.Phase() == PhaseFencing {
		now += time.Millisecond
		step(Event{Kind: EvTick})
	}
	step(Event{Kind: EvDone, Op: ActLoadStore})
	step(Event{Kind: EvVerified, Start: now, Epoch: epoch, State: lockfile.StateActive, Waiting: true})
	if !n.CanAck(now) {
		t.Fatalf("not active: %s", n)
	}
	return n, now
}

// TestFenceWaitsLeasePlusMargin (issue 21 §5): the file-lock fence waits
// the lease plus FenceMargin(lease), a tenth of the lease plus 100 ms, and
// the node loads the store exactly then, not one lease after the bump.
func TestFenceWaitsLeasePlusMargin(t *testing.T) {
	for _, lease := range []time.Duration{time.Second, 10 * time.Second} {
		cfg := DefaultConfig(Backup, FileLock)
		cfg.Lease = lease
		cfg.FenceWait = cfg.Lease + FenceMargin(cfg.Lease)
		if want := lease + lease/10 + 100*time.Millisecond; cfg.FenceWait != want {
			t.Fatalf("lease %v: fence %v, want %v", lease, cfg.FenceWait, want)
		}
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n.Step(Event{Kind: EvStart})
		n.Step(Event{Kind: EvDone, Op: ActTryAcquireBackup, Ok: true})
		n.Step(Event{Kind: EvDone, Op: ActTryAcquirePrimary, Ok: true})
		n.Step(Event{Kind: EvDone, Op: ActReadState, State: lockfile.StateActive})
		bump := 5 * time.Second
		n.Step(Event{Kind: EvDone, Op: ActBumpEpoch, Epoch: 3, Now: bump})
		for _, at := range []time.Duration{bump + lease, bump + cfg.FenceWait - 1} {
			if acts := n.Step(Event{Kind: EvTick, Now: at}); len(acts) != 0 || n.Phase() != PhaseFencing {
				t.Fatalf("lease %v: at bump+%v the node did %v (%s), want it still fencing", lease, at-bump, acts, n)
			}
		}
		acts := n.Step(Event{Kind: EvTick, Now: bump + cfg.FenceWait})
		if len(acts) != 1 || acts[0].Kind != ActLoadStore {
			t.Fatalf("lease %v: at bump+fence the node did %v, want load-store", lease, acts)
		}
	}
	if c := DefaultConfig(Primary, FileLock); c.FenceWait != 1200*time.Millisecond {
		t.Fatalf("default fence %v, want 1.2s (lease 1s + margin)", c.FenceWait)
	}
}

// TestMayWrite (issue 21 §2): writes outside the load need a proof; a stop
// keeps the proof it had (the store is closed under it) and a fresher
// monitor verification of the same activation extends it; nothing counts
// after a halt, and a stop without a proof halts.
func TestMayWrite(t *testing.T) {
	cfg := DefaultConfig(Primary, FileLock)
	n, at := activeNode(t, cfg, 2)
	lease := cfg.Lease
	n.Step(Event{Kind: EvStop, Now: at + lease/2})
	if n.Phase() != PhasePausing {
		t.Fatalf("stop under a valid proof: %s", n)
	}
	switch {
	case !n.MayWrite(at + lease - 1):
		t.Fatal("closing the store within the proof is refused")
	case n.MayWrite(at + lease):
		t.Fatal("closing the store is allowed after the proof ran out")
	case !n.MayWriteWith(at+lease, at+lease/2, 2):
		t.Fatal("a newer verification of the same epoch (the monitor's) does not count")
	case n.MayWriteWith(at+lease, at+lease/2, 3):
		t.Fatal("a verification of another epoch counts")
	case n.MayWriteWith(at+2*lease, at+lease/2, 2):
		t.Fatal("a monitor verification counts beyond its lease")
	}
	n.Step(Event{Kind: EvDone, Op: ActWriteState, Err: errors.New("epoch superseded"), Now: at + lease/2})
	if n.Phase() != PhaseHalted || n.MayWrite(at+lease/2) || n.MayWriteWith(at+lease/2, at+lease/2, 2) {
		t.Fatalf("after a halt: %s", n)
	}

	// Paused past the lease, then stopped: halt, no close, no P.
	n, at = activeNode(t, cfg, 2)
	acts := n.Step(Event{Kind: EvStop, Now: at + lease})
	if n.Phase() != PhaseHalted || !errors.Is(acts[len(acts)-1].Err, ErrLeaseExpired) {
		t.Fatalf("stop after the lease: %v, %s", acts, n)
	}
	for _, a := range acts {
		if a.Kind == ActWriteState {
			t.Fatalf("stop after the lease writes the state: %v", acts)
		}
	}
}

// TestRunnerMayWriteWhileClosing: with a real lock directory, a store
// that takes longer than the lease to close (a slow fdatasync) may still
// be written while the monitor keeps proving the lock (the node hears of
// those verifications only after the hook), and not once the lock is
// lost.
func TestRunnerMayWriteWhileClosing(t *testing.T) {
	dir := t.TempDir()
	opts := lockfile.Options{PollInterval: 5 * time.Millisecond, Lease: time.Second, CheckInterval: 50 * time.Millisecond}
	m, err := lockfile.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	cfg := DefaultConfig(Primary, FileLock)
	cfg.RetryInterval, cfg.Lease, cfg.FenceWait = opts.PollInterval, opts.Lease, opts.Lease
	serving := make(chan struct{})
	var c *FileLockCoordinator
	closed := make(chan error, 1)
	hooks := Hooks{
		LoadStore:    func(context.Context, uint64) error { return nil },
		StartServing: func(uint64) { close(serving) },
		StopServing: func() {
			closed <- func() error {
				start := time.Now()
				// The close outlasts the proof the node had at the stop.
				for time.Since(start) < 2*opts.Lease {
					if !c.MayWrite() {
						return errors.New("writes refused while the monitor still proves the lock")
					}
					time.Sleep(10 * time.Millisecond)
				}
				if err := m.ReleasePrimary(); err != nil { // the lock is lost
					return err
				}
				for deadline := time.Now().Add(10 * time.Second); c.MayWrite(); {
					if time.Now().After(deadline) {
						return errors.New("writes still allowed 10 s after the lock was lost")
					}
					time.Sleep(10 * time.Millisecond)
				}
				return nil
			}()
		},
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	c, err = NewFileLockCoordinator(m, cfg, hooks)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	select {
	case <-serving:
	case <-time.After(30 * time.Second):
		t.Fatal("not serving after 30 s")
	}
	c.Stop(FailoverNo)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("the stop ended with %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not stopped after 30 s")
	}
}
