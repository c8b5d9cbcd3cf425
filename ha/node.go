package ha

import (
	"fmt"
	"sort"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// Phase is where a Node is in its activation sequence.
type Phase int

// Phases.
const (
	PhaseInit           Phase = iota
	PhaseReadingInitial       // primary: reading the state it will overwrite with F
	PhaseWaitFailback         // primary: trying for the failback lock
	PhaseAnnouncing           // primary: writing F
	PhaseWaitBackup           // backup: trying for the backup lock
	PhaseWaitPrimary          // trying for the primary lock
	PhaseChecking             // backup: holds the primary lock, reading the state
	PhaseBumping              // taking the next epoch
	PhaseFencing              // waiting FenceWait after the bump
	PhaseLoading              // loading the store
	PhaseVerifying            // loaded; waiting for a verification newer than the fence
	PhaseActive               // serving
	PhaseRestoring            // primary stopped while waiting: restoring the old state
	PhasePausing              // clean stop: writing P
	PhaseStopped
	PhaseHalted
)

var phaseNames = [...]string{"init", "reading-initial", "wait-failback-lock", "announcing-failback", "wait-backup-lock", "wait-primary-lock",
	"checking-state", "bumping-epoch", "fencing", "loading", "verifying", "active", "restoring-state", "pausing",
	"stopped", "halted"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Node is the shared-store activation state machine of one broker. It is
// not safe for concurrent use; adapters serialise Step and CanAck.
type Node struct {
	cfg Config

	phase   Phase
	pending ActionKind // the operation whose EvDone we wait for
	now     time.Duration

	retryAt    time.Duration
	fenceUntil time.Duration
	renewAt    time.Duration // DBLease: next renew
	validUntil time.Duration // CanAck before this, when valid
	valid      bool
	// proofUntil: the lease of the newest good verification (or renewal)
	// of the current activation ends here. Unlike validUntil it outlives
	// StopServing: the store is closed after that, under the same proof
	// (see MayWrite). 0 when there is none (before the first
	// verification, after a halt).
	proofUntil time.Duration

	epoch      uint64 // epoch of the current (or last) activation
	maxEpoch   uint64 // largest epoch seen anywhere
	activated  bool   // bumped the epoch in this activation
	initial    State  // primary: state before it wrote F
	holdPri    bool
	holdBak    bool
	holdFbk    bool
	monitoring bool
	serving    bool
	peers      map[Role]Peer

	out []Action
}

// NewNode returns a node in PhaseInit; EvStart starts it.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Node{cfg: cfg, peers: map[Role]Peer{}}, nil
}

// Config returns the node's configuration.
func (n *Node) Config() Config { return n.cfg }

// Phase returns the current phase.
func (n *Node) Phase() Phase { return n.phase }

// Pending returns the operation whose EvDone the node waits for (ActNone
// if none).
func (n *Node) Pending() ActionKind { return n.pending }

// Epoch returns the epoch of the current or last activation (0 if none).
func (n *Node) Epoch() uint64 { return n.epoch }

// Serving reports whether the node told the caller to serve and has not
// yet told it to stop.
func (n *Node) Serving() bool { return n.serving }

// CanAck reports whether the node may acknowledge at now: active, serving,
// and within the lease of its last good verification.
func (n *Node) CanAck(now time.Duration) bool {
	return n.phase == PhaseActive && n.serving && n.valid && now < n.validUntil
}

// MayWrite reports whether the broker may write to its store at now:
//   - while it loads the store under the epoch it has just taken, after
//     the fence (PhaseLoading), and until its first verification after
//     that (PhaseVerifying): its own load;
//   - otherwise only while it can prove it holds the lock or lease: its
//     newest good verification (or renewal) of this activation is younger
//     than the lease. This includes closing the store on a stop or a
//     failback: a broker that cannot prove it any more leaves the store
//     as it is (a torn tail is for the next load to handle);
//   - never once halted.
//
// A shared file store is fenced by this check before every write (the
// database store is fenced by the epoch in every transaction). The check
// bounds when a write may start, not when the storage applies it: see
// docs/ha-shared-store.md, "The in-flight window".
func (n *Node) MayWrite(now time.Duration) bool {
	switch n.phase {
	case PhaseHalted:
		return false
	case PhaseLoading, PhaseVerifying:
		return true
	}
	return now < n.proofUntil
}

// MayWriteWith is MayWrite counting also a good verification of epoch,
// started at start, that has not reached the node yet: the file-lock
// monitor verifies on its own goroutine while the adapter is busy in a
// hook (closing the store on a stop), and its newest verification is the
// proof. It is only ever a proof for the activation the node knows of
// (epoch), and never after a halt.
func (n *Node) MayWriteWith(now, start time.Duration, epoch uint64) bool {
	if n.MayWrite(now) {
		return true
	}
	return n.phase != PhaseHalted && n.proofUntil > 0 && epoch == n.epoch && now < start+n.cfg.Lease
}

// Done reports whether the node stopped or halted (it ignores all events).
func (n *Node) Done() bool { return n.phase == PhaseStopped || n.phase == PhaseHalted }

// String summarises the node for transcripts.
func (n *Node) String() string {
	s := fmt.Sprintf("%s %s epoch=%d", n.cfg.Role, n.phase, n.epoch)
	if n.pending != ActNone {
		s += " pending=" + n.pending.String()
	}
	if n.holdPri {
		s += " holds-primary"
	}
	if n.holdBak {
		s += " holds-backup"
	}
	if n.holdFbk {
		s += " holds-failback"
	}
	if n.valid {
		s += fmt.Sprintf(" valid-until=%v", n.validUntil)
	}
	s += fmt.Sprintf(" can-ack=%v may-write=%v", n.CanAck(n.now), n.MayWrite(n.now))
	return s
}

func (n *Node) emit(a Action) {
	if a.Kind.IsOp() {
		n.pending = a.Kind
	}
	n.out = append(n.out, a)
}

// Step applies one event and returns the actions to carry out, in order.
// At most one operation (an action that answers with EvDone) is
// outstanding, and it is always the last action returned; the caller must
// feed its result back before any other event.
func (n *Node) Step(ev Event) []Action {
	n.out = nil
	if ev.Now > n.now {
		n.now = ev.Now
	}
	if n.Done() {
		return nil
	}
	switch ev.Kind {
	case EvStart:
		if n.phase == PhaseInit {
			n.start()
		}
	case EvTick:
		if n.pending == ActNone {
			n.tick()
		}
	case EvDone:
		if ev.Op != ActNone && ev.Op == n.pending {
			n.pending = ActNone
			n.done(ev)
		}
	case EvVerified:
		n.verified(ev)
	case EvLockLost:
		if ev.Epoch != 0 && ev.Epoch != n.epoch {
			break // a late report of an earlier activation's monitor
		}
		if n.holdPri {
			n.halt(fmt.Errorf("lock lost: %w", ev.Err))
		} else if n.pending == ActRenewLease {
			n.pending = ActNone
		}
	case EvStorageError:
		n.halt(fmt.Errorf("storage error: %w", ev.Err))
	case EvStop:
		n.stop(ev.Failover)
	case EvPeerAnnounced:
		n.peer(ev.Peer)
	}
	return n.out
}

func (n *Node) start() {
	if n.cfg.Role == Primary {
		n.phase = PhaseReadingInitial
		n.emit(Action{Kind: ActReadState})
		return
	}
	n.phase = PhaseWaitBackup
	n.emit(Action{Kind: ActTryAcquireBackup})
}

func (n *Node) tick() {
	switch n.phase {
	case PhaseWaitBackup:
		if n.now >= n.retryAt {
			n.emit(Action{Kind: ActTryAcquireBackup})
		}
	case PhaseWaitFailback:
		if n.now >= n.retryAt {
			n.emit(Action{Kind: ActTryAcquireFailback})
		}
	case PhaseWaitPrimary:
		if n.now >= n.retryAt {
			n.emit(Action{Kind: ActTryAcquirePrimary})
		}
	case PhaseFencing:
		if n.now >= n.fenceUntil {
			n.phase = PhaseLoading
			n.emit(Action{Kind: ActLoadStore, Epoch: n.epoch})
		}
	case PhaseVerifying, PhaseActive:
		if n.phase == PhaseActive && n.now >= n.validUntil {
			n.halt(fmt.Errorf("%w: last good verification expired at %v", ErrLeaseExpired, n.validUntil))
			return
		}
		if n.cfg.Coordinator == DBLease && n.now >= n.renewAt {
			n.renew()
		}
	}
}

func (n *Node) renew() {
	n.renewAt = n.now + n.cfg.RenewInterval
	n.emit(Action{Kind: ActRenewLease, Epoch: n.epoch})
}

func (n *Node) done(ev Event) {
	if ev.Err != nil {
		switch ev.Op {
		case ActTryAcquirePrimary, ActTryAcquireBackup, ActTryAcquireFailback:
			// Not holding the primary lock: wait and try again.
			n.retryAt = n.now + n.cfg.RetryInterval
		case ActRenewLease:
			// Transient: the lease expiry decides.
		case ActWriteState:
			if n.phase == PhasePausing || n.phase == PhaseRestoring {
				n.halt(fmt.Errorf("writing the state at stop: %w", ev.Err))
				return
			}
			n.halt(fmt.Errorf("%s: %w", ev.Op, ev.Err))
		default:
			n.halt(fmt.Errorf("%s: %w", ev.Op, ev.Err))
		}
		return
	}
	switch ev.Op {
	case ActReadState:
		if n.phase == PhaseReadingInitial {
			n.initial = ev.State
			n.phase = PhaseWaitFailback
			n.emit(Action{Kind: ActTryAcquireFailback})
			return
		}
		// Backup holding the primary lock: activate only if the live died
		// (or failed over on shutdown), which leaves L, or if an F is
		// stale (the primary that wrote it is gone).
		stale := ev.State == lockfile.StateFailingBack && !ev.Waiting
		if ev.State == lockfile.StateActive || stale {
			n.phase = PhaseBumping
			n.emit(Action{Kind: ActBumpEpoch})
			return
		}
		n.holdPri = false
		n.out = append(n.out, Action{Kind: ActReleasePrimary})
		n.phase = PhaseWaitPrimary
		n.retryAt = n.now + n.cfg.RetryInterval
	case ActWriteState:
		switch n.phase {
		case PhaseAnnouncing:
			n.phase = PhaseWaitPrimary
			n.emit(Action{Kind: ActTryAcquirePrimary})
		case PhasePausing, PhaseRestoring:
			n.finishStop()
		}
	case ActTryAcquireFailback:
		if !ev.Ok {
			n.retryAt = n.now + n.cfg.RetryInterval
			return
		}
		n.holdFbk = true
		n.phase = PhaseAnnouncing
		n.emit(Action{Kind: ActWriteState, State: lockfile.StateFailingBack})
	case ActTryAcquireBackup:
		if !ev.Ok {
			n.retryAt = n.now + n.cfg.RetryInterval
			return
		}
		n.holdBak = true
		n.phase = PhaseWaitPrimary
		n.emit(Action{Kind: ActTryAcquirePrimary})
	case ActTryAcquirePrimary:
		if !ev.Ok {
			n.retryAt = n.now + n.cfg.RetryInterval
			return
		}
		n.holdPri = true
		if n.cfg.Role == Primary {
			n.phase = PhaseBumping
			n.emit(Action{Kind: ActBumpEpoch})
			return
		}
		n.phase = PhaseChecking
		n.emit(Action{Kind: ActReadState})
	case ActBumpEpoch:
		if ev.Epoch <= n.maxEpoch {
			n.halt(fmt.Errorf("%w: bump returned epoch %d, already saw %d", ErrEpochMismatch, ev.Epoch, n.maxEpoch))
			return
		}
		n.epoch, n.maxEpoch, n.activated, n.proofUntil = ev.Epoch, ev.Epoch, true, 0
		if n.holdBak {
			n.holdBak = false
			n.out = append(n.out, Action{Kind: ActReleaseBackup})
		}
		if n.holdFbk {
			n.holdFbk = false
			n.out = append(n.out, Action{Kind: ActReleaseFailback})
		}
		n.phase = PhaseFencing
		n.fenceUntil = n.now + n.cfg.FenceWait
		n.tick()
	case ActLoadStore:
		n.phase = PhaseVerifying
		if n.cfg.Coordinator == FileLock {
			n.monitoring = true
			n.emit(Action{Kind: ActStartMonitor, Epoch: n.epoch})
		} else {
			n.renew()
		}
	}
}

func (n *Node) verified(ev Event) {
	if n.pending == ActRenewLease {
		n.pending = ActNone
	}
	if n.phase != PhaseVerifying && n.phase != PhaseActive {
		return // stale report from a monitor we stopped
	}
	if ev.Epoch < n.epoch {
		return // a late report of an earlier activation's monitor
	}
	if ev.Epoch > n.epoch {
		n.halt(fmt.Errorf("%w: verification saw epoch %d, ours is %d", ErrEpochMismatch, ev.Epoch, n.epoch))
		return
	}
	until := ev.Start + n.cfg.Lease
	if until > n.validUntil || !n.valid {
		n.validUntil, n.valid = until, true
	}
	n.proofUntil = max(n.proofUntil, until)
	if n.phase == PhaseVerifying {
		if n.now >= n.validUntil {
			return
		}
		n.phase = PhaseActive
		n.serving = true
		n.emit(Action{Kind: ActStartServing, Epoch: n.epoch})
		n.announce()
		return
	}
	// Fail back only with a proof to close the store under (a late report
	// can leave none: the next tick halts then).
	if n.now < n.validUntil && ev.State == lockfile.StateFailingBack && ev.Waiting && n.cfg.Role == Backup && n.cfg.AllowFailback {
		n.failback()
	}
}

// stopServing stops serving and monitoring.
func (n *Node) stopServing() {
	if n.serving {
		n.serving = false
		n.out = append(n.out, Action{Kind: ActStopServing})
	}
	if n.monitoring {
		n.monitoring = false
		n.out = append(n.out, Action{Kind: ActStopMonitor})
	}
	n.valid = false
}

func (n *Node) releaseAll() {
	if n.holdPri {
		n.holdPri = false
		n.out = append(n.out, Action{Kind: ActReleasePrimary})
	}
	if n.holdBak {
		n.holdBak = false
		n.out = append(n.out, Action{Kind: ActReleaseBackup})
	}
	if n.holdFbk {
		n.holdFbk = false
		n.out = append(n.out, Action{Kind: ActReleaseFailback})
	}
}

func (n *Node) failback() {
	n.stopServing()
	n.releaseAll()
	n.activated = false
	n.out = append(n.out, Action{Kind: ActAnnounce, Epoch: n.epoch, Active: false, Peers: n.peerList()})
	if n.cfg.RestartBackup {
		n.phase = PhaseWaitBackup
		n.emit(Action{Kind: ActTryAcquireBackup})
		return
	}
	n.phase = PhaseStopped
	n.out = append(n.out, Action{Kind: ActStopped})
}

func (n *Node) stop(f Failover) {
	failover := n.cfg.FailoverOnShutdown
	if f != FailoverDefault {
		failover = f == FailoverYes
	}
	if n.serving && !n.MayWrite(n.now) {
		// A live that cannot prove it still holds the lock (it was paused
		// past its lease: a successor may have loaded the store since)
		// must not close the store (a seal, pending batches) nor write P:
		// it halts, as its next tick would.
		n.halt(fmt.Errorf("%w: stop requested after the last good verification expired at %v", ErrLeaseExpired, n.proofUntil))
		return
	}
	n.stopServing()
	if n.holdBak {
		n.holdBak = false
		n.out = append(n.out, Action{Kind: ActReleaseBackup})
	}
	switch {
	case n.holdPri && n.activated && !failover:
		n.phase = PhasePausing
		n.emit(Action{Kind: ActWriteState, State: lockfile.StatePaused, Epoch: n.epoch})
	case n.cfg.Role == Primary && !n.holdPri && (n.phase == PhaseWaitPrimary):
		// We wrote F and never got the lock: put back what was there, so
		// a backup that handed back (or a live one) is not left waiting
		// for a primary that is gone.
		n.phase = PhaseRestoring
		n.emit(Action{Kind: ActWriteState, State: n.initialOrNotStarted()})
	default:
		n.finishStop()
	}
}

func (n *Node) initialOrNotStarted() State {
	if n.initial.Valid() && n.initial != lockfile.StateFailingBack {
		return n.initial
	}
	return lockfile.StateNotStarted
}

func (n *Node) finishStop() {
	n.releaseAll()
	n.phase = PhaseStopped
	n.out = append(n.out, Action{Kind: ActStopped})
}

func (n *Node) halt(err error) {
	n.proofUntil = 0
	n.stopServing()
	n.releaseAll()
	n.pending = ActNone
	n.phase = PhaseHalted
	n.out = append(n.out, Action{Kind: ActHalt, Err: err})
}

func (n *Node) peer(p Peer) {
	if p.Epoch > n.maxEpoch {
		n.maxEpoch = p.Epoch
	}
	n.peers[p.Role] = p
	if n.serving && p.Active && p.Epoch > n.epoch {
		n.halt(fmt.Errorf("%w: %s announced active epoch %d, ours is %d", ErrEpochMismatch, p.Role, p.Epoch, n.epoch))
		return
	}
	if n.serving {
		n.announce()
	}
}

func (n *Node) announce() {
	n.out = append(n.out, Action{Kind: ActAnnounce, Epoch: n.epoch, Active: n.serving, Peers: n.peerList()})
}

func (n *Node) peerList() []Peer {
	ps := make([]Peer, 0, len(n.peers))
	for _, p := range n.peers {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Role < ps[j].Role })
	return ps
}

// StatusState maps a phase to the state names of /status and
// `tandem cluster status` (CLI.md): active, waiting or stopping.
func (p Phase) StatusState() string {
	switch p {
	case PhaseActive:
		return "active"
	case PhasePausing, PhaseRestoring, PhaseStopped, PhaseHalted:
		return "stopping"
	}
	return "waiting"
}
