package ha

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// Replication coordinated by ZooKeeper (<replication> with <manager>), in
// Artemis's pluggable-lock-manager style: a ReplNode is the activation
// state machine of one broker of a primary/backup pair. Two numbers decide
// who may become live:
//
//   - L, the local activation sequence: the epoch this broker's data is
//     complete for, durable in its own server.lock (lockfile.WriteLocal);
//     0 means "no valid data" (fresh, or a sync in progress).
//   - C, the coordinated activation sequence in ZooKeeper; C < 0 means -C
//     was claimed but not committed.
//
// A broker may activate only with the lock (an ephemeral znode of its
// session) and only when its data is the newest (Classify). Every
// activation, and every loss of a backup that may hold a complete copy,
// bumps the sequence: claim (C: L -> -(L+1)), write L+1 locally (fsync),
// commit (C: -(L+1) -> L+1). The new L is the epoch of DESIGN.md.

// Defaults of ReplConfig.
const (
	DefaultReplRetryInterval   = 500 * time.Millisecond
	DefaultReplFailbackHoldoff = 5 * time.Second
	// DefaultReplLease is the lease for the default session-ms (18 s)
	// when the ensemble's tick is unknown (ZKLease); the adapter sets the
	// real one (ZKCoordinator.Lease).
	DefaultReplLease = 3 * time.Second
)

// ReplConfig configures a ReplNode. Use DefaultReplConfig and change
// fields.
type ReplConfig struct {
	// Role is the configured role: a synced replica configured as the
	// primary asks the live to fail back; a live configured as the backup
	// hands over when asked (and AllowFailback).
	Role Role
	// AllowFailback (allow-failback, default true): a live configured as
	// the backup hands over to a synced primary that asks.
	AllowFailback bool
	// RetryInterval is the poll interval of the lock and of the search
	// for the live (default 500 ms).
	RetryInterval time.Duration
	// Lease is how long a good verification of the lock lets the live
	// acknowledge, measured from the verification's start. It must be
	// shorter than the ZooKeeper session timeout by the margin ZKLease
	// explains; ZKCoordinator.Lease derives it from the negotiated one.
	Lease time.Duration
	// FailbackHoldoff is how long a live that handed over only follows
	// the new live and does not try the lock itself (default 5 s).
	FailbackHoldoff time.Duration
}

// DefaultReplConfig returns the defaults for role.
func DefaultReplConfig(role Role) ReplConfig {
	return ReplConfig{Role: role, AllowFailback: true, RetryInterval: DefaultReplRetryInterval,
		Lease: DefaultReplLease, FailbackHoldoff: DefaultReplFailbackHoldoff}
}

// Validate checks the durations.
func (c ReplConfig) Validate() error {
	if c.RetryInterval <= 0 || c.Lease <= 0 {
		return errors.New("ha: replication retry interval and lease must be positive")
	}
	if c.FailbackHoldoff < 0 {
		return errors.New("ha: failback holdoff must not be negative")
	}
	return nil
}

// Class is how a broker's local sequence L compares with the coordinated
// C (Artemis's tryActivate).
type Class int

// Classes.
const (
	// ClassStale: the data may be older than what a live acknowledged:
	// never activate; follow the live.
	ClassStale Class = iota
	// ClassInSync: C == L > 0, or a fresh group (C == L == 0) on the
	// configured primary.
	ClassInSync
	// ClassSelfRepair: C == -L: this broker claimed and wrote L, and
	// crashed before committing C.
	ClassSelfRepair
	// ClassMaybeInSync: C == -(L+1): the live claimed L+1 (it lost this
	// broker as its backup) and crashed before writing or committing it;
	// nothing was acknowledged under L+1.
	ClassMaybeInSync
)

func (c Class) String() string {
	return [...]string{"stale", "in-sync", "self-repair", "maybe-in-sync"}[c]
}

// Classify compares the local activation sequence with the coordinated
// one. A backup with L == 0 (never synced, or a sync in progress) is
// always stale.
func Classify(role Role, local uint64, coord int64) Class {
	l := int64(local)
	switch {
	case local == 0 && role == Backup:
		return ClassStale
	case coord == l && (l > 0 || role == Primary):
		return ClassInSync
	case coord < 0 && l > 0 && -coord == l:
		return ClassSelfRepair
	case coord < 0 && -coord == l+1:
		return ClassMaybeInSync
	}
	return ClassStale
}

// LockHolder is the content of the lock znode: who is live and where its
// backups connect to replicate.
type LockHolder struct {
	Held   bool   // the lock znode exists
	NodeID string `json:"node_id"`
	URL    string `json:"url"` // the live's announced tcp URL
	Seq    uint64 `json:"seq"` // the holder's L when it took the lock
	// Mine: the holder is a previous session of this broker (same URL):
	// a crash left it; wait for the session to expire.
	Mine bool `json:"-"`
}

// ReplEventKind says what happened.
type ReplEventKind int

// Replication event kinds.
const (
	// ReplEvStart starts the node.
	ReplEvStart ReplEventKind = iota
	// ReplEvTick says time passed (Now).
	ReplEvTick
	// ReplEvDone is the result of the pending operation (Op): Local and
	// NodeID for ReadLocal, Coord for ReadCoordinated, Ok for TryLock and
	// CAS (false: held by another, value differs), Holder for ReadLock,
	// Start for VerifyLock; Err when it failed.
	ReplEvDone
	// ReplEvVerified: the monitor verified that we hold the lock with a
	// request sent at Start.
	ReplEvVerified
	// ReplEvLockLost: the lock is no longer ours (deleted by someone
	// else, or the session expired) (Err).
	ReplEvLockLost
	// ReplEvStorageError: an I/O error of the store (Err).
	ReplEvStorageError
	// ReplEvStop asks for a clean stop.
	ReplEvStop
	// ReplEvZKDisconnected: the connection to ZooKeeper is lost (the
	// session may still be alive).
	ReplEvZKDisconnected
	// ReplEvZKConnected: connected with a session again.
	ReplEvZKConnected
	// ReplEvBackupSynced (live): a backup may now hold a complete copy;
	// the runtime reports it before it tells the backup the sync is done.
	ReplEvBackupSynced
	// ReplEvBackupLost (live): the replication connection to a backup is
	// gone; the runtime holds every completion that waited for it until
	// ReleaseHeld.
	ReplEvBackupLost
	// ReplEvFailbackRequested (live): a synced replica configured as the
	// primary asks this live to hand over.
	ReplEvFailbackRequested
	// ReplEvReplicaSynced (replica): the sync is complete; the runtime
	// wrote L = Local with NodeID (the live's) before reporting it. Conn
	// names the replication connection (ReplAction.Conn of its
	// StartReplica); a report about an earlier one is ignored.
	ReplEvReplicaSynced
	// ReplEvReplicaLost (replica): the replication connection Conn is
	// gone; Handover when the live handed over to us.
	ReplEvReplicaLost
)

var replEventNames = [...]string{"start", "tick", "done", "verified", "lock-lost", "storage-error", "stop",
	"zk-disconnected", "zk-connected", "backup-synced", "backup-lost", "failback-requested", "replica-synced",
	"replica-lost"}

func (k ReplEventKind) String() string {
	if int(k) < len(replEventNames) {
		return replEventNames[k]
	}
	return fmt.Sprintf("ReplEventKind(%d)", int(k))
}

// ReplEvent is one input of a ReplNode.
type ReplEvent struct {
	Kind ReplEventKind
	// Now is the monotonic time of the event (any fixed origin).
	Now time.Duration

	Op       ReplActionKind  // ReplEvDone: which operation
	Ok       bool            // TryLock, CAS
	Local    uint64          // ReadLocal; ReplicaSynced
	NodeID   lockfile.NodeID // ReadLocal; ReplicaSynced
	Coord    int64           // ReadCoordinated
	Holder   LockHolder      // ReadLock
	Start    time.Duration   // VerifyLock; ReplEvVerified
	Handover bool            // ReplicaLost
	Conn     uint64          // ReplicaSynced, ReplicaLost
	Err      error
}

func (e ReplEvent) String() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	switch e.Kind {
	case ReplEvDone:
		b.WriteString(" " + e.Op.String())
		switch {
		case e.Err != nil:
			fmt.Fprintf(&b, " err=%q", e.Err.Error())
		case e.Op == ReplActReadLocal:
			fmt.Fprintf(&b, " L=%d", e.Local)
		case e.Op == ReplActReadCoordinated:
			fmt.Fprintf(&b, " C=%d", e.Coord)
		case e.Op == ReplActTryLock || e.Op == ReplActCAS:
			fmt.Fprintf(&b, " ok=%v", e.Ok)
		case e.Op == ReplActReadLock:
			fmt.Fprintf(&b, " held=%v url=%s mine=%v", e.Holder.Held, e.Holder.URL, e.Holder.Mine)
		case e.Op == ReplActVerifyLock:
			fmt.Fprintf(&b, " start=%v", e.Start)
		}
	case ReplEvVerified:
		fmt.Fprintf(&b, " start=%v", e.Start)
	case ReplEvLockLost, ReplEvStorageError:
		fmt.Fprintf(&b, " err=%q", fmt.Sprint(e.Err))
	case ReplEvReplicaSynced:
		fmt.Fprintf(&b, " L=%d", e.Local)
	case ReplEvReplicaLost:
		fmt.Fprintf(&b, " handover=%v", e.Handover)
	}
	fmt.Fprintf(&b, " @%v", e.Now)
	return b.String()
}

// ReplActionKind says what the caller must do.
type ReplActionKind int

// Replication action kinds. Those marked "op" answer with a ReplEvDone of
// the same kind; the others answer nothing.
const (
	ReplActNone ReplActionKind = iota
	// ReplActReadLocal reads L and the node ID from the local record (op).
	ReplActReadLocal
	// ReplActWriteLocal writes L = Seq with NodeID durably (op; an error
	// halts).
	ReplActWriteLocal
	// ReplActReadCoordinated reads C (op; a missing znode is 0).
	ReplActReadCoordinated
	// ReplActCAS sets C to New if it is Old (op: Ok false if it was not).
	ReplActCAS
	// ReplActTryLock tries once to create the lock znode with this
	// broker's node ID, URL and Seq (op: Ok false if another holds it).
	ReplActTryLock
	// ReplActReadLock reads who holds the lock (op).
	ReplActReadLock
	// ReplActReleaseLock deletes the lock znode if it is ours.
	ReplActReleaseLock
	// ReplActLoadStore loads (replays) the store under Epoch (op; an
	// error halts).
	ReplActLoadStore
	// ReplActVerifyLock verifies afresh that we hold the lock (op: Start
	// is when the verifying request was sent).
	ReplActVerifyLock
	// ReplActStartServing: accept clients and acknowledge (while CanAck)
	// under Epoch; accept backups.
	ReplActStartServing
	// ReplActStopServing: acknowledge nothing more, close client and
	// replication connections.
	ReplActStopServing
	// ReplActStartReplica: replicate from the live at URL: connect; once
	// the live accepted, write L = 0 before changing any data, sync, then
	// write L = the live's sequence and report ReplicaSynced. A failed
	// connection leaves the data (and L) untouched: report ReplicaLost.
	ReplActStartReplica
	// ReplActStopReplica: stop applying replication data and disconnect.
	ReplActStopReplica
	// ReplActRequestFailback: ask the live (over the replication
	// connection) to hand over.
	ReplActRequestFailback
	// ReplActReleaseHeld: complete what the completion gate held since a
	// backup was lost (the sequence is bumped, when it had to be).
	ReplActReleaseHeld
	// ReplActHandover: wait until the replica confirmed everything
	// appended, tell it "handover at C", close the connection (op; an
	// error halts).
	ReplActHandover
	// ReplActAnnounce announces this broker (Epoch, Active).
	ReplActAnnounce
	// ReplActStale says why the broker stays passive: its L (Seq) is
	// behind C (Coord). Emitted once per change (for the log).
	ReplActStale
	// ReplActHalt: stop at once on an error (Err); exit code "halted".
	ReplActHalt
	// ReplActStopped: the clean stop is complete.
	ReplActStopped
)

var replActionNames = [...]string{"none", "read-local", "write-local", "read-coordinated", "cas", "try-lock",
	"read-lock", "release-lock", "load-store", "verify-lock", "start-serving", "stop-serving", "start-replica",
	"stop-replica", "request-failback", "release-held", "handover", "announce", "stale", "halt", "stopped"}

func (k ReplActionKind) String() string {
	if int(k) < len(replActionNames) {
		return replActionNames[k]
	}
	return fmt.Sprintf("ReplActionKind(%d)", int(k))
}

// IsOp reports whether the action answers with a ReplEvDone.
func (k ReplActionKind) IsOp() bool {
	switch k {
	case ReplActReadLocal, ReplActWriteLocal, ReplActReadCoordinated, ReplActCAS, ReplActTryLock,
		ReplActReadLock, ReplActLoadStore, ReplActVerifyLock, ReplActHandover:
		return true
	}
	return false
}

// ReplAction is one output of a ReplNode.
type ReplAction struct {
	Kind   ReplActionKind
	Epoch  uint64          // LoadStore, StartServing, Announce
	Seq    uint64          // WriteLocal, TryLock, Stale (L)
	NodeID lockfile.NodeID // WriteLocal, TryLock
	Old    int64           // CAS
	New    int64           // CAS
	Coord  int64           // Stale (C)
	URL    string          // StartReplica
	Conn   uint64          // StartReplica: names the connection in its reports
	Active bool            // Announce
	Err    error           // Halt
}

func (a ReplAction) String() string {
	s := a.Kind.String()
	switch a.Kind {
	case ReplActWriteLocal, ReplActTryLock:
		s += fmt.Sprintf(" L=%d", a.Seq)
	case ReplActCAS:
		s += fmt.Sprintf(" %d->%d", a.Old, a.New)
	case ReplActLoadStore, ReplActStartServing:
		s += fmt.Sprintf(" epoch=%d", a.Epoch)
	case ReplActAnnounce:
		s += fmt.Sprintf(" epoch=%d active=%v", a.Epoch, a.Active)
	case ReplActStartReplica:
		s += fmt.Sprintf(" %s conn=%d", a.URL, a.Conn)
	case ReplActStale:
		s += fmt.Sprintf(" L=%d C=%d", a.Seq, a.Coord)
	case ReplActHalt:
		s += fmt.Sprintf(" %q", fmt.Sprint(a.Err))
	}
	return s
}

// ReplPhase is where a ReplNode is.
type ReplPhase int

// Replication phases.
const (
	ReplInit           ReplPhase = iota
	ReplReadingLocal             // reading L (or waiting to, after an abandoned activation)
	ReplReadingCoord             // reading C (or waiting to)
	ReplTryingLock               // in sync: trying the lock
	ReplFindingLive              // stale, or the lock is held: looking for the live
	ReplReplicaSyncing           // replicating from the live, not yet synced
	ReplReplicaSynced            // a synced replica of the live
	ReplReplicaZKLost            // a replica that lost ZooKeeper: stopped, waits for it
	ReplChecking                 // holds the lock: re-reading C
	ReplRepairing                // holds the lock: self-repair or maybe-in-sync
	ReplBumping                  // holds the lock: claim, write, commit
	ReplLoading                  // loading the store
	ReplVerifying                // loaded: verifying the lock before serving
	ReplActive                   // serving
	ReplHandingOver              // failback: handing over to the returned primary
	ReplStopped
	ReplHalted
)

var replPhaseNames = [...]string{"init", "reading-local", "reading-coordinated", "trying-lock", "finding-live",
	"replica-syncing", "replica-synced", "replica-zk-lost", "checking", "repairing", "bumping", "loading",
	"verifying", "active", "handing-over", "stopped", "halted"}

func (p ReplPhase) String() string {
	if int(p) < len(replPhaseNames) {
		return replPhaseNames[p]
	}
	return fmt.Sprintf("ReplPhase(%d)", int(p))
}

// StatusState maps a phase to the state names of /status: active,
// syncing, waiting or stopping.
func (p ReplPhase) StatusState() string {
	switch p {
	case ReplActive:
		return "active"
	case ReplReplicaSyncing:
		return "syncing"
	case ReplHandingOver, ReplStopped, ReplHalted:
		return "stopping"
	}
	return "waiting"
}

type bumpStep int

const (
	bumpNone bumpStep = iota
	bumpClaim
	bumpWrite
	bumpCommit
)

// seededBug breaks the machine on purpose: the explorer's self-check must
// find each (tests only; zero in production).
type seededBug int

const (
	seedNoBumpOnBackupLoss seededBug = 1 << iota
	seedReleaseBeforeBump
	seedNoRecheckAfterLock
	seedNoConnFilter
)

// ReplNode is the replication activation state machine of one broker: pure
// and deterministic (no goroutines, clocks or I/O). Step takes an event
// and returns the actions to carry out in order; at most one operation is
// outstanding and it is always the last action returned; the caller feeds
// its result back (ReplEvDone) before any other event. Not safe for
// concurrent use.
type ReplNode struct {
	cfg ReplConfig

	phase   ReplPhase
	pending ReplActionKind
	now     time.Duration

	retryAt      time.Duration // next round of a waiting phase
	replicaAt    time.Duration // no StartReplica before (after a lost replication)
	holdoffUntil time.Duration // handed over: do not try the lock before
	validUntil   time.Duration // CanAck before this, when valid
	valid        bool

	nodeID    lockfile.NodeID
	local     uint64 // L
	coord     int64  // C, last seen
	holder    LockHolder
	holdsLock bool
	serving   bool
	replica   bool   // StartReplica issued, no StopReplica or loss since
	replConn  uint64 // the current replication connection (StartReplica's Conn)

	backupSynced bool // live: a backup may hold a complete copy
	bump         bumpStep
	target       uint64 // L+1 of the bump in progress
	owed         int    // ReleaseHeld owed after the bump
	rebump       bool   // another synced backup was lost during the bump

	staleShown  bool
	staleL      uint64
	staleC      int64
	activations int // completed activations (for tests)

	seeded seededBug
	out    []ReplAction
}

// NewReplNode returns a node in ReplInit; ReplEvStart starts it.
func NewReplNode(cfg ReplConfig) (*ReplNode, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &ReplNode{cfg: cfg}, nil
}

// Config returns the configuration.
func (n *ReplNode) Config() ReplConfig { return n.cfg }

// Phase returns the current phase.
func (n *ReplNode) Phase() ReplPhase { return n.phase }

// Pending returns the operation whose result the node waits for.
func (n *ReplNode) Pending() ReplActionKind { return n.pending }

// Local returns L as last read or written (the epoch while active).
func (n *ReplNode) Local() uint64 { return n.local }

// Coordinated returns C as last seen.
func (n *ReplNode) Coordinated() int64 { return n.coord }

// NodeID returns the node ID of the local data.
func (n *ReplNode) NodeID() lockfile.NodeID { return n.nodeID }

// Holder returns the lock holder as last read.
func (n *ReplNode) Holder() LockHolder { return n.holder }

// HoldsLock reports whether the node believes it holds the lock.
func (n *ReplNode) HoldsLock() bool { return n.holdsLock }

// Serving reports whether the node told the caller to serve and has not
// yet told it to stop.
func (n *ReplNode) Serving() bool { return n.serving }

// Done reports whether the node stopped or halted.
func (n *ReplNode) Done() bool { return n.phase == ReplStopped || n.phase == ReplHalted }

// CanAck reports whether the broker may acknowledge at now: active,
// serving, and within the lease of the last good verification.
func (n *ReplNode) CanAck(now time.Duration) bool {
	return n.phase == ReplActive && n.serving && n.valid && now < n.validUntil
}

// String summarises the node for transcripts.
func (n *ReplNode) String() string {
	s := fmt.Sprintf("%s %s L=%d C=%d", n.cfg.Role, n.phase, n.local, n.coord)
	if n.pending != ReplActNone {
		s += " pending=" + n.pending.String()
	}
	if n.holdsLock {
		s += " holds-lock"
	}
	if n.replica {
		s += " replica"
	}
	if n.backupSynced {
		s += " backup-synced"
	}
	if n.owed > 0 {
		s += fmt.Sprintf(" owed=%d", n.owed)
	}
	if n.holdoffUntil > n.now {
		s += fmt.Sprintf(" holdoff-until=%v", n.holdoffUntil)
	}
	if n.valid {
		s += fmt.Sprintf(" valid-until=%v", n.validUntil)
	}
	return s + fmt.Sprintf(" can-ack=%v", n.CanAck(n.now))
}

func (n *ReplNode) emit(a ReplAction) {
	if a.Kind.IsOp() {
		n.pending = a.Kind
	}
	n.out = append(n.out, a)
}

// Step applies one event and returns the actions to carry out, in order.
func (n *ReplNode) Step(ev ReplEvent) []ReplAction {
	n.out = nil
	if ev.Now > n.now {
		n.now = ev.Now
	}
	if n.Done() {
		return nil
	}
	switch ev.Kind {
	case ReplEvStart:
		if n.phase == ReplInit {
			n.readLocal()
		}
	case ReplEvTick:
		if n.pending == ReplActNone {
			n.tick()
		}
	case ReplEvDone:
		if ev.Op != ReplActNone && ev.Op == n.pending {
			n.pending = ReplActNone
			n.done(ev)
		}
	case ReplEvVerified:
		if n.phase == ReplActive {
			n.extend(ev.Start)
		}
	case ReplEvLockLost:
		if n.holdsLock {
			n.holdsLock = false // nothing to release
			n.halt(fmt.Errorf("ha: ZooKeeper lock lost: %w", ev.Err))
		}
	case ReplEvStorageError:
		n.halt(fmt.Errorf("ha: storage error: %w", ev.Err))
	case ReplEvStop:
		n.stop()
	case ReplEvZKDisconnected:
		if n.replica {
			// Artemis: a backup that lost the majority stops applying
			// and waits; the live bumps the sequence when it notices.
			n.stopReplica()
			n.phase = ReplReplicaZKLost
		}
	case ReplEvZKConnected:
		if n.phase == ReplReplicaZKLost {
			n.readLocal()
		}
	case ReplEvBackupSynced:
		if n.phase == ReplActive {
			n.backupSynced = true
		}
	case ReplEvBackupLost:
		if n.phase == ReplActive {
			n.backupLost()
		}
	case ReplEvFailbackRequested:
		if n.phase == ReplActive && n.bump == bumpNone && n.cfg.Role == Backup && n.cfg.AllowFailback {
			n.handover()
		}
	case ReplEvReplicaSynced:
		if n.replica && (ev.Conn == n.replConn || n.seeded&seedNoConnFilter != 0) {
			n.local, n.nodeID = ev.Local, ev.NodeID
			n.phase = ReplReplicaSynced
			if n.cfg.Role == Primary {
				n.out = append(n.out, ReplAction{Kind: ReplActRequestFailback})
			}
		}
	case ReplEvReplicaLost:
		if n.replica && (ev.Conn == n.replConn || n.seeded&seedNoConnFilter != 0) {
			n.replica = false
			n.replicaAt = 0
			if !ev.Handover {
				n.replicaAt = n.now + n.cfg.RetryInterval
			}
			n.readLocal()
		}
	}
	return n.out
}

func (n *ReplNode) tick() {
	switch n.phase {
	case ReplActive:
		if n.now >= n.validUntil {
			n.halt(fmt.Errorf("%w: last good verification of the ZooKeeper lock expired at %v", ErrLeaseExpired, n.validUntil))
		}
	case ReplReadingLocal:
		if n.now >= n.retryAt {
			n.readLocal()
		}
	case ReplReadingCoord, ReplTryingLock, ReplFindingLive:
		if n.now >= n.retryAt {
			n.round()
		}
	}
}

// wait ends a round: the next one starts RetryInterval from now.
func (n *ReplNode) wait(p ReplPhase) {
	n.phase = p
	n.retryAt = n.now + n.cfg.RetryInterval
}

func (n *ReplNode) readLocal() {
	n.phase = ReplReadingLocal
	n.emit(ReplAction{Kind: ReplActReadLocal})
}

// round reads C; classifying it decides between the lock and the live.
func (n *ReplNode) round() {
	n.phase = ReplReadingCoord
	n.emit(ReplAction{Kind: ReplActReadCoordinated})
}

func (n *ReplNode) done(ev ReplEvent) {
	switch ev.Op {
	case ReplActReadLocal:
		if ev.Err != nil {
			n.halt(fmt.Errorf("ha: reading the local activation sequence: %w", ev.Err))
			return
		}
		n.local, n.nodeID = ev.Local, ev.NodeID
		n.round()
	case ReplActReadCoordinated:
		if ev.Err != nil {
			if n.phase == ReplChecking {
				n.abandon()
				return
			}
			n.wait(ReplReadingCoord)
			return
		}
		n.coord = ev.Coord
		if n.phase == ReplChecking {
			n.check()
			return
		}
		n.classified()
	case ReplActTryLock:
		switch {
		case ev.Err != nil:
			n.wait(ReplTryingLock)
		case ev.Ok:
			n.holdsLock = true
			if n.seeded&seedNoRecheckAfterLock != 0 {
				n.check()
				return
			}
			n.phase = ReplChecking
			n.emit(ReplAction{Kind: ReplActReadCoordinated})
		default:
			n.phase = ReplFindingLive
			n.emit(ReplAction{Kind: ReplActReadLock})
		}
	case ReplActReadLock:
		if ev.Err != nil {
			n.wait(ReplFindingLive)
			return
		}
		n.holder = ev.Holder
		n.foundLock()
	case ReplActCAS:
		n.casDone(ev)
	case ReplActWriteLocal:
		if ev.Err != nil {
			n.halt(fmt.Errorf("ha: writing the local activation sequence: %w", ev.Err))
			return
		}
		n.writeDone()
	case ReplActLoadStore:
		if ev.Err != nil {
			n.halt(fmt.Errorf("ha: loading the store: %w", ev.Err))
			return
		}
		n.phase = ReplVerifying
		n.emit(ReplAction{Kind: ReplActVerifyLock})
	case ReplActVerifyLock:
		if ev.Err != nil {
			n.abandon()
			return
		}
		n.extend(ev.Start)
		if n.now >= n.validUntil {
			// The verification took longer than the lease: it proves
			// nothing about now. Verify again.
			n.emit(ReplAction{Kind: ReplActVerifyLock})
			return
		}
		n.phase = ReplActive
		n.serving = true
		n.staleShown = false
		n.activations++
		n.emit(ReplAction{Kind: ReplActStartServing, Epoch: n.local})
		n.announce()
	case ReplActHandover:
		if ev.Err != nil {
			n.halt(fmt.Errorf("ha: handing over to the primary: %w", ev.Err))
			return
		}
		n.releaseLock()
		n.holdoffUntil = n.now + n.cfg.FailbackHoldoff
		n.replicaAt = 0
		n.round()
	}
}

// classified acts on C read in a round (not holding the lock).
func (n *ReplNode) classified() {
	c := Classify(n.cfg.Role, n.local, n.coord)
	if c == ClassStale {
		n.showStale()
	} else {
		n.staleShown = false
	}
	if c == ClassStale || n.now < n.holdoffUntil {
		n.phase = ReplFindingLive
		n.emit(ReplAction{Kind: ReplActReadLock})
		return
	}
	n.phase = ReplTryingLock
	n.emit(ReplAction{Kind: ReplActTryLock, Seq: n.local, NodeID: n.nodeID})
}

func (n *ReplNode) showStale() {
	if n.staleShown && n.staleL == n.local && n.staleC == n.coord {
		return
	}
	n.staleShown, n.staleL, n.staleC = true, n.local, n.coord
	n.out = append(n.out, ReplAction{Kind: ReplActStale, Seq: n.local, Coord: n.coord})
}

// foundLock acts on the lock holder read in a round.
func (n *ReplNode) foundLock() {
	h := n.holder
	switch {
	case h.Held && !h.Mine && h.URL != "":
		if n.now < n.replicaAt {
			n.phase, n.retryAt = ReplFindingLive, n.replicaAt
			return
		}
		n.replica = true
		n.replConn++
		n.phase = ReplReplicaSyncing
		n.out = append(n.out, ReplAction{Kind: ReplActStartReplica, URL: h.URL, Conn: n.replConn})
	default:
		// Free (try again next round: C may have changed), held by a
		// previous session of ours (wait for it to expire), or held by
		// a live that announced no URL.
		n.wait(ReplFindingLive)
	}
}

// check classifies again with the lock held and C read afresh.
func (n *ReplNode) check() {
	switch Classify(n.cfg.Role, n.local, n.coord) {
	case ClassStale:
		n.releaseLock()
		n.showStale()
		n.wait(ReplFindingLive)
	case ClassInSync:
		n.startBump()
	case ClassSelfRepair:
		n.phase = ReplRepairing
		n.emit(ReplAction{Kind: ReplActCAS, Old: n.coord, New: int64(n.local)})
	case ClassMaybeInSync:
		n.phase = ReplRepairing
		n.target = n.local + 1
		n.emit(ReplAction{Kind: ReplActWriteLocal, Seq: n.target, NodeID: n.nodeID})
	}
}

// startBump claims L+1 (ensureSequentialAccess).
func (n *ReplNode) startBump() {
	if n.phase != ReplActive {
		n.phase = ReplBumping
	}
	n.bump = bumpClaim
	n.target = n.local + 1
	n.emit(ReplAction{Kind: ReplActCAS, Old: int64(n.local), New: -int64(n.target)})
}

func (n *ReplNode) writeDone() {
	n.local = n.target
	if n.phase == ReplRepairing {
		// Maybe in sync: L+1 is ours now; commit it.
		n.emit(ReplAction{Kind: ReplActCAS, Old: n.coord, New: int64(n.local)})
		return
	}
	n.bump = bumpCommit
	n.emit(ReplAction{Kind: ReplActCAS, Old: -int64(n.target), New: int64(n.target)})
}

func (n *ReplNode) casDone(ev ReplEvent) {
	if ev.Err != nil || !ev.Ok {
		if n.phase == ReplActive {
			// Losing a backup: the sequence must advance before the held
			// completions are released; without it, halt (never release).
			err := ev.Err
			if err == nil {
				err = errors.New("the coordinated activation sequence changed under the lock (compare-and-set failed)")
			}
			n.halt(fmt.Errorf("ha: bumping the activation sequence after losing the backup: %w", err))
			return
		}
		n.abandon()
		return
	}
	switch {
	case n.phase == ReplRepairing:
		n.coord = int64(n.local)
		n.startBump()
	case n.bump == bumpClaim:
		n.coord = -int64(n.target)
		n.bump = bumpWrite
		n.emit(ReplAction{Kind: ReplActWriteLocal, Seq: n.target, NodeID: n.nodeID})
	case n.bump == bumpCommit:
		n.coord = int64(n.target)
		n.bump = bumpNone
		n.bumped()
	}
}

// bumped: the commit is done; L is the new epoch.
func (n *ReplNode) bumped() {
	if n.phase != ReplActive {
		n.phase = ReplLoading
		n.valid = false
		n.emit(ReplAction{Kind: ReplActLoadStore, Epoch: n.local})
		return
	}
	if n.rebump {
		n.rebump = false
		n.startBump()
		return
	}
	n.releaseOwed()
	n.announce()
}

func (n *ReplNode) releaseOwed() {
	for ; n.owed > 0; n.owed-- {
		n.out = append(n.out, ReplAction{Kind: ReplActReleaseHeld})
	}
}

func (n *ReplNode) backupLost() {
	n.owed++
	synced := n.backupSynced && n.seeded&seedNoBumpOnBackupLoss == 0
	n.backupSynced = false
	switch {
	case synced && n.bump != bumpNone:
		n.rebump = true
	case synced:
		if n.seeded&seedReleaseBeforeBump != 0 {
			n.releaseOwed()
		}
		n.startBump()
	case n.bump == bumpNone:
		n.releaseOwed()
	}
}

// extend applies a verification that started at start.
func (n *ReplNode) extend(start time.Duration) {
	if until := start + n.cfg.Lease; until > n.validUntil || !n.valid {
		n.validUntil, n.valid = until, true
	}
}

// abandon gives up an activation that has not served yet (a ZooKeeper
// error, or C changed under the lock): release and start over after
// RetryInterval.
func (n *ReplNode) abandon() {
	n.releaseLock()
	n.bump = bumpNone
	n.valid = false
	n.wait(ReplReadingLocal)
}

func (n *ReplNode) handover() {
	n.serving = false
	n.valid = false
	n.backupSynced = false
	n.out = append(n.out, ReplAction{Kind: ReplActStopServing})
	n.announce()
	n.phase = ReplHandingOver
	n.emit(ReplAction{Kind: ReplActHandover})
}

func (n *ReplNode) releaseLock() {
	if n.holdsLock {
		n.holdsLock = false
		n.out = append(n.out, ReplAction{Kind: ReplActReleaseLock})
	}
}

func (n *ReplNode) announce() {
	n.out = append(n.out, ReplAction{Kind: ReplActAnnounce, Epoch: n.local, Active: n.serving})
}

// stopAll stops serving and replicating.
func (n *ReplNode) stopAll() {
	if n.serving {
		n.serving = false
		n.out = append(n.out, ReplAction{Kind: ReplActStopServing})
	}
	if n.replica {
		n.stopReplica()
	}
	n.valid = false
	n.backupSynced = false
}

// stopReplica ends the current replication connection; its late reports
// are ignored from now on.
func (n *ReplNode) stopReplica() {
	n.replica = false
	n.replConn++
	n.out = append(n.out, ReplAction{Kind: ReplActStopReplica})
}

// stop is a clean stop: no bump, so a synced backup takes over at once.
func (n *ReplNode) stop() {
	n.stopAll()
	n.releaseLock()
	n.pending = ReplActNone
	n.phase = ReplStopped
	n.out = append(n.out, ReplAction{Kind: ReplActStopped})
}

func (n *ReplNode) halt(err error) {
	n.stopAll()
	n.releaseLock()
	n.pending = ReplActNone
	n.phase = ReplHalted
	n.out = append(n.out, ReplAction{Kind: ReplActHalt, Err: err})
}
