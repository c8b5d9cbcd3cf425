package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// Hooks are what a coordinator adapter needs from the broker. Every hook is
// called from the adapter's Run goroutine, one at a time.
type Hooks struct {
	// LoadStore loads (replays) the store; records written from now on
	// carry epoch. Required.
	LoadStore func(ctx context.Context, epoch uint64) error
	// StartServing opens the broker to clients under epoch; it
	// acknowledges only while CanAck. Required.
	StartServing func(epoch uint64)
	// StopServing stops acknowledging and closes client connections.
	// Required.
	StopServing func()
	// Announce publishes this broker's role, epoch and peers (optional).
	Announce func(Action)
	// Logger receives one line per action; default slog.Default().
	Logger *slog.Logger
}

// HaltError is what Run returns when the node halted: the broker must exit
// with the "halted" status and let the backup take over.
type HaltError struct{ Err error }

func (e *HaltError) Error() string { return "ha: halted: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *HaltError) Unwrap() error { return e.Err }

// FileLockCoordinator runs a shared-store Node against a lock directory
// (lockfile.Manager): its Run goroutine feeds events into the node and
// carries out the node's actions. CanAck, Stop, StorageError and
// PeerAnnounced may be called from any goroutine.
type FileLockCoordinator struct {
	mgr    *lockfile.Manager
	hooks  Hooks
	log    *slog.Logger
	origin time.Time
	tick   time.Duration

	mu   sync.Mutex // guards node
	node *Node

	events  chan Event
	monitor *lockfile.Monitor // only touched by Run
	runDone chan struct{}
}

// NewFileLockCoordinator returns an adapter for cfg (whose Coordinator must
// be FileLock) over mgr. The lease and poll interval of cfg should match
// mgr's options; FenceWait must be at least the lease.
func NewFileLockCoordinator(mgr *lockfile.Manager, cfg Config, hooks Hooks) (*FileLockCoordinator, error) {
	if cfg.Coordinator != FileLock {
		return nil, errors.New("ha: FileLockCoordinator needs Coordinator FileLock")
	}
	if cfg.Lease < mgr.Options().Lease {
		return nil, fmt.Errorf("ha: node lease %v shorter than the lock monitor's %v", cfg.Lease, mgr.Options().Lease)
	}
	if hooks.LoadStore == nil || hooks.StartServing == nil || hooks.StopServing == nil {
		return nil, errors.New("ha: LoadStore, StartServing and StopServing hooks are required")
	}
	n, err := NewNode(cfg)
	if err != nil {
		return nil, err
	}
	log := hooks.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node_id", mgr.NodeID().String(), "role", cfg.Role.String())
	tick := min(cfg.RetryInterval, cfg.Lease/4) / 2
	return &FileLockCoordinator{
		mgr: mgr, hooks: hooks, log: log, origin: time.Now(), tick: max(tick, time.Millisecond),
		node: n, events: make(chan Event, 64), runDone: make(chan struct{}),
	}, nil
}

func (c *FileLockCoordinator) since(t time.Time) time.Duration { return t.Sub(c.origin) }

// CanAck reports whether the broker may acknowledge now: the node is
// active and its last good verification is younger than the lease.
func (c *FileLockCoordinator) CanAck() bool {
	now := time.Now()
	c.mu.Lock()
	ok := c.node.CanAck(c.since(now))
	c.mu.Unlock()
	return ok
}

// Epoch returns the epoch of the current or last activation.
func (c *FileLockCoordinator) Epoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.node.Epoch()
}

// Phase returns the node's phase (for status output).
func (c *FileLockCoordinator) Phase() Phase {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.node.Phase()
}

// send delivers an outside event unless Run has ended.
func (c *FileLockCoordinator) send(ev Event) {
	select {
	case c.events <- ev:
	case <-c.runDone:
	}
}

// Stop asks for a clean stop; Run returns when it is done.
func (c *FileLockCoordinator) Stop(f Failover) { c.send(Event{Kind: EvStop, Failover: f}) }

// StorageError reports an I/O error of the store: the node halts.
func (c *FileLockCoordinator) StorageError(err error) {
	c.send(Event{Kind: EvStorageError, Err: err})
}

// PeerAnnounced reports another broker's announcement.
func (c *FileLockCoordinator) PeerAnnounced(p Peer) { c.send(Event{Kind: EvPeerAnnounced, Peer: p}) }

func (c *FileLockCoordinator) step(ev Event) []Action {
	if ev.Now == 0 {
		ev.Now = c.since(time.Now())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.node.Step(ev)
}

// report returns the callback of the monitor of epoch (monitor goroutine).
func (c *FileLockCoordinator) report(epoch uint64) func(lockfile.Verification, error) {
	return func(v lockfile.Verification, err error) { c.reportEpoch(epoch, v, err) }
}

func (c *FileLockCoordinator) reportEpoch(epoch uint64, v lockfile.Verification, err error) {
	if err != nil {
		c.send(Event{Kind: EvLockLost, Err: err, Epoch: epoch})
		return
	}
	ev := Event{Kind: EvVerified, Start: c.since(v.Start), Epoch: v.Epoch, State: v.State}
	select {
	case c.events <- ev:
	default: // a later report will do; a loss is never dropped (send blocks)
	}
}

// Run starts the node and runs it until it stops (nil), halts
// (*HaltError) or ctx ends (it then stops cleanly with the configured
// failover-on-shutdown and returns ctx.Err()). After a halt the broker
// must exit (or at least close the Manager): releasing a lock can fail on
// a broken file system, and only closing the file then drops it.
func (c *FileLockCoordinator) Run(ctx context.Context) error {
	defer close(c.runDone)
	defer c.stopMonitor()
	queue := c.step(Event{Kind: EvStart})
	ticker := time.NewTicker(c.tick)
	defer ticker.Stop()
	var ctxErr error
	done := ctx.Done()
	for {
		for len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			c.log.Debug("ha action", "action", a.String())
			switch a.Kind {
			case ActHalt:
				c.log.Error("halting", "err", a.Err)
				return &HaltError{Err: a.Err}
			case ActStopped:
				c.log.Info("stopped")
				return ctxErr
			}
			if ev, ok := c.exec(ctx, a); ok {
				queue = append(queue, c.step(ev)...)
			}
		}
		select {
		case <-done:
			ctxErr, done = ctx.Err(), nil
			queue = c.step(Event{Kind: EvStop})
		case ev := <-c.events:
			queue = c.step(ev)
		case <-ticker.C:
			queue = c.step(Event{Kind: EvTick})
		}
	}
}

func (c *FileLockCoordinator) stopMonitor() {
	if c.monitor != nil {
		c.monitor.Stop()
		c.monitor = nil
	}
}

// exec carries out one action; for an operation it returns the result.
func (c *FileLockCoordinator) exec(ctx context.Context, a Action) (Event, bool) {
	ev := Event{Kind: EvDone, Op: a.Kind}
	switch a.Kind {
	case ActWriteState:
		ev.Err = c.mgr.WriteState(a.State)
	case ActReadState:
		var r lockfile.Record
		r, ev.Err = c.mgr.ReadState()
		ev.State = r.State
	case ActTryAcquirePrimary:
		ev.Ok, ev.Err = c.mgr.TryAcquirePrimary()
	case ActTryAcquireBackup:
		ev.Ok, ev.Err = c.mgr.TryAcquireBackup()
	case ActBumpEpoch:
		ev.Epoch, ev.Err = c.mgr.BumpEpoch(lockfile.StateActive)
		if ev.Err == nil {
			c.log.Info("took epoch", "epoch", ev.Epoch)
		}
	case ActLoadStore:
		ev.Err = c.hooks.LoadStore(ctx, a.Epoch)
	case ActRenewLease:
		ev.Err = errors.New("ha: renew-lease on a file lock")
	case ActStartMonitor:
		c.stopMonitor()
		mo, err := c.mgr.StartMonitor(a.Epoch, c.report(a.Epoch))
		if err != nil {
			return Event{Kind: EvLockLost, Err: err, Epoch: a.Epoch}, true
		}
		c.monitor = mo
		v := mo.Last()
		return Event{Kind: EvVerified, Start: c.since(v.Start), Epoch: v.Epoch, State: v.State}, true
	case ActStopMonitor:
		c.stopMonitor()
		return ev, false
	case ActStartServing:
		c.log.Info("serving", "epoch", a.Epoch)
		c.hooks.StartServing(a.Epoch)
		return ev, false
	case ActStopServing:
		c.log.Info("stopped serving")
		c.hooks.StopServing()
		return ev, false
	case ActAnnounce:
		if c.hooks.Announce != nil {
			c.hooks.Announce(a)
		}
		return ev, false
	case ActReleasePrimary:
		c.release("primary", c.mgr.ReleasePrimary)
		return ev, false
	case ActReleaseBackup:
		c.release("backup", c.mgr.ReleaseBackup)
		return ev, false
	default:
		return ev, false
	}
	return ev, true
}

// release runs a lock release, waiting at most one lease for it: on a dead
// NFS mount fcntl can hang, and a halting broker must not hang with it
// (its exit drops the lock anyway). A release that does not return in time
// is left to finish on its own goroutine.
func (c *FileLockCoordinator) release(which string, fn func() error) {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(c.node.cfg.Lease)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			c.log.Warn("releasing the lock failed", "lock", which, "err", err)
		}
	case <-t.C:
		c.log.Error("releasing the lock did not return within the lease; going on", "lock", which)
	}
}
