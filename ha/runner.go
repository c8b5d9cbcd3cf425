package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Hooks are what a Runner needs from the broker. Every hook is called from
// the Runner's Run goroutine, one at a time.
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
	// Logger receives one line per state change; default slog.Default().
	Logger *slog.Logger
}

// Verification is a good check of the lock or renewal of the lease.
type Verification struct {
	Start time.Time // when the check or renew request began (monotonic)
	Epoch uint64    // the epoch the coordinator holds for us
	State State     // the shared state letter
	// FailbackWaiting: a primary that wrote F is alive and waiting.
	FailbackWaiting bool
}

// Lock names a coordinator lock (or lease).
type Lock int

// Locks.
const (
	LockPrimary  Lock = iota // held by the live
	LockBackup               // held by the one waiting backup
	LockFailback             // held by a starting primary while its F is pending
)

func (l Lock) String() string {
	return [...]string{"primary", "backup", "failback"}[l]
}

// ErrLost marks a Backend error that means the lock or lease is no longer
// ours (as opposed to a transient failure). Backends wrap it.
var ErrLost = errors.New("ha: lock or lease lost")

// Backend carries out a coordinator's operations for a Runner: the lock
// directory (package lockfile) or a database lease. Calls come from the
// Runner's goroutine, one at a time, except that StartMonitor's report
// callback runs on the backend's own goroutine.
type Backend interface {
	// ReadState reads the shared state letter and whether a primary that
	// wrote F is alive and waiting (true if the coordinator cannot tell).
	ReadState(ctx context.Context) (s State, failbackWaiting bool, err error)
	// WriteState writes the shared state letter. With epoch not 0 the
	// write is conditional and atomic with respect to an epoch bump: it
	// fails (wrapping ErrLost, or a *lockfile.EpochError) unless the
	// coordinator's epoch is still epoch.
	WriteState(ctx context.Context, s State, epoch uint64) error
	// TryAcquire tries once for a lock or lease; false, nil means another
	// holds it. A coordinator without a failback lock grants it at once.
	TryAcquire(ctx context.Context, l Lock) (bool, error)
	// BumpEpoch takes the next epoch and writes state L with it. The
	// primary lock or lease is held.
	BumpEpoch(ctx context.Context) (uint64, error)
	// Release gives up a lock or lease.
	Release(ctx context.Context, l Lock) error
	// StartMonitor (file lock) verifies the lock of epoch now, returns that
	// verification, and keeps verifying until StopMonitor, calling report
	// after each check (err wraps ErrLost or is a storage error: both are
	// fatal). Backends of a lease return an error.
	StartMonitor(epoch uint64, report func(Verification, error)) (Verification, error)
	StopMonitor()
	// Renew (database lease) renews the lease of epoch once. An error
	// wrapping ErrLost is definitive; any other is transient.
	Renew(ctx context.Context, epoch uint64) (Verification, error)
	// Describe names the coordinator and node for logs.
	Describe() string
}

// LiveVerifier is a Backend whose monitor verifies on its own goroutine
// (the file lock). LastVerification returns the monitor's newest good
// verification while it runs and has seen no failure; Runner.MayWrite
// counts it even while the Runner is busy in a hook and has not yet fed
// it to the node.
type LiveVerifier interface {
	LastVerification() (Verification, bool)
}

// HaltError is what Run returns when the node halted: the broker must exit
// with the "halted" status and let the backup take over.
type HaltError struct{ Err error }

func (e *HaltError) Error() string { return "ha: halted: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *HaltError) Unwrap() error { return e.Err }

// Runner runs a Node against a Backend: its Run goroutine feeds events into
// the node and carries out the node's actions one at a time. CanAck, Stop,
// StorageError and PeerAnnounced may be called from any goroutine.
type Runner struct {
	b      Backend
	hooks  Hooks
	log    *slog.Logger
	origin time.Time
	tick   time.Duration
	lease  time.Duration

	mu   sync.Mutex // guards node
	node *Node

	events  chan Event
	runDone chan struct{}
}

// NewRunner returns a Runner for cfg over b.
func NewRunner(b Backend, cfg Config, hooks Hooks) (*Runner, error) {
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
	log = log.With("coordinator", b.Describe(), "role", cfg.Role.String())
	tick := min(cfg.RetryInterval, cfg.Lease/4) / 2
	if cfg.Coordinator == DBLease {
		tick = min(tick, cfg.RenewInterval/4)
	}
	return &Runner{
		b: b, hooks: hooks, log: log, origin: time.Now(), tick: max(tick, time.Millisecond), lease: cfg.Lease,
		node: n, events: make(chan Event, 64), runDone: make(chan struct{}),
	}, nil
}

func (r *Runner) since(t time.Time) time.Duration { return t.Sub(r.origin) }

// CanAck reports whether the broker may acknowledge now: the node is
// active and its last good verification is younger than the lease.
func (r *Runner) CanAck() bool {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node.CanAck(r.since(now))
}

// MayWrite reports whether the broker may write to its store now (see
// Node.MayWrite): while it loads the store under its new epoch, or while
// it can prove it holds the lock or lease, also while it closes the store
// on a stop or failback; with a LiveVerifier backend the monitor's newest
// verification counts as proof before the node has seen it.
func (r *Runner) MayWrite() bool {
	now := time.Now()
	r.mu.Lock()
	ok := r.node.MayWrite(r.since(now))
	r.mu.Unlock()
	if ok {
		return true
	}
	lv, isLV := r.b.(LiveVerifier)
	if !isLV {
		return false
	}
	v, ok := lv.LastVerification()
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node.MayWriteWith(r.since(now), r.since(v.Start), v.Epoch)
}

// Epoch returns the epoch of the current or last activation.
func (r *Runner) Epoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node.Epoch()
}

// Phase returns the node's phase (for status output).
func (r *Runner) Phase() Phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node.Phase()
}

// send delivers an outside event unless Run has ended.
func (r *Runner) send(ev Event) {
	select {
	case r.events <- ev:
	case <-r.runDone:
	}
}

// Stop asks for a clean stop; Run returns when it is done.
func (r *Runner) Stop(f Failover) { r.send(Event{Kind: EvStop, Failover: f}) }

// StorageError reports an I/O error of the store: the node halts.
func (r *Runner) StorageError(err error) { r.send(Event{Kind: EvStorageError, Err: err}) }

// PeerAnnounced reports another broker's announcement.
func (r *Runner) PeerAnnounced(p Peer) { r.send(Event{Kind: EvPeerAnnounced, Peer: p}) }

func (r *Runner) step(ev Event) []Action {
	if ev.Now == 0 {
		ev.Now = r.since(time.Now())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node.Step(ev)
}

func (r *Runner) verified(v Verification) Event {
	return Event{Kind: EvVerified, Start: r.since(v.Start), Epoch: v.Epoch, State: v.State, Waiting: v.FailbackWaiting}
}

// report returns the monitor callback for epoch (backend goroutine).
func (r *Runner) report(epoch uint64) func(Verification, error) {
	return func(v Verification, err error) {
		if err != nil {
			r.send(Event{Kind: EvLockLost, Err: err, Epoch: epoch})
			return
		}
		select {
		case r.events <- r.verified(v):
		default: // a later report will do; a loss is never dropped (send blocks)
		}
	}
}

// Run starts the node and runs it until it stops (nil), halts
// (*HaltError) or ctx ends (it then stops cleanly with the configured
// failover-on-shutdown and returns ctx.Err()). After a halt the broker
// must exit (or at least close the lock files): releasing a lock can fail
// on a broken file system, and only closing the file then drops it.
func (r *Runner) Run(ctx context.Context) error {
	// Stop the monitor after runDone is closed: a monitor blocked sending
	// a loss to a full event channel then gives up instead of deadlocking.
	defer r.b.StopMonitor()
	defer close(r.runDone)
	queue := r.step(Event{Kind: EvStart})
	ticker := time.NewTicker(r.tick)
	defer ticker.Stop()
	var ctxErr error
	done := ctx.Done()
	opCtx := ctx // after ctx ends, the clean stop still needs its operations
	for {
		for len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			r.log.Debug("ha action", "action", a.String())
			switch a.Kind {
			case ActHalt:
				r.log.Error("halting", "err", a.Err)
				return &HaltError{Err: a.Err}
			case ActStopped:
				r.log.Info("stopped")
				return ctxErr
			}
			if ev, ok := r.exec(opCtx, a); ok {
				queue = append(queue, r.step(ev)...)
			}
		}
		select {
		case <-done:
			ctxErr, done, opCtx = ctx.Err(), nil, context.WithoutCancel(ctx)
			queue = r.step(Event{Kind: EvStop})
		case ev := <-r.events:
			queue = r.step(ev)
		case <-ticker.C:
			queue = r.step(Event{Kind: EvTick})
		}
	}
}

// exec carries out one action; for an operation it returns the result.
func (r *Runner) exec(ctx context.Context, a Action) (Event, bool) {
	ev := Event{Kind: EvDone, Op: a.Kind}
	switch a.Kind {
	case ActWriteState:
		ev.Err = r.b.WriteState(ctx, a.State, a.Epoch)
	case ActReadState:
		ev.State, ev.Waiting, ev.Err = r.b.ReadState(ctx)
	case ActTryAcquirePrimary:
		ev.Ok, ev.Err = r.b.TryAcquire(ctx, LockPrimary)
	case ActTryAcquireBackup:
		ev.Ok, ev.Err = r.b.TryAcquire(ctx, LockBackup)
	case ActTryAcquireFailback:
		ev.Ok, ev.Err = r.b.TryAcquire(ctx, LockFailback)
	case ActBumpEpoch:
		ev.Epoch, ev.Err = r.b.BumpEpoch(ctx)
		if ev.Err == nil {
			r.log.Info("took epoch", "epoch", ev.Epoch)
		}
	case ActLoadStore:
		ev.Err = r.hooks.LoadStore(ctx, a.Epoch)
	case ActRenewLease:
		v, err := r.b.Renew(ctx, a.Epoch)
		switch {
		case err == nil:
			return r.verified(v), true
		case errors.Is(err, ErrLost):
			return Event{Kind: EvLockLost, Err: err, Epoch: a.Epoch}, true
		}
		r.log.Warn("lease renewal failed; retrying while the lease lasts", "err", err)
		ev.Err = err
	case ActStartMonitor:
		r.b.StopMonitor()
		v, err := r.b.StartMonitor(a.Epoch, r.report(a.Epoch))
		if err != nil {
			return Event{Kind: EvLockLost, Err: err, Epoch: a.Epoch}, true
		}
		return r.verified(v), true
	case ActStopMonitor:
		r.b.StopMonitor()
		return ev, false
	case ActStartServing:
		r.log.Info("serving", "epoch", a.Epoch)
		r.hooks.StartServing(a.Epoch)
		return ev, false
	case ActStopServing:
		r.log.Info("stopped serving")
		r.hooks.StopServing()
		return ev, false
	case ActAnnounce:
		if r.hooks.Announce != nil {
			r.hooks.Announce(a)
		}
		return ev, false
	case ActReleasePrimary:
		r.release(ctx, LockPrimary)
		return ev, false
	case ActReleaseBackup:
		r.release(ctx, LockBackup)
		return ev, false
	case ActReleaseFailback:
		r.release(ctx, LockFailback)
		return ev, false
	default:
		return ev, false
	}
	return ev, true
}

// release gives up a lock or lease, waiting at most one lease for it: on a
// dead NFS mount fcntl can hang, and a halting broker must not hang with it
// (its exit drops a file lock anyway). A release that does not return in
// time is left to finish on its own goroutine.
func (r *Runner) release(ctx context.Context, l Lock) {
	which := l.String()
	done := make(chan error, 1)
	go func() { done <- r.b.Release(ctx, l) }()
	t := time.NewTimer(r.lease)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			r.log.Warn("releasing the lock failed", "lock", which, "err", err)
		}
	case <-t.C:
		r.log.Error("releasing the lock did not return within the lease; going on", "lock", which)
	}
}

// String describes the runner's node.
func (r *Runner) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%s: %s", r.b.Describe(), r.node)
}

// Status is the node's part of /status.
type Status struct {
	Role  string // primary or backup
	State string // active, waiting or stopping
	Phase string // the detailed phase
	Epoch uint64
}

// Status returns the node's status.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.node.Phase()
	return Status{Role: r.node.cfg.Role.String(), State: p.StatusState(), Phase: p.String(), Epoch: r.node.Epoch()}
}
