package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// ReplHooks are what a ReplRunner needs from the broker. Every hook is
// called from the runner's Run goroutine, one at a time; a hook must not
// call back into the runner and wait for it.
type ReplHooks struct {
	// LoadStore loads (replays) the store; records written from now on
	// carry epoch. It may be called again after an activation that failed
	// before serving (each call replaces the previous load). An error
	// halts. Required.
	LoadStore func(ctx context.Context, epoch uint64) error
	// StartServing opens the broker to clients and backups under epoch;
	// it acknowledges only while CanAck. Required.
	StartServing func(epoch uint64)
	// StopServing stops acknowledging and closes client connections; the
	// replication connection stays until Handover (or the process ends).
	// Completions held since a backup was lost are never released after
	// it: fail them (unknown outcome). Required.
	StopServing func()
	// StartReplica replicates from the live at url: connect; once the
	// live accepted this backup, write L = 0 with the local store before
	// changing any data, sync, write L = the live's activation sequence
	// with the live's node ID, then call ReplicaSynced. Call ReplicaLost
	// when the connection fails or ends; a connection that failed before
	// the live accepted must leave the data and L untouched (the live may
	// be dead, and this copy the newest). Required.
	StartReplica func(url string)
	// StopReplica stops applying replication data and disconnects (no
	// ReplicaLost needed). Required.
	StopReplica func()
	// RequestFailback asks the live, over the replication connection, to
	// hand over (the live calls FailbackRequested). Required.
	RequestFailback func()
	// ReleaseHeld lets the completion gate complete what it held since a
	// backup was lost (called once per BackupLost, after the activation
	// sequence moved on when it had to). Required.
	ReleaseHeld func()
	// Handover waits until the replica confirmed everything appended,
	// tells it "handover at C", and closes the replication connection
	// (the replica then calls ReplicaLost(true)). An error halts.
	// Required.
	Handover func(ctx context.Context) error
	// Announce publishes this broker's epoch and whether it is active
	// (optional). While serving, a new epoch (after a backup was lost)
	// must be written into everything the broker writes from then on.
	Announce func(ReplAction)
	// Logger receives one line per state change; default slog.Default().
	Logger *slog.Logger
}

// ReplCoordinator is the coordination service of a ReplRunner;
// ZKCoordinator implements it. Calls come from the Run goroutine, except
// Monitor, which runs on a goroutine of its own owned by Run.
type ReplCoordinator interface {
	ReadCoordinated(ctx context.Context) (int64, error)
	CASCoordinated(ctx context.Context, old, newC int64) (bool, error)
	TryLock(ctx context.Context, nodeID lockfile.NodeID, seq uint64) (bool, error)
	ReadLock(ctx context.Context) (LockHolder, error)
	ReleaseLock(ctx context.Context) error
	// VerifyLock returns when the verifying request was sent; an error
	// wrapping ErrLost means the lock is not ours.
	VerifyLock(ctx context.Context) (time.Time, error)
	// Monitor reports until ctx ends.
	Monitor(ctx context.Context, report func(CoordEvent))
	// Lease is the longest ReplConfig.Lease the coordinator supports.
	Lease() time.Duration
	Describe() string
}

// LocalStore keeps the local activation sequence L and the node ID
// durably (LockfileLocal).
type LocalStore interface {
	ReadLocal() (lockfile.NodeID, uint64, error)
	WriteLocal(nodeID lockfile.NodeID, seq uint64) error
}

// LockfileLocal is the LocalStore of a broker's own lock directory. The
// Manager must hold its primary lock (the broker's exclusive use of the
// data directory).
type LockfileLocal struct{ M *lockfile.Manager }

// ReadLocal implements LocalStore.
func (l LockfileLocal) ReadLocal() (lockfile.NodeID, uint64, error) {
	r, err := l.M.ReadState()
	return r.NodeID, r.Epoch, err
}

// WriteLocal implements LocalStore: state 'L' with a sequence, 'N' (no
// valid data) with 0.
func (l LockfileLocal) WriteLocal(id lockfile.NodeID, seq uint64) error {
	s := lockfile.StateActive
	if seq == 0 {
		s = lockfile.StateNotStarted
	}
	return l.M.WriteLocal(id, seq, s)
}

// ReplRunner runs a ReplNode against a coordinator, the local store and
// the broker's hooks: its Run goroutine feeds events into the node and
// carries out the node's actions one at a time. The other methods may be
// called from any goroutine.
type ReplRunner struct {
	coord   ReplCoordinator
	local   LocalStore
	hooks   ReplHooks
	log     *slog.Logger
	origin  time.Time
	tick    time.Duration
	opLimit time.Duration

	mu   sync.Mutex // guards node
	node *ReplNode

	// replConn names the replication connection the runtime works on
	// (StartReplica's Conn; 0 after StopReplica): ReplicaSynced and
	// ReplicaLost carry it, so the node ignores a late report about an
	// earlier connection.
	replConn atomic.Uint64

	events  chan ReplEvent
	runDone chan struct{}
}

// NewReplRunner returns a runner for cfg. cfg.Lease must not exceed the
// coordinator's (set it to coord.Lease()).
func NewReplRunner(coord ReplCoordinator, local LocalStore, cfg ReplConfig, hooks ReplHooks) (*ReplRunner, error) {
	if hooks.LoadStore == nil || hooks.StartServing == nil || hooks.StopServing == nil || hooks.StartReplica == nil ||
		hooks.StopReplica == nil || hooks.RequestFailback == nil || hooks.ReleaseHeld == nil || hooks.Handover == nil {
		return nil, errors.New("ha: every replication hook except Announce is required")
	}
	if l := coord.Lease(); cfg.Lease > l {
		return nil, fmt.Errorf("ha: replication lease %v longer than the coordinator's %v (derived from the ZooKeeper session timeout)", cfg.Lease, l)
	}
	n, err := NewReplNode(cfg)
	if err != nil {
		return nil, err
	}
	log := hooks.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("coordinator", coord.Describe(), "role", cfg.Role.String())
	return &ReplRunner{
		coord: coord, local: local, hooks: hooks, log: log, origin: time.Now(),
		tick: max(min(cfg.RetryInterval, cfg.Lease/4)/2, time.Millisecond), opLimit: max(cfg.Lease, cfg.RetryInterval),
		node: n, events: make(chan ReplEvent, 64), runDone: make(chan struct{}),
	}, nil
}

func (r *ReplRunner) since(t time.Time) time.Duration { return t.Sub(r.origin) }

// CanAck reports whether the broker may acknowledge now.
func (r *ReplRunner) CanAck() bool {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node.CanAck(r.since(now))
}

// Epoch returns L: the epoch while active.
func (r *ReplRunner) Epoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node.Local()
}

// ReplStatus is the coordinator's part of /status.
type ReplStatus struct {
	Role        string     // configured role: primary or backup
	State       string     // active, syncing, waiting or stopping
	Phase       string     // the detailed phase
	Epoch       uint64     // L, the local activation sequence
	Coordinated int64      // C as last seen (negative: claimed)
	NodeID      string     // of the local data
	Holder      LockHolder // the lock holder as last read
}

// Status returns the node's status.
func (r *ReplRunner) Status() ReplStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.node
	st := ReplStatus{Role: n.cfg.Role.String(), State: n.phase.StatusState(), Phase: n.phase.String(),
		Epoch: n.local, Coordinated: n.coord, Holder: n.holder}
	if !n.nodeID.IsZero() {
		st.NodeID = n.nodeID.String()
	}
	return st
}

// send delivers an outside event unless Run has ended.
func (r *ReplRunner) send(ev ReplEvent) {
	select {
	case r.events <- ev:
	case <-r.runDone:
	}
}

// Stop asks for a clean stop (no bump: a synced backup takes over at
// once); Run returns when it is done.
func (r *ReplRunner) Stop() { r.send(ReplEvent{Kind: ReplEvStop}) }

// StorageError reports an I/O error of the store: the node halts.
func (r *ReplRunner) StorageError(err error) { r.send(ReplEvent{Kind: ReplEvStorageError, Err: err}) }

// ReplicaSynced reports that the sync from the live completed and L = seq
// with the live's nodeID is durable. It and ReplicaLost refer to the
// connection of the last StartReplica: call them only for that one, never
// after StopReplica returned (a report that crosses a StopReplica or a new
// StartReplica is ignored).
func (r *ReplRunner) ReplicaSynced(seq uint64, nodeID lockfile.NodeID) {
	r.send(ReplEvent{Kind: ReplEvReplicaSynced, Local: seq, NodeID: nodeID, Conn: r.replConn.Load()})
}

// ReplicaLost reports that the replication connection ended; handover
// when the live handed over to this broker.
func (r *ReplRunner) ReplicaLost(handover bool) {
	r.send(ReplEvent{Kind: ReplEvReplicaLost, Handover: handover, Conn: r.replConn.Load()})
}

// BackupSynced reports (on the live) that a backup may hold a complete
// copy. Call it before telling the backup the sync is done, and before
// any BackupLost for that backup (from the same goroutine, or ordered).
func (r *ReplRunner) BackupSynced() { r.send(ReplEvent{Kind: ReplEvBackupSynced}) }

// BackupLost reports (on the live) that a backup's replication connection
// is gone. From the moment the runtime decides that until ReleaseHeld, it
// must complete nothing that waited for that backup.
func (r *ReplRunner) BackupLost() { r.send(ReplEvent{Kind: ReplEvBackupLost}) }

// FailbackRequested reports (on the live) that a synced replica
// configured as the primary asks it to hand over.
func (r *ReplRunner) FailbackRequested() { r.send(ReplEvent{Kind: ReplEvFailbackRequested}) }

func (r *ReplRunner) step(ev ReplEvent) []ReplAction {
	if ev.Now == 0 {
		ev.Now = r.since(time.Now())
	}
	r.mu.Lock()
	before := r.node.phase
	out := r.node.Step(ev)
	after := r.node.phase
	st := r.node.String()
	r.mu.Unlock()
	if before != after {
		lvl := slog.LevelDebug
		if before.StatusState() != after.StatusState() {
			lvl = slog.LevelInfo
		}
		r.log.Log(context.Background(), lvl, "replication activation", "phase", after.String(), "event", ev.Kind.String(), "node", st)
	}
	return out
}

// report turns the coordinator's reports into events (monitor goroutine).
func (r *ReplRunner) report(ce CoordEvent) {
	switch ce.Kind {
	case CoordVerified:
		select {
		case r.events <- ReplEvent{Kind: ReplEvVerified, Start: r.since(ce.Start)}:
		default: // a later verification will do; losses are never dropped
		}
	case CoordLockLost:
		r.send(ReplEvent{Kind: ReplEvLockLost, Err: ce.Err})
	case CoordDisconnected:
		r.send(ReplEvent{Kind: ReplEvZKDisconnected})
	case CoordConnected:
		r.send(ReplEvent{Kind: ReplEvZKConnected})
	}
}

// Run starts the node and runs it until it stops (nil), halts
// (*HaltError) or ctx ends (it then stops cleanly and returns ctx.Err()).
// After a halt the broker must exit.
func (r *ReplRunner) Run(ctx context.Context) error {
	mctx, mcancel := context.WithCancel(context.WithoutCancel(ctx))
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		r.coord.Monitor(mctx, r.report)
	}()
	defer func() {
		close(r.runDone) // a monitor blocked sending gives up
		mcancel()
		<-monDone
	}()
	queue := r.step(ReplEvent{Kind: ReplEvStart})
	ticker := time.NewTicker(r.tick)
	defer ticker.Stop()
	var ctxErr error
	done := ctx.Done()
	opCtx := ctx // after ctx ends, the clean stop still needs its operations
	for {
		for len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			r.log.Debug("replication action", "action", a.String())
			switch a.Kind {
			case ReplActHalt:
				r.log.Error("halting", "err", a.Err)
				return &HaltError{Err: a.Err}
			case ReplActStopped:
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
			queue = r.step(ReplEvent{Kind: ReplEvStop})
		case ev := <-r.events:
			queue = r.step(ev)
		case <-ticker.C:
			queue = r.step(ReplEvent{Kind: ReplEvTick})
		}
	}
}

// exec carries out one action; for an operation it returns the result.
func (r *ReplRunner) exec(ctx context.Context, a ReplAction) (ReplEvent, bool) {
	ev := ReplEvent{Kind: ReplEvDone, Op: a.Kind}
	octx, cancel := context.WithTimeout(ctx, r.opLimit)
	defer cancel()
	switch a.Kind {
	case ReplActReadLocal:
		ev.NodeID, ev.Local, ev.Err = r.local.ReadLocal()
	case ReplActWriteLocal:
		ev.Err = r.local.WriteLocal(a.NodeID, a.Seq)
		if ev.Err == nil {
			r.log.Info("local activation sequence written", "L", a.Seq)
		}
	case ReplActReadCoordinated:
		ev.Coord, ev.Err = r.coord.ReadCoordinated(octx)
	case ReplActCAS:
		ev.Ok, ev.Err = r.coord.CASCoordinated(octx, a.Old, a.New)
		if ev.Err == nil && ev.Ok {
			r.log.Info("coordinated activation sequence set", "from", a.Old, "to", a.New)
		}
	case ReplActTryLock:
		ev.Ok, ev.Err = r.coord.TryLock(octx, a.NodeID, a.Seq)
		if ev.Ok {
			r.log.Info("took the ZooKeeper lock", "L", a.Seq)
		}
	case ReplActReadLock:
		ev.Holder, ev.Err = r.coord.ReadLock(octx)
	case ReplActReleaseLock:
		if err := r.coord.ReleaseLock(octx); err != nil {
			r.log.Warn("releasing the ZooKeeper lock failed; it goes with the session", "err", err)
		}
		return ev, false
	case ReplActLoadStore:
		ev.Err = r.hooks.LoadStore(ctx, a.Epoch)
	case ReplActVerifyLock:
		var start time.Time
		start, ev.Err = r.coord.VerifyLock(octx)
		ev.Start = r.since(start)
	case ReplActHandover:
		r.log.Info("handing over to the primary (failback)")
		ev.Err = r.hooks.Handover(ctx)
	default:
		r.signal(a)
		return ev, false
	}
	if ev.Err != nil && a.Kind != ReplActWriteLocal && a.Kind != ReplActLoadStore && a.Kind != ReplActHandover {
		r.log.Warn("replication coordination step failed", "action", a.Kind.String(), "err", ev.Err)
	}
	return ev, true
}

// signal carries out an action that answers nothing.
func (r *ReplRunner) signal(a ReplAction) {
	switch a.Kind {
	case ReplActStartServing:
		r.log.Info("serving", "epoch", a.Epoch)
		r.hooks.StartServing(a.Epoch)
	case ReplActStopServing:
		r.log.Info("stopped serving")
		r.hooks.StopServing()
	case ReplActStartReplica:
		r.log.Info("replicating from the live", "url", a.URL)
		r.replConn.Store(a.Conn)
		r.hooks.StartReplica(a.URL)
	case ReplActStopReplica:
		r.log.Info("stopped replicating")
		r.hooks.StopReplica()
		r.replConn.Store(0) // reports made during or after StopReplica are stale
	case ReplActRequestFailback:
		r.log.Info("synced with the live: asking it to fail back to this primary")
		r.hooks.RequestFailback()
	case ReplActReleaseHeld:
		r.hooks.ReleaseHeld()
	case ReplActAnnounce:
		if r.hooks.Announce != nil {
			r.hooks.Announce(a)
		}
	case ReplActStale:
		if a.Seq == 0 {
			r.log.Warn("no valid local data (never synced, or a sync did not complete): not activating; waiting for a live broker to replicate from (see docs/ha-replication-zookeeper.md)",
				"L", a.Seq, "C", a.Coord)
			return
		}
		r.log.Warn(fmt.Sprintf("local activation sequence %d is behind the coordinated %s: not activating; waiting for the broker with the newest data (see docs/ha-replication-zookeeper.md)",
			a.Seq, describeCoord(a.Coord)), "L", a.Seq, "C", a.Coord)
	}
}

func describeCoord(c int64) string {
	if c < 0 {
		return fmt.Sprintf("%d (%d claimed, not committed)", c, -c)
	}
	return fmt.Sprint(c)
}

// String describes the runner's node.
func (r *ReplRunner) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%s: %s", r.coord.Describe(), r.node)
}
