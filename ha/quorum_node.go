package ha

import (
	"errors"
	"fmt"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// QuorumNode is the activation state machine of one broker of a
// replication pair coordinated by the quorum vote: pure and deterministic
// (no goroutines, clocks or I/O), as ReplNode. It asks the cluster's
// voters (QuorumVoter, its own first) in rounds: Info (who is live, what
// do you know of my node ID), Claim (may I activate at Seq with data
// complete for From), Lease (I am live at Seq: back me for Lease). It
// counts grants per voter and needs a majority of the electorate:
//
//   - activate: a claim granted by a majority, then L = Seq written
//     durably, the store loaded, and a lease granted by a majority before
//     serving;
//   - acknowledge (CanAck): only within Trust of the start of the last
//     lease round a majority granted; voters refuse to let anyone else
//     activate for Lease after they granted it, and Trust < Lease;
//   - lose a synced backup: claim L+1, write it, lease under it, and only
//     then release the held completions; a live that cannot halts.
//
// Step returns the actions to carry out in order; operations (ReadLocal,
// WriteLocal, LoadStore, Handover) answer with QEvDone and at most one is
// outstanding; rounds answer with QEvRoundSent (how many voters besides
// this broker were asked) and one QEvAnswer per voter (QNoAnswer when one
// could not be reached), in any order and interleaved with other events.
type QuorumNode struct {
	cfg   QuorumConfig
	owner uint64 // this incarnation's claim owner ID

	phase   QPhase
	pending QActionKind
	now     time.Duration

	nodeID lockfile.NodeID
	local  uint64 // L
	from   uint64 // the data version of the current activation (its claim's From)
	target uint64 // the claim in progress
	lseq   uint64 // the sequence leases are asked under
	quorum int    // the electorate as last reported (at least 1)
	view   QView  // the newest membership view an answer showed (quorum_members.go)

	retryAt, replicaAt, holdoffUntil time.Duration
	validUntil                       time.Duration
	valid                            bool

	serving    bool
	replica    bool
	replConn   uint64
	handedOver bool // the replica that ended was handed over to

	backupSynced bool
	bump         bumpStep // bumpClaim, bumpWrite, bumpCommit (= leasing under L+1)
	owed         int
	rebump       bool

	nextRound uint64
	claimR    *qRound // a claim (activation or bump)
	leaseR    *qRound
	infoR     *qRound
	lastLease time.Duration // start of the last lease round
	voteFails int
	failNote  string // why the last claim failed (for the log)

	staleShown  bool
	staleL      uint64
	staleN      uint64
	activations int

	seeded seededBug
	out    []QAction
}

// QuorumConfig configures a QuorumNode.
type QuorumConfig struct {
	// Role is the configured role; Group the group-name (a broker without
	// data pairs with the live of its group).
	Role  Role
	Group string
	// AllowFailback (allow-failback, default true): a live configured as
	// the backup hands over to a synced primary that asks.
	AllowFailback bool
	// FailbackOnSync (check-for-live-server on a primary): a primary that
	// synced from a live of its node ID asks it to hand over.
	FailbackOnSync bool
	// Lease is how long a voter backs a live after granting it a lease
	// (and refuses to let another broker of its pair activate); Trust how
	// long after a round's start a majority of grants lets the live
	// acknowledge (shorter: the margin covers clock-rate differences and
	// the time between the check and an answer leaving the broker).
	// RenewInterval: how often the live renews.
	Lease, Trust, RenewInterval time.Duration
	// RetryInterval: how often a waiting broker looks for the live.
	RetryInterval time.Duration
	// VoteRetries and VoteRetryWait (vote-retries, vote-retry-wait):
	// after VoteRetries failed claims in a row the broker says so once
	// more loudly; it keeps looking for the live and voting every
	// VoteRetryWait (sooner when a voter says when the live's lease ends).
	VoteRetries   int
	VoteRetryWait time.Duration
	// VoteWait (quorum-vote-wait) bounds one round.
	VoteWait time.Duration
	// QuorumSize (quorum-size > 0): at least this many grants; never
	// fewer than a majority of the electorate.
	QuorumSize int
	// FailbackHoldoff: after handing over, the ex-live only follows the
	// new live for this long.
	FailbackHoldoff time.Duration
	// StayOnStop: a clean stop does not leave the electorate
	// (quorum_members.go): a broker that is not a member of the
	// electorate it votes in (a colocated hosted backup).
	StayOnStop bool
}

// Defaults of the quorum vote (Artemis's vote-retries, vote-retry-wait and
// quorum-vote-wait).
const (
	DefaultVoteRetries   = 12
	DefaultVoteRetryWait = 5 * time.Second
	DefaultVoteWait      = 30 * time.Second
)

// DefaultQuorumConfig returns the defaults for role: the lease is
// vote-retry-wait, trusted for four fifths of it and renewed every fifth.
func DefaultQuorumConfig(role Role) QuorumConfig {
	c := QuorumConfig{Role: role, AllowFailback: true, FailbackOnSync: true, RetryInterval: DefaultReplRetryInterval,
		VoteRetries: DefaultVoteRetries, VoteWait: DefaultVoteWait, FailbackHoldoff: DefaultReplFailbackHoldoff}
	c.SetLease(DefaultVoteRetryWait)
	return c
}

// SetLease sets VoteRetryWait and the lease derived from it: Lease =
// wait, Trust = 4/5 of it, RenewInterval = 1/5.
func (c *QuorumConfig) SetLease(wait time.Duration) {
	c.VoteRetryWait, c.Lease = wait, wait
	c.Trust, c.RenewInterval = wait*4/5, max(wait/5, time.Millisecond)
}

// Validate checks the durations.
func (c QuorumConfig) Validate() error {
	switch {
	case c.Lease <= 0 || c.Trust <= 0 || c.RenewInterval <= 0 || c.RetryInterval <= 0 || c.VoteRetryWait <= 0 || c.VoteWait <= 0:
		return errors.New("ha: quorum vote durations must be positive")
	case c.Trust >= c.Lease:
		return fmt.Errorf("ha: quorum lease trust %v must be shorter than the lease %v", c.Trust, c.Lease)
	case c.RenewInterval >= c.Trust:
		return fmt.Errorf("ha: quorum lease renewal interval %v must be shorter than the trust %v", c.RenewInterval, c.Trust)
	case c.FailbackHoldoff < 0:
		return errors.New("ha: failback holdoff must not be negative")
	}
	return nil
}

// QPhase is where a QuorumNode is.
type QPhase int

// Quorum phases.
const (
	QPInit        QPhase = iota
	QPReading            // reading L
	QPFinding            // asking the cluster who is live (or waiting to)
	QPClaiming           // a claim round (or waiting to retry one)
	QPWriting            // writing L = the claimed sequence
	QPLoading            // loading the store
	QPLeasing            // loaded: asking for the first lease
	QPActive             // serving
	QPSyncing            // replicating from the live, not yet synced
	QPSynced             // a synced replica
	QPHandingOver        // failback: handing over to the returned primary
	QPStopped
	QPHalted
)

var qPhaseNames = [...]string{"init", "reading-local", "finding-live", "claiming", "writing-local", "loading", "leasing",
	"active", "replica-syncing", "replica-synced", "handing-over", "stopped", "halted"}

func (p QPhase) String() string {
	if int(p) < len(qPhaseNames) {
		return qPhaseNames[p]
	}
	return fmt.Sprintf("QPhase(%d)", int(p))
}

// StatusState maps a phase to /status's states.
func (p QPhase) StatusState() string {
	switch p {
	case QPActive:
		return "active"
	case QPSyncing:
		return "syncing"
	case QPHandingOver, QPStopped, QPHalted:
		return "stopping"
	}
	return "waiting"
}

// QEventKind says what happened.
type QEventKind int

// Quorum event kinds.
const (
	QEvStart QEventKind = iota
	QEvTick
	// QEvDone: the result of the pending operation Op (Local and NodeID
	// for ReadLocal; Err when it failed).
	QEvDone
	// QEvRoundSent: round Round was sent to Targets voters besides this
	// broker (whose own answer comes as a QEvAnswer too).
	QEvRoundSent
	// QEvAnswer: Target's answer to round Round (Target 0: this broker's
	// own voter), with what the answering broker says of itself (Peer)
	// and the electorate as the runtime knows it now (Quorum).
	QEvAnswer
	QEvBackupSynced
	QEvBackupLost
	QEvFailbackRequested
	// QEvReplicaSynced: the sync completed; L = Local with NodeID is
	// durable (Conn: StartReplica's).
	QEvReplicaSynced
	// QEvReplicaLost: replication connection Conn ended (Handover: the
	// live handed over to us).
	QEvReplicaLost
	QEvStorageError
	QEvStop
)

var qEventNames = [...]string{"start", "tick", "done", "round-sent", "answer", "backup-synced", "backup-lost",
	"failback-requested", "replica-synced", "replica-lost", "storage-error", "stop"}

func (k QEventKind) String() string {
	if int(k) < len(qEventNames) {
		return qEventNames[k]
	}
	return fmt.Sprintf("QEventKind(%d)", int(k))
}

// QPeer is what an answering broker says of itself.
type QPeer struct {
	Voter   QuorumVoterID
	NodeID  lockfile.NodeID
	Group   string
	Role    Role
	State   string // active, waiting, syncing, stopping
	URL     string
	Seq     uint64 // its L (its epoch while active)
	Replica bool   // live: a replica is attached
}

// QEvent is one input of a QuorumNode.
type QEvent struct {
	Kind QEventKind
	Now  time.Duration

	Op     QActionKind // QEvDone
	Err    error
	Local  uint64          // ReadLocal; ReplicaSynced
	NodeID lockfile.NodeID // ReadLocal; ReplicaSynced

	Round   uint64 // RoundSent, Answer
	Targets int    // RoundSent
	Target  int    // Answer
	Answer  QAnswer
	Peer    QPeer
	Quorum  int // Answer: the electorate size

	Handover bool   // ReplicaLost
	Conn     uint64 // ReplicaSynced, ReplicaLost
}

// QActionKind says what the caller must do.
type QActionKind int

// Quorum action kinds; "op" ones answer with QEvDone.
const (
	QActNone       QActionKind = iota
	QActReadLocal              // op
	QActWriteLocal             // op: L = Seq with NodeID, durably
	QActLoadStore              // op
	QActHandover               // op
	// QActRound asks every voter (this broker's own first) Request as
	// round Round.
	QActRound
	QActStartServing
	QActStopServing
	QActStartReplica
	QActStopReplica
	QActRequestFailback
	QActReleaseHeld
	QActAnnounce
	// QActStale: the local data is behind what a voter knows (Seq: L,
	// Newest: the newest data version known).
	QActStale
	// QActDepart: leave the cluster cleanly (release Request's lease if
	// Owner is set, and announce the departure); best effort, synchronous.
	QActDepart
	QActHalt
	QActStopped
)

var qActionNames = [...]string{"none", "read-local", "write-local", "load-store", "handover", "round", "start-serving",
	"stop-serving", "start-replica", "stop-replica", "request-failback", "release-held", "announce", "stale", "depart",
	"halt", "stopped"}

func (k QActionKind) String() string {
	if int(k) < len(qActionNames) {
		return qActionNames[k]
	}
	return fmt.Sprintf("QActionKind(%d)", int(k))
}

// IsOp reports whether the action answers with a QEvDone.
func (k QActionKind) IsOp() bool {
	switch k {
	case QActReadLocal, QActWriteLocal, QActLoadStore, QActHandover:
		return true
	}
	return false
}

// QAction is one output of a QuorumNode.
type QAction struct {
	Kind    QActionKind
	Seq     uint64          // WriteLocal; Stale: L
	Newest  uint64          // Stale
	NodeID  lockfile.NodeID // WriteLocal
	Epoch   uint64          // LoadStore, StartServing, Announce
	Active  bool            // Announce
	URL     string          // StartReplica
	Conn    uint64          // StartReplica
	Round   uint64          // Round
	Request QRequest        // Round, Depart
	Err     error           // Halt
}

func (a QAction) String() string {
	s := a.Kind.String()
	switch a.Kind {
	case QActWriteLocal:
		s += fmt.Sprintf(" L=%d", a.Seq)
	case QActLoadStore, QActStartServing:
		s += fmt.Sprintf(" epoch=%d", a.Epoch)
	case QActAnnounce:
		s += fmt.Sprintf(" epoch=%d active=%v", a.Epoch, a.Active)
	case QActStartReplica:
		s += fmt.Sprintf(" %s conn=%d", a.URL, a.Conn)
	case QActRound:
		s += fmt.Sprintf(" %d %s from=%d seq=%d", a.Round, a.Request.Kind, a.Request.From, a.Request.Seq)
	case QActStale:
		s += fmt.Sprintf(" L=%d newest=%d", a.Seq, a.Newest)
	case QActHalt:
		s += fmt.Sprintf(" %q", fmt.Sprint(a.Err))
	}
	return s
}

// qRound tallies one round: answers by target (the runtime's index; 0 is
// this broker), grants by voter (a voter counts once however often it
// answers).
type qRound struct {
	id       uint64
	req      QRequest
	start    time.Duration
	expected int // targets + 1; 0 until RoundSent
	answered map[int]bool
	grants   map[QuorumVoterID]bool
	granted  int // answers counted as grants (differs from len(grants) only under seedDoubleCount)
	refusals map[QVerdict]int
	newest   uint64        // the newest data version an answer showed
	higher   uint64        // the highest claim an answer showed
	retry    time.Duration // the longest RetryAfter
	reason   string
	peers    []QPeer
}

func (r *qRound) complete() bool { return r.expected > 0 && len(r.answered) >= r.expected }

// Seeded quorum bugs for the explorer's self-check (zero in production).
const (
	seedDoubleCount         seededBug = 1 << (iota + 8) // a voter's grant counted every time it answers
	seedMinority                                        // a claim or lease needs half the electorate, not a majority
	seedQReleaseBeforeLease                             // held completions released before the lease under L+1
	seedTrustTooLong                                    // the live trusts a lease round for longer than voters back it
	seedQIgnoreNewest                                   // the node ignores the newer data versions voters show
)

// NewQuorumNode returns a node in QPInit with incarnation owner (random,
// never 0); QEvStart starts it.
func NewQuorumNode(cfg QuorumConfig, owner uint64) (*QuorumNode, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if owner == 0 {
		return nil, errors.New("ha: quorum node owner ID must not be 0")
	}
	return &QuorumNode{cfg: cfg, owner: owner, quorum: 1}, nil
}

// Config returns the configuration.
func (n *QuorumNode) Config() QuorumConfig { return n.cfg }

// Owner returns this incarnation's claim owner ID.
func (n *QuorumNode) Owner() uint64 { return n.owner }

// Phase returns the phase.
func (n *QuorumNode) Phase() QPhase { return n.phase }

// Local returns L (the epoch while active).
func (n *QuorumNode) Local() uint64 { return n.local }

// NodeID returns the node ID of the local data.
func (n *QuorumNode) NodeID() lockfile.NodeID { return n.nodeID }

// Quorum returns the electorate size as last reported.
func (n *QuorumNode) Quorum() int { return n.quorum }

// View returns the newest membership view the node saw.
func (n *QuorumNode) View() QView { return n.view }

// Serving reports whether the node told the caller to serve.
func (n *QuorumNode) Serving() bool { return n.serving }

// Done reports whether the node stopped or halted.
func (n *QuorumNode) Done() bool { return n.phase == QPStopped || n.phase == QPHalted }

// CanAck reports whether the broker may acknowledge at now.
func (n *QuorumNode) CanAck(now time.Duration) bool {
	return n.phase == QPActive && n.serving && n.valid && now < n.validUntil
}

// LeaseUntil returns until when the live may acknowledge (valid false:
// no lease).
func (n *QuorumNode) LeaseUntil() (time.Duration, bool) { return n.validUntil, n.valid }

func (n *QuorumNode) String() string {
	s := fmt.Sprintf("%s %s L=%d Q=%d", n.cfg.Role, n.phase, n.local, n.quorum)
	if n.pending != QActNone {
		s += " pending=" + n.pending.String()
	}
	if n.replica {
		s += " replica"
	}
	if n.backupSynced {
		s += " backup-synced"
	}
	if n.bump != bumpNone {
		s += fmt.Sprintf(" bump=%d->%d", n.local, n.target)
	}
	if n.owed > 0 {
		s += fmt.Sprintf(" owed=%d", n.owed)
	}
	if n.valid {
		s += fmt.Sprintf(" valid-until=%v", n.validUntil)
	}
	return s + fmt.Sprintf(" can-ack=%v", n.CanAck(n.now))
}

func (n *QuorumNode) emit(a QAction) {
	if a.Kind.IsOp() {
		n.pending = a.Kind
	}
	n.out = append(n.out, a)
}

// need is how many grants a decision needs: a majority of the
// electorate less the voters out of it in the newest membership view.
func (n *QuorumNode) need(r *qRound) int {
	q := max(n.quorum-len(n.view.Out), n.granted(r), 1)
	m := q/2 + 1
	if n.seeded&seedMinority != 0 {
		m = (q + 1) / 2
	}
	return max(m, n.cfg.QuorumSize)
}

func (n *QuorumNode) round(req QRequest) *qRound {
	n.nextRound++
	req.Owner, req.Node = n.owner, n.nodeID
	req.View = n.view
	r := &qRound{id: n.nextRound, req: req, start: n.now, answered: map[int]bool{}, grants: map[QuorumVoterID]bool{},
		refusals: map[QVerdict]int{}}
	n.out = append(n.out, QAction{Kind: QActRound, Round: r.id, Request: req})
	return r
}

// Step applies one event and returns the actions to carry out, in order.
func (n *QuorumNode) Step(ev QEvent) []QAction {
	n.out = nil
	if ev.Now > n.now {
		n.now = ev.Now
	}
	if n.Done() {
		return nil
	}
	switch ev.Kind {
	case QEvStart:
		if n.phase == QPInit {
			n.phase = QPReading
			n.emit(QAction{Kind: QActReadLocal})
		}
	case QEvTick:
		n.tick()
	case QEvDone:
		if ev.Op != QActNone && ev.Op == n.pending {
			n.pending = QActNone
			n.done(ev)
		}
	case QEvRoundSent:
		for _, r := range []*qRound{n.claimR, n.leaseR, n.infoR} {
			if r != nil && r.id == ev.Round {
				r.expected = ev.Targets + 1
				n.settle(r)
			}
		}
	case QEvAnswer:
		if ev.Quorum > 0 {
			n.quorum = ev.Quorum
		}
		if ev.Answer.Verdict != QNoAnswer && n.view.newer(ev.Answer.View) {
			n.view = ev.Answer.View
		}
		for _, r := range []*qRound{n.claimR, n.leaseR, n.infoR} {
			if r != nil && r.id == ev.Round {
				n.answer(r, ev)
			}
		}
	case QEvStorageError:
		n.halt(fmt.Errorf("ha: storage error: %w", ev.Err))
	case QEvStop:
		n.stop()
	case QEvBackupSynced:
		if n.phase == QPActive {
			n.backupSynced = true
		}
	case QEvBackupLost:
		if n.phase == QPActive {
			n.backupLost()
		}
	case QEvFailbackRequested:
		if n.phase == QPActive && n.bump == bumpNone && n.cfg.Role == Backup && n.cfg.AllowFailback {
			n.handover()
		}
	case QEvReplicaSynced:
		if n.replica && ev.Conn == n.replConn {
			n.local, n.nodeID = ev.Local, ev.NodeID
			n.phase = QPSynced
			n.staleShown = false
			if n.cfg.Role == Primary && n.cfg.FailbackOnSync {
				n.out = append(n.out, QAction{Kind: QActRequestFailback})
			}
		}
	case QEvReplicaLost:
		if n.replica && ev.Conn == n.replConn {
			// L may have changed (0 once the live accepted this replica
			// and the copy began): read it again before anything else.
			n.replica = false
			n.handedOver = ev.Handover
			n.replicaAt = 0
			if !ev.Handover {
				n.replicaAt = n.now + n.cfg.RetryInterval
			}
			n.phase = QPReading
			n.emit(QAction{Kind: QActReadLocal})
		}
	}
	return n.out
}

func (n *QuorumNode) tick() {
	switch n.phase {
	case QPActive:
		if n.now >= n.validUntil {
			n.halt(fmt.Errorf("%w: no majority of the cluster renewed this live's lease since %v (it ran out at %v): a broker cut off from the majority stops",
				ErrLeaseExpired, n.lastLease, n.validUntil))
			return
		}
		n.renew()
	case QPLeasing:
		n.renew()
	case QPFinding:
		if n.infoR == nil && n.now >= n.retryAt {
			n.find()
		} else if r := n.infoR; r != nil && n.now >= r.start+n.cfg.VoteWait {
			n.infoR = nil
			n.found(r)
		}
	case QPClaiming:
		if n.claimR == nil && n.now >= n.retryAt {
			n.find()
		} else if r := n.claimR; r != nil && n.now >= r.start+n.cfg.VoteWait {
			n.claimR = nil
			n.claimFailed(r)
		}
	}
	if r := n.claimR; r != nil && n.phase == QPActive && n.now >= r.start+n.cfg.VoteWait {
		n.claimR = nil
		n.halt(fmt.Errorf("ha: moving the activation sequence to %d after losing the backup: no majority within quorum-vote-wait (%v)", r.req.Seq, n.cfg.VoteWait))
	}
}

// renew starts a lease round when the last one is done (or older than
// the trust: it proves nothing any more) and the interval passed.
func (n *QuorumNode) renew() {
	if r := n.leaseR; r != nil {
		if n.now < r.start+n.cfg.Trust {
			return
		}
		n.leaseR = nil
	}
	if n.lastLease != 0 && n.now < n.lastLease+n.cfg.RenewInterval {
		return
	}
	n.lastLease = n.now
	n.leaseR = n.round(QRequest{Kind: QLease, From: n.from, Seq: n.lseq, Lease: n.cfg.Lease})
}

func (n *QuorumNode) done(ev QEvent) {
	switch ev.Op {
	case QActReadLocal:
		if ev.Err != nil {
			n.halt(fmt.Errorf("ha: reading the local activation sequence: %w", ev.Err))
			return
		}
		n.local, n.nodeID = ev.Local, ev.NodeID
		if n.handedOver {
			// The live released its lease before handing over: claim
			// at once.
			n.handedOver = false
			n.claim()
			return
		}
		n.find()
	case QActWriteLocal:
		if ev.Err != nil {
			n.halt(fmt.Errorf("ha: writing the local activation sequence: %w", ev.Err))
			return
		}
		if n.phase == QPActive {
			// The bump: L+1 is durable; lease under it, then release.
			n.local = n.target
			n.bump = bumpCommit
			n.lseq = n.target
			n.leaseR = nil
			n.lastLease = 0
			if n.seeded&seedQReleaseBeforeLease != 0 {
				n.bump = bumpNone
				n.releaseOwed()
			}
			n.renew()
			return
		}
		n.local = n.target
		n.phase = QPLoading
		n.valid = false
		n.emit(QAction{Kind: QActLoadStore, Epoch: n.local})
	case QActLoadStore:
		if ev.Err != nil {
			n.halt(fmt.Errorf("ha: loading the store: %w", ev.Err))
			return
		}
		n.phase = QPLeasing
		n.lseq = n.local
		n.leaseR = nil
		n.lastLease = 0
		n.renew()
	case QActHandover:
		if ev.Err != nil {
			n.halt(fmt.Errorf("ha: handing over to the primary: %w", ev.Err))
			return
		}
		n.holdoffUntil = n.now + n.cfg.FailbackHoldoff
		n.replicaAt = 0
		n.find()
	}
}

// find asks the cluster who is live.
func (n *QuorumNode) find() {
	n.phase = QPFinding
	n.claimR = nil
	n.infoR = n.round(QRequest{Kind: QInfo, From: n.local, Seq: n.local})
}

// answer records one answer of round r.
func (n *QuorumNode) answer(r *qRound, ev QEvent) {
	if r.answered[ev.Target] && n.seeded&seedDoubleCount == 0 {
		return
	}
	r.answered[ev.Target] = true
	a := ev.Answer
	if ev.Answer.Verdict != QNoAnswer {
		r.peers = append(r.peers, ev.Peer)
		r.newest = max(r.newest, a.Entry.Newest())
		if a.Entry.From <= n.local {
			r.higher = max(r.higher, a.Entry.Seq)
		}
	}
	switch a.Verdict {
	case QGranted:
		if !r.grants[a.Voter] || n.seeded&seedDoubleCount != 0 {
			r.granted++
		}
		r.grants[a.Voter] = true
	default:
		r.refusals[a.Verdict]++
		r.retry = max(r.retry, a.RetryAfter)
		if a.Reason != "" {
			r.reason = a.Reason
		}
	}
	switch {
	case r == n.infoR:
		if n.liveOf(r) != nil {
			n.infoR = nil
			n.found(r)
			return
		}
	case r == n.leaseR && a.Verdict == QSuperseded:
		n.leaseR = nil
		n.superseded(a.Entry)
		return
	case r == n.claimR && n.phase == QPActive && (a.Verdict == QStale || a.Verdict == QLiveAlive):
		n.claimR = nil
		n.halt(fmt.Errorf("ha: moving the activation sequence to %d after losing the backup: a voter says another broker of this pair is live or newer (%s, sequence %d)",
			r.req.Seq, a.Verdict, a.Entry.Newest()))
		return
	}
	n.settle(r)
}

// granted counts the grants of r (per voter, or per answer when seeded).
func (n *QuorumNode) granted(r *qRound) int {
	if n.seeded&seedDoubleCount != 0 {
		return r.granted
	}
	g := 0
	for v := range r.grants {
		if !n.view.IsOut(v) { // a voter out of the cluster counts for nothing
			g++
		}
	}
	return g
}

// settle acts on round r once it is decided.
func (n *QuorumNode) settle(r *qRound) {
	ok := n.granted(r) >= n.need(r)
	switch r {
	case n.infoR:
		if r.complete() {
			n.infoR = nil
			n.found(r)
		}
	case n.claimR:
		switch {
		case ok:
			n.claimR = nil
			n.claimed(r)
		case r.complete():
			n.claimR = nil
			if n.phase == QPActive && r.refusals[QHigher] > 0 && r.higher >= n.target && n.granted(r) > 0 {
				// A claim of the other broker (while this live's grant
				// had run out at some voters) is in the way: claim above.
				n.target = r.higher + 1
				n.claimR = n.round(QRequest{Kind: QClaim, From: n.local, Seq: n.target})
				return
			}
			if n.phase == QPActive {
				n.halt(fmt.Errorf("ha: moving the activation sequence to %d after losing the backup: %d of %d voters granted it, %d needed",
					r.req.Seq, n.granted(r), n.quorum, n.need(r)))
				return
			}
			n.claimFailed(r)
		}
	case n.leaseR:
		switch {
		case ok:
			n.leaseR = nil
			n.leased(r)
		case r.complete():
			n.leaseR = nil
		}
	}
}

// liveOf returns the live broker of this pair among r's answers (the one
// with the newest sequence), or nil.
func (n *QuorumNode) liveOf(r *qRound) *QPeer {
	var best *QPeer
	for i := range r.peers {
		p := &r.peers[i]
		if p.State != "active" || p.URL == "" {
			continue
		}
		mine := n.local > 0 && p.NodeID == n.nodeID ||
			n.local == 0 && (n.cfg.Group != "" && p.Group == n.cfg.Group || n.cfg.Group == "" && n.cfg.Role == Backup && !p.Replica)
		if mine && (best == nil || p.Seq > best.Seq) {
			best = p
		}
	}
	return best
}

// found acts on a finished Info round.
func (n *QuorumNode) found(r *qRound) {
	if live := n.liveOf(r); live != nil {
		if n.now < n.replicaAt {
			n.phase, n.retryAt = QPFinding, n.replicaAt
			return
		}
		n.replica = true
		n.replConn++
		n.phase = QPSyncing
		n.out = append(n.out, QAction{Kind: QActStartReplica, URL: live.URL, Conn: n.replConn})
		return
	}
	switch {
	case n.local == 0 && n.cfg.Role == Backup:
		n.showStale(0)
	case r.newest > n.local && n.seeded&seedQIgnoreNewest == 0:
		n.showStale(r.newest)
	case n.now < n.holdoffUntil:
	default:
		n.staleShown = false
		n.claim()
		return
	}
	n.phase, n.retryAt = QPFinding, n.now+n.cfg.RetryInterval
}

func (n *QuorumNode) showStale(newest uint64) {
	if n.staleShown && n.staleL == n.local && n.staleN == newest {
		return
	}
	n.staleShown, n.staleL, n.staleN = true, n.local, newest
	n.out = append(n.out, QAction{Kind: QActStale, Seq: n.local, Newest: newest})
}

// claim asks to activate at the next sequence.
func (n *QuorumNode) claim() {
	n.phase = QPClaiming
	n.infoR = nil
	if n.target <= n.local {
		n.target = n.local + 1
	}
	n.claimR = n.round(QRequest{Kind: QClaim, From: n.local, Seq: n.target})
}

// claimFailed waits and looks again (a Higher answer: claims above it at
// once).
func (n *QuorumNode) claimFailed(r *qRound) {
	switch {
	case r.refusals[QStale] > 0 || r.newest > n.local && n.seeded&seedQIgnoreNewest == 0:
		n.voteFails = 0
		n.showStale(r.newest)
		n.phase, n.retryAt = QPClaiming, n.now+n.cfg.RetryInterval
		return
	case r.refusals[QHigher] > 0 && r.higher >= n.target:
		n.target = r.higher + 1
		n.claim()
		return
	}
	n.voteFails++
	wait := n.cfg.VoteRetryWait
	if r.retry > 0 {
		wait = min(wait, r.retry+n.cfg.RenewInterval)
	}
	n.failNote = fmt.Sprintf("%d of %d voters granted activation at %d, %d needed (live-alive %d, restarting %d, no answer %d)",
		n.granted(r), n.quorum, r.req.Seq, n.need(r), r.refusals[QLiveAlive], r.refusals[QWait], r.refusals[QNoAnswer])
	n.phase, n.retryAt = QPClaiming, n.now+wait
}

// FailNote says why the last claim failed and how many failed in a row.
func (n *QuorumNode) FailNote() (string, int) { return n.failNote, n.voteFails }

// claimed: a majority granted r.
func (n *QuorumNode) claimed(r *qRound) {
	n.voteFails, n.failNote = 0, ""
	if n.phase == QPActive {
		n.bump = bumpWrite
		n.emit(QAction{Kind: QActWriteLocal, Seq: n.target, NodeID: n.nodeID})
		return
	}
	n.from = n.local
	n.phase = QPWriting
	n.emit(QAction{Kind: QActWriteLocal, Seq: n.target, NodeID: n.nodeID})
}

// leased: a majority granted lease round r.
func (n *QuorumNode) leased(r *qRound) {
	trust := n.cfg.Trust
	if n.seeded&seedTrustTooLong != 0 {
		trust = n.cfg.Lease + 1
	}
	if n.phase == QPActive && n.now >= n.validUntil {
		// The lease ran out before this round: voters may have let
		// another broker of the pair activate since. Never resume.
		n.halt(fmt.Errorf("%w: this live's lease ran out at %v before a majority renewed it", ErrLeaseExpired, n.validUntil))
		return
	}
	if until := r.start + trust; until > n.validUntil || !n.valid {
		n.validUntil, n.valid = until, true
	}
	switch {
	case n.phase == QPLeasing && n.now < n.validUntil:
		n.phase = QPActive
		n.serving = true
		n.activations++
		n.staleShown = false
		n.out = append(n.out, QAction{Kind: QActStartServing, Epoch: n.local})
		n.announce()
	case n.phase == QPActive && n.bump == bumpCommit && r.req.Seq == n.local:
		n.bump = bumpNone
		if n.rebump {
			n.rebump = false
			n.startBump()
			return
		}
		n.releaseOwed()
		n.announce()
	}
}

// superseded: a voter knows a newer live of this pair.
func (n *QuorumNode) superseded(e QEntry) {
	if n.phase == QPActive {
		n.halt(fmt.Errorf("ha: another broker of this pair became live at activation sequence %d (this one serves %d): stopping", e.Leased, n.local))
		return
	}
	// Leasing: never served; go back to waiting.
	n.valid = false
	n.showStale(e.Newest())
	n.phase, n.retryAt = QPFinding, n.now+n.cfg.RetryInterval
}

func (n *QuorumNode) releaseOwed() {
	for ; n.owed > 0; n.owed-- {
		n.out = append(n.out, QAction{Kind: QActReleaseHeld})
	}
}

func (n *QuorumNode) startBump() {
	n.bump = bumpClaim
	n.target = n.local + 1
	n.from = n.local
	n.claimR = n.round(QRequest{Kind: QClaim, From: n.local, Seq: n.target})
}

func (n *QuorumNode) backupLost() {
	n.owed++
	synced := n.backupSynced
	n.backupSynced = false
	switch {
	case synced && n.bump != bumpNone:
		n.rebump = true
	case synced:
		n.startBump()
	case n.bump == bumpNone:
		n.releaseOwed()
	}
}

func (n *QuorumNode) handover() {
	n.serving = false
	n.valid = false
	n.backupSynced = false
	n.leaseR, n.claimR = nil, nil
	n.out = append(n.out, QAction{Kind: QActStopServing})
	n.announce()
	n.round(QRequest{Kind: QRelease, Seq: n.local})
	n.phase = QPHandingOver
	n.emit(QAction{Kind: QActHandover})
}

func (n *QuorumNode) announce() {
	n.out = append(n.out, QAction{Kind: QActAnnounce, Epoch: n.local, Active: n.serving})
}

func (n *QuorumNode) stopAll() {
	if n.serving {
		n.serving = false
		n.out = append(n.out, QAction{Kind: QActStopServing})
	}
	if n.replica {
		n.replica = false
		n.replConn++
		n.out = append(n.out, QAction{Kind: QActStopReplica})
	}
	n.valid = false
	n.backupSynced = false
	n.claimR, n.leaseR, n.infoR = nil, nil, nil
}

// stop is a clean stop: give the lease back and leave the cluster.
func (n *QuorumNode) stop() {
	leased := n.phase == QPActive || n.phase == QPLeasing
	n.stopAll()
	d := QRequest{Kind: QDepart, Node: n.nodeID}
	if leased {
		d.Owner, d.Seq = n.owner, n.local
	}
	n.out = append(n.out, QAction{Kind: QActDepart, Request: d})
	n.pending = QActNone
	n.phase = QPStopped
	n.out = append(n.out, QAction{Kind: QActStopped})
}

func (n *QuorumNode) halt(err error) {
	n.stopAll()
	n.pending = QActNone
	n.phase = QPHalted
	n.out = append(n.out, QAction{Kind: QActHalt, Err: err})
}
