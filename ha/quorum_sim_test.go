package ha

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// The simulated world of the quorum vote: one replication pair X (the
// configured primary b0 and backup b1, each running the real QuorumNode
// and the real QuorumVoter with an adapter that executes one queued
// action per step, as QuorumRunner does) and the cluster's other brokers
// as plain voters v0, v1, ... (the real QuorumVoter; their own activation
// is not modelled: they are up or down). Every request and every answer
// is a message in flight, delivered in any order or lost (the runner then
// reports "no answer"); a voter may be known under two addresses (it then
// answers twice in one round). The data model is rsWorld's: each broker's
// journal as a set of message IDs, its durable L, the replication link
// and the live's completion gate. Time moves in units of 1 ns, one unit
// per "advance" step; a broker that takes no steps while time advances is
// paused (its lease runs on).
//
// Faults, each from a budget: crash and restart either broker of X,
// crash and restart a plain voter (it forgets its grants, keeps its
// register), cut the replication link, isolate a broker of X from every
// other broker (its messages are lost, its replication link breaks) and
// heal it, lose one message.

const (
	qsLease    = 3 // QuorumConfig.Lease: a voter backs a live this long
	qsTrust    = 2 // the live trusts a lease round this long
	qsRenew    = 1
	qsRetry    = 1
	qsVoteWait = 4
	qsHoldoff  = 1
)

var qsOther = lockfile.NodeID{0x6b, 9, 9, 9, 9, 9, 0x40, 9, 0x88, 9, 9, 9, 9, 9, 9, 9}

func qsConfig(mod func(*QuorumConfig)) func(Role) QuorumConfig {
	return func(r Role) QuorumConfig {
		c := DefaultQuorumConfig(r)
		c.Lease, c.Trust, c.RenewInterval, c.RetryInterval = qsLease, qsTrust, qsRenew, qsRetry
		c.VoteRetryWait, c.VoteWait, c.FailbackHoldoff = qsLease, qsVoteWait, qsHoldoff
		c.Group = "x"
		if mod != nil {
			mod(&c)
		}
		return c
	}
}

type qsBudget struct {
	crashes, restarts, voterCrashes, voterRestarts, cuts, isolations, losses, msgs, failbacks int
}

func (b qsBudget) total() int {
	return b.crashes + b.restarts + b.voterCrashes + b.voterRestarts + b.cuts + b.isolations + b.losses
}

// qsMsg is a request in flight.
type qsMsg struct {
	from   int // the requesting broker of X
	to     int // the voter: 0, 1 the brokers of X, 2+ plain voters
	target int // the requester's target index (1..)
	round  uint64
	req    QRequest
}

type qsBroker struct {
	role  Role
	n     QuorumNode
	v     QuorumVoter
	queue []QAction
	alive bool
	boots uint64
	iso   bool // isolated from every other broker

	diskL     uint64
	journal   uint8
	dataEpoch uint64

	follow       int8
	link         rsLink
	linkConn     uint64
	lostConn     uint64
	syncSeq      uint64
	pendLost     bool
	pendHandover bool

	serving        bool
	epoch          uint64
	pendBackupLost uint8
	pendFailback   bool
	gate           bool
	held           uint8

	claimRound uint64                  // the round of the last claim it sent
	granters   map[uint64]map[int]bool // round -> distinct voters whose grant it received
}

type qsVoter struct {
	v     QuorumVoter
	alive bool
}

type qsWorld struct {
	now         time.Duration
	acked       uint8
	nextMsg     uint8
	maxServed   uint64
	lastStarted uint64

	b      [2]qsBroker
	voters []qsVoter
	alias  bool // the first plain voter is known under two addresses
	msgs   []qsMsg
	budget qsBudget

	cfg     func(Role) QuorumConfig
	seeded  seededBug
	vseeded seededVoterBug
	stats   *qsStats
}

type qsStats struct {
	states, truncated, maxDepth int
	deepTrace                   string
	backupServed, primaryAgain  bool
	handover, stale, halted     bool
	acked                       bool
	maxEpoch                    uint64
}

func newQSWorld(cfg func(Role) QuorumConfig, voters int, alias bool, b qsBudget, seeded seededBug, vseeded seededVoterBug) *qsWorld {
	w := &qsWorld{budget: b, cfg: cfg, seeded: seeded, vseeded: vseeded, alias: alias, stats: &qsStats{}}
	for i := range voters {
		w.voters = append(w.voters, qsVoter{v: *NewQuorumVoter(QuorumVoterID(10+i), qsLease, -qsLease, nil), alive: true})
		w.voters[i].v.seeded = vseeded
	}
	for i, r := range []Role{Primary, Backup} {
		sb := &w.b[i]
		sb.role, sb.follow = r, -1
		sb.v = *NewQuorumVoter(QuorumVoterID(1+i), qsLease, -qsLease, nil)
		sb.v.seeded = vseeded
		w.boot(i)
	}
	return w
}

func (w *qsWorld) electorate() int { return 2 + len(w.voters) }

func (w *qsWorld) owner(i int) uint64 { return uint64(i+1) + 4*w.b[i].boots }

func (w *qsWorld) boot(i int) {
	sb := &w.b[i]
	sb.boots++
	n, err := NewQuorumNode(w.cfg(sb.role), w.owner(i))
	if err != nil {
		panic(err)
	}
	n.seeded = w.seeded
	n.quorum = w.electorate()
	sb.n = *n
	// The register survives; the grants do not; a lease of grace (not
	// at the first start: the run begins long after it).
	reg, start := sb.v.reg, w.now
	if sb.boots == 1 {
		start = -qsLease
	}
	sb.v = *NewQuorumVoter(sb.v.id, qsLease, start, reg)
	sb.v.seeded = w.vseeded
	sb.alive, sb.queue, sb.iso = true, nil, false
	sb.follow, sb.link, sb.pendLost, sb.pendHandover = -1, linkNone, false, false
	sb.serving, sb.pendBackupLost, sb.pendFailback, sb.gate, sb.held = false, 0, false, false, 0
	sb.granters = map[uint64]map[int]bool{}
	w.deliver(i, QEvent{Kind: QEvStart})
}

func (w *qsWorld) clone() *qsWorld {
	c := *w
	c.voters = append([]qsVoter(nil), w.voters...)
	for i := range c.voters {
		c.voters[i].v = cloneVoter(&w.voters[i].v)
	}
	c.msgs = append([]qsMsg(nil), w.msgs...)
	for i := range c.b {
		c.b[i].n = cloneNode(&w.b[i].n)
		c.b[i].v = cloneVoter(&w.b[i].v)
		c.b[i].queue = append([]QAction(nil), w.b[i].queue...)
		c.b[i].granters = map[uint64]map[int]bool{}
		for r, s := range w.b[i].granters {
			if !w.liveRound(i, r) {
				continue // nothing reads it again: round IDs only grow
			}
			m := map[int]bool{}
			for k, v := range s {
				m[k] = v
			}
			c.b[i].granters[r] = m
		}
	}
	return &c
}

// liveRound says whether broker i's granters of round r can still be
// read: by the Q1 check (the last claim sent) or by the key (the current
// rounds). A node numbers its rounds upwards, so an older round never
// becomes either again.
func (w *qsWorld) liveRound(i int, r uint64) bool {
	sb := &w.b[i]
	if r == sb.claimRound {
		return true
	}
	for _, q := range []*qRound{sb.n.claimR, sb.n.leaseR, sb.n.infoR} {
		if q != nil && q.id == r {
			return true
		}
	}
	return false
}

func cloneVoter(v *QuorumVoter) QuorumVoter {
	c := *v
	c.reg = v.Register()
	c.grants = map[lockfile.NodeID]QGrant{}
	for k, g := range v.grants {
		c.grants[k] = g
	}
	c.view.Out = slices.Clone(v.view.Out)
	if v.pending != nil {
		p := *v.pending
		c.pending = &p
	}
	return c
}

func cloneRound(r *qRound) *qRound {
	if r == nil {
		return nil
	}
	c := *r
	c.answered = map[int]bool{}
	for k, v := range r.answered {
		c.answered[k] = v
	}
	c.grants = map[QuorumVoterID]bool{}
	for k, v := range r.grants {
		c.grants[k] = v
	}
	c.refusals = map[QVerdict]int{}
	for k, v := range r.refusals {
		c.refusals[k] = v
	}
	c.peers = append([]QPeer(nil), r.peers...)
	return &c
}

func cloneNode(n *QuorumNode) QuorumNode {
	c := *n
	c.out = nil
	c.claimR, c.leaseR, c.infoR = cloneRound(n.claimR), cloneRound(n.leaseR), cloneRound(n.infoR)
	return c
}

func (w *qsWorld) deliver(i int, ev QEvent) {
	sb := &w.b[i]
	ev.Now = w.now
	sb.queue = append(sb.queue, sb.n.Step(ev)...)
	w.eager(i)
}

// eager executes at once the head actions nobody else can see: reading
// L, the stale report, an announcement while not serving.
func (w *qsWorld) eager(i int) {
	sb := &w.b[i]
	for len(sb.queue) > 0 {
		switch a := sb.queue[0]; {
		case a.Kind == QActReadLocal, a.Kind == QActStale, a.Kind == QActAnnounce && !sb.serving:
			if err := w.exec(i); err != nil {
				panic(err)
			}
		default:
			return
		}
	}
}

// targets are the voters broker i asks besides itself.
func (w *qsWorld) targets(i int) []int {
	out := []int{1 - i}
	for j := range w.voters {
		out = append(out, 2+j)
	}
	if w.alias && len(w.voters) > 0 {
		out = append(out, 2)
	}
	return out
}

// voterAt returns voter j (0, 1: the brokers of X) and whether it is up.
func (w *qsWorld) voterAt(j int) (*QuorumVoter, bool) {
	if j < 2 {
		return &w.b[j].v, w.b[j].alive
	}
	return &w.voters[j-2].v, w.voters[j-2].alive
}

func (w *qsWorld) peerOf(j int) QPeer {
	if j >= 2 {
		return QPeer{Voter: w.voters[j-2].v.id, NodeID: qsOther, Group: "y", State: "active", URL: fmt.Sprintf("v%d", j-2), Seq: 1}
	}
	sb := &w.b[j]
	st := "waiting"
	if sb.serving {
		st = "active"
	}
	return QPeer{Voter: sb.v.id, NodeID: rsNodeID, Group: "x", Role: sb.role, State: st, URL: fmt.Sprintf("b%d", j), Seq: sb.diskL,
		Replica: len(w.replicasOf(j)) > 0}
}

func (w *qsWorld) breakLink(r int, handover, notify bool) {
	rb := &w.b[r]
	if rb.link == linkNone {
		return
	}
	j := int(rb.follow)
	synced := rb.link >= linkSynced
	known := rb.link >= linkSyncing
	rb.link, rb.follow = linkNone, -1
	if notify && rb.alive {
		rb.pendLost, rb.pendHandover, rb.lostConn = true, handover, rb.linkConn
	}
	if lb := &w.b[j]; lb.alive && lb.serving && !handover && known {
		lb.pendBackupLost++
		if synced {
			lb.gate = true
		}
	}
}

func (w *qsWorld) replicasOf(j int) []int {
	var out []int
	for r := range w.b {
		if w.b[r].link != linkNone && int(w.b[r].follow) == j {
			out = append(out, r)
		}
	}
	return out
}

func (w *qsWorld) down(i int) {
	sb := &w.b[i]
	for _, r := range w.replicasOf(i) {
		w.breakLink(r, false, true)
	}
	sb.serving = false
	w.breakLink(i, false, false)
	sb.alive, sb.queue, sb.pendLost, sb.pendBackupLost, sb.pendFailback = false, nil, false, 0, false
	sb.gate, sb.held = false, 0
	w.dropMsgsOf(i)
}

// dropMsgsOf removes the messages a dead broker sent or waits for.
func (w *qsWorld) dropMsgsOf(i int) {
	out := w.msgs[:0]
	for _, m := range w.msgs {
		if m.from != i {
			out = append(out, m)
		}
	}
	w.msgs = out
}

// reachable says whether a message between broker from and voter to can
// pass now.
func (w *qsWorld) reachable(from, to int) bool {
	if w.b[from].iso {
		return false
	}
	if to < 2 && w.b[to].iso {
		return false
	}
	_, up := w.voterAt(to)
	return up
}

func (w *qsWorld) exec(i int) error {
	sb := &w.b[i]
	a := sb.queue[0]
	sb.queue = sb.queue[1:]
	done := QEvent{Kind: QEvDone, Op: a.Kind}
	switch a.Kind {
	case QActReadLocal:
		done.Local, done.NodeID = sb.diskL, rsNodeID
	case QActWriteLocal:
		if sb.n.phase == QPWriting || sb.n.phase == QPActive {
			// Q1: a claim acted on was granted by a majority of distinct
			// voters.
			if g, m := len(sb.granters[sb.claimRound]), w.electorate()/2+1; g < m {
				return fmt.Errorf("Q1: %s writes L=%d after a claim granted by %d distinct voters of %d (%d needed)", sb.role, a.Seq, g, w.electorate(), m)
			}
		}
		sb.diskL = a.Seq
	case QActLoadStore:
		if sb.diskL != a.Epoch {
			return fmt.Errorf("%s loads epoch %d with L=%d", sb.role, a.Epoch, sb.diskL)
		}
	case QActRound:
		if a.Request.Kind == QClaim {
			sb.claimRound = a.Round
		}
		ans, _ := sb.v.Handle(a.Request, w.now)
		w.answered(i, i, a.Round, ans)
		w.deliver(i, QEvent{Kind: QEvAnswer, Round: a.Round, Target: 0, Answer: ans, Peer: w.peerOf(i), Quorum: w.electorate()})
		ts := w.targets(i)
		if a.Request.Kind != QClaim {
			// Info changes nothing at the voters, and a lease granted at
			// the round's start is the worst case (a grant made later
			// ends later): every answer arrives at once. Claims stay in
			// flight, delivered in any order or lost.
			w.deliver(i, QEvent{Kind: QEvRoundSent, Round: a.Round, Targets: len(ts)})
			for k, j := range ts {
				ans, peer := QAnswer{Verdict: QNoAnswer}, QPeer{}
				if w.reachable(i, j) {
					v, _ := w.voterAt(j)
					ans, _ = v.Handle(a.Request, w.now)
					peer = w.peerOf(j)
				}
				w.answered(i, j, a.Round, ans)
				if !w.b[i].alive || w.b[i].n.Done() {
					continue
				}
				w.deliver(i, QEvent{Kind: QEvAnswer, Round: a.Round, Target: k + 1, Answer: ans, Peer: peer, Quorum: w.electorate()})
			}
			return nil
		}
		for k, j := range ts {
			w.msgs = append(w.msgs, qsMsg{from: i, to: j, target: k + 1, round: a.Round, req: a.Request})
		}
		w.deliver(i, QEvent{Kind: QEvRoundSent, Round: a.Round, Targets: len(ts)})
		return nil
	case QActStartServing:
		if a.Epoch <= w.lastStarted {
			return fmt.Errorf("I4: %s starts serving epoch %d after epoch %d served", sb.role, a.Epoch, w.lastStarted)
		}
		// I9: a broker whose data is older than an epoch that served
		// never serves. (It may load its store: two claims can both be
		// granted, one after the other, and the one below loses only
		// at its lease round; loading reads the broker's own store and
		// a loser becomes a replica, which sets those files aside.)
		if sb.dataEpoch < w.maxServed {
			return fmt.Errorf("I9: %s starts serving epoch %d with data complete for epoch %d although epoch %d served", sb.role, a.Epoch, sb.dataEpoch, w.maxServed)
		}
		w.lastStarted = a.Epoch
		sb.serving, sb.epoch = true, a.Epoch
		return nil
	case QActStopServing:
		sb.serving = false
		sb.gate, sb.held, sb.pendBackupLost, sb.pendFailback = false, 0, 0, false
		return nil
	case QActStartReplica:
		var j int
		if _, err := fmt.Sscanf(a.URL, "b%d", &j); err != nil || j == i {
			return fmt.Errorf("%s replicates from %q", sb.role, a.URL)
		}
		if sb.link != linkNone {
			return fmt.Errorf("protocol: %s starts replicating while its link to b%d is still up", sb.role, sb.follow)
		}
		sb.follow, sb.link, sb.linkConn = int8(j), linkConnecting, a.Conn
		return nil
	case QActStopReplica:
		w.breakLink(i, false, false)
		return nil
	case QActRequestFailback:
		if sb.link == linkPersisted && w.budget.failbacks > 0 {
			w.budget.failbacks--
			w.b[sb.follow].pendFailback = true
		}
		return nil
	case QActReleaseHeld:
		if sb.n.CanAck(w.now) {
			w.ack(sb.held)
		}
		sb.held, sb.gate = 0, false
		return nil
	case QActHandover:
		done.Err = errors.New("no synced replica")
		for _, r := range w.replicasOf(i) {
			if w.b[r].link == linkPersisted {
				w.breakLink(r, true, true)
				done.Err = nil
				w.stats.handover = true
			}
		}
	case QActStale:
		w.stats.stale = true
		return nil
	case QActHalt:
		w.stats.halted = true
		w.down(i)
		return nil
	case QActStopped:
		w.down(i)
		return nil
	case QActAnnounce:
		if sb.serving {
			sb.epoch = a.Epoch
		}
		return nil
	default:
		return nil
	}
	w.deliver(i, done)
	return nil
}

// answered records, for the Q1 check, which distinct voters granted.
func (w *qsWorld) answered(i, voter int, round uint64, ans QAnswer) {
	if ans.Verdict != QGranted {
		return
	}
	s := w.b[i].granters[round]
	if s == nil {
		s = map[int]bool{}
		w.b[i].granters[round] = s
	}
	s[voter] = true
}

func (w *qsWorld) ack(m uint8) {
	if m == 0 {
		return
	}
	w.acked |= m
	w.stats.acked = true
}

type qsStep = simStep[*qsWorld]

func (w *qsWorld) steps() []qsStep {
	var out []qsStep
	add := func(desc string, f func(w *qsWorld) error) { out = append(out, qsStep{desc, f}) }
	add("advance", func(w *qsWorld) error { w.now++; return nil })
	for k := range w.msgs {
		m := w.msgs[k]
		name := fmt.Sprintf("b%d's %s round %d", m.from, m.req.Kind, m.round)
		// One step: the voter handles the request and its answer arrives
		// (what a lease proves counts from the round's start, so when the
		// answer arrives only decides when the requester learns it).
		add(name+fmt.Sprintf(" answered by voter %d", m.to), func(w *qsWorld) error {
			m := w.msgs[k]
			w.msgs = append(w.msgs[:k:k], w.msgs[k+1:]...)
			ans, peer := QAnswer{Verdict: QNoAnswer}, QPeer{}
			if w.reachable(m.from, m.to) {
				v, _ := w.voterAt(m.to)
				ans, _ = v.Handle(m.req, w.now)
				peer = w.peerOf(m.to)
			}
			w.answered(m.from, m.to, m.round, ans)
			w.deliver(m.from, QEvent{Kind: QEvAnswer, Round: m.round, Target: m.target, Answer: ans, Peer: peer, Quorum: w.electorate()})
			return nil
		})
		if w.budget.losses > 0 {
			add(name+fmt.Sprintf(" to voter %d lost", m.to), func(w *qsWorld) error {
				w.budget.losses--
				m := w.msgs[k]
				w.msgs = append(w.msgs[:k:k], w.msgs[k+1:]...)
				w.deliver(m.from, QEvent{Kind: QEvAnswer, Round: m.round, Target: m.target, Answer: QAnswer{Verdict: QNoAnswer}, Quorum: w.electorate()})
				return nil
			})
		}
	}
	for j := range w.voters {
		vt := &w.voters[j]
		switch {
		case vt.alive && w.budget.voterCrashes > 0:
			add(fmt.Sprintf("voter v%d crashes", j), func(w *qsWorld) error {
				w.budget.voterCrashes--
				w.voters[j].alive = false
				return nil
			})
		case !vt.alive && w.budget.voterRestarts > 0:
			add(fmt.Sprintf("voter v%d restarts", j), func(w *qsWorld) error {
				w.budget.voterRestarts--
				vt := &w.voters[j]
				vt.v = *NewQuorumVoter(vt.v.id, qsLease, w.now, vt.v.reg)
				vt.v.seeded = w.vseeded
				vt.alive = true
				return nil
			})
		}
	}
	for i := range w.b {
		sb := &w.b[i]
		name := fmt.Sprintf("%s%d", sb.role, i)
		if !sb.alive {
			if w.budget.restarts > 0 {
				add(name+" restarts", func(w *qsWorld) error { w.budget.restarts--; w.boot(i); return nil })
			}
			continue
		}
		if w.budget.crashes > 0 {
			add(name+" crashes", func(w *qsWorld) error { w.budget.crashes--; w.down(i); return nil })
		}
		if !sb.iso && w.budget.isolations > 0 {
			add(name+" is isolated", func(w *qsWorld) error {
				w.budget.isolations--
				w.b[i].iso = true
				for _, r := range w.replicasOf(i) {
					w.breakLink(r, false, true)
				}
				w.breakLink(i, false, true)
				return nil
			})
		}
		if sb.iso {
			add(name+" is reachable again", func(w *qsWorld) error { w.b[i].iso = false; return nil })
		}
		if sb.serving && w.budget.msgs > 0 && sb.n.CanAck(w.now) {
			add(name+" acks a message", func(w *qsWorld) error {
				sb := &w.b[i]
				w.budget.msgs--
				m := uint8(1) << w.nextMsg
				w.nextMsg++
				sb.journal |= m
				for _, r := range w.replicasOf(i) {
					if w.b[r].link >= linkSynced {
						w.b[r].journal |= m
					}
				}
				if sb.gate {
					sb.held |= m
				} else {
					w.ack(m)
				}
				return nil
			})
		}
		if sb.link == linkConnecting || sb.link == linkSyncing {
			j := int(sb.follow)
			lb := &w.b[j]
			if !lb.alive || !lb.serving || sb.iso || lb.iso {
				add(name+"'s replication connection fails", func(w *qsWorld) error { w.breakLink(i, false, true); return nil })
			} else if sb.link == linkConnecting {
				add(fmt.Sprintf("%s%d accepts %s as its backup", lb.role, j, name), func(w *qsWorld) error {
					sb := &w.b[i]
					sb.link = linkSyncing
					sb.diskL, sb.journal, sb.dataEpoch = 0, 0, 0
					return nil
				})
			}
		}
		if sb.link != linkNone && w.budget.cuts > 0 {
			add(name+"'s replication link is cut", func(w *qsWorld) error {
				w.budget.cuts--
				w.breakLink(i, false, true)
				return nil
			})
		}
		if len(sb.queue) > 0 {
			add(name+" does "+sb.queue[0].String(), func(w *qsWorld) error { return w.exec(i) })
			continue
		}
		if sb.n.Done() {
			continue
		}
		add(name+" tick", func(w *qsWorld) error { w.deliver(i, QEvent{Kind: QEvTick}); return nil })
		if sb.pendLost {
			add(name+" notices its replication ended", func(w *qsWorld) error {
				sb := &w.b[i]
				sb.pendLost = false
				w.deliver(i, QEvent{Kind: QEvReplicaLost, Handover: sb.pendHandover, Conn: sb.lostConn})
				return nil
			})
		}
		if sb.pendBackupLost > 0 {
			add(name+" notices its backup is gone", func(w *qsWorld) error {
				w.b[i].pendBackupLost--
				w.deliver(i, QEvent{Kind: QEvBackupLost})
				return nil
			})
		}
		if sb.pendFailback {
			add(name+" receives a failback request", func(w *qsWorld) error {
				w.b[i].pendFailback = false
				w.deliver(i, QEvent{Kind: QEvFailbackRequested})
				return nil
			})
		}
		if sb.link == linkSyncing {
			j := int(sb.follow)
			if lb := &w.b[j]; lb.alive && lb.serving && len(lb.queue) == 0 && lb.n.phase == QPActive && !sb.iso && !lb.iso {
				add(fmt.Sprintf("%s%d completes the sync of %s", lb.role, j, name), func(w *qsWorld) error {
					sb, lb := &w.b[i], &w.b[j]
					sb.journal = lb.journal
					sb.link, sb.syncSeq = linkSynced, lb.n.local
					w.deliver(j, QEvent{Kind: QEvBackupSynced})
					return nil
				})
			}
		}
		if sb.link == linkSynced {
			add(name+" persists the completed sync", func(w *qsWorld) error {
				sb := &w.b[i]
				sb.diskL, sb.link, sb.dataEpoch = sb.syncSeq, linkPersisted, sb.syncSeq
				w.deliver(i, QEvent{Kind: QEvReplicaSynced, Local: sb.syncSeq, NodeID: rsNodeID, Conn: sb.linkConn})
				return nil
			})
		}
	}
	return out
}

// check asserts the invariants at the current instant.
func (w *qsWorld) check() error {
	ackers := 0
	for i := range w.b {
		sb := &w.b[i]
		if !sb.alive || !sb.serving || !sb.n.CanAck(w.now) {
			continue
		}
		ackers++
		e := sb.epoch
		if e < w.maxServed {
			return fmt.Errorf("I4: %s can ack under epoch %d although epoch %d could ack", sb.role, e, w.maxServed)
		}
		w.maxServed, sb.dataEpoch = e, e
		if missing := w.acked &^ sb.journal; missing != 0 {
			return fmt.Errorf("I1: %s can ack under epoch %d but lacks acknowledged messages %08b", sb.role, e, missing)
		}
		if sb.role == Backup {
			w.stats.backupServed = true
		} else if w.stats.backupServed {
			w.stats.primaryAgain = true
		}
		w.stats.maxEpoch = max(w.stats.maxEpoch, e)
	}
	if ackers > 1 {
		return errors.New("I4: two brokers can ack at once")
	}
	return nil
}

func (w *qsWorld) key(buf []byte) (key128, []byte) {
	b := buf[:0]
	u := func(v uint64) { b = binary.AppendUvarint(b, v) }
	t := func(v bool) {
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	rel := func(d time.Duration) { u(relf(d, w.now)) }
	// Owners only matter as "the current incarnation of b0, of b1, or an
	// older one".
	own := func(o uint64) uint64 {
		switch {
		case o == 0:
			return 0
		case o == w.owner(0):
			return 1
		case o == w.owner(1):
			return 2
		}
		return 3
	}
	voter := func(v *QuorumVoter) {
		e := v.reg[rsNodeID]
		u(e.Seq)
		u(own(e.Owner))
		u(e.From)
		u(e.Leased)
		u(own(e.LeasedOwner))
		g, ok := v.validGrant(rsNodeID, w.now)
		t(ok)
		if ok {
			u(own(g.Owner))
			rel(g.Until)
		}
		rel(v.start + v.maxLease)
	}
	u(uint64(w.acked))
	u(uint64(w.nextMsg))
	u(w.maxServed)
	u(w.lastStarted)
	bg := w.budget
	for _, v := range []int{bg.crashes, bg.restarts, bg.voterCrashes, bg.voterRestarts, bg.cuts, bg.isolations, bg.losses, bg.msgs, bg.failbacks} {
		u(uint64(v))
	}
	for i := range w.voters {
		t(w.voters[i].alive)
		voter(&w.voters[i].v)
	}
	// Rounds only matter as "the requester's current claim, lease or
	// info round, or an older one".
	roundCode := func(i int, id uint64) uint64 {
		n := &w.b[i].n
		for k, r := range []*qRound{n.claimR, n.leaseR, n.infoR} {
			if r != nil && r.id == id {
				return uint64(k + 1)
			}
		}
		return 0
	}
	msgs := make([]string, 0, len(w.msgs))
	for _, m := range w.msgs {
		var mb []byte
		mb = binary.AppendUvarint(mb, uint64(m.from))
		mb = binary.AppendUvarint(mb, uint64(m.to))
		mb = binary.AppendUvarint(mb, uint64(m.target))
		mb = binary.AppendUvarint(mb, roundCode(m.from, m.round))
		mb = binary.AppendUvarint(mb, uint64(m.req.Kind))
		mb = binary.AppendUvarint(mb, m.req.From)
		mb = binary.AppendUvarint(mb, m.req.Seq)
		mb = binary.AppendUvarint(mb, own(m.req.Owner))
		msgs = append(msgs, string(mb))
	}
	sort.Strings(msgs)
	u(uint64(len(msgs)))
	for _, m := range msgs {
		b = append(b, m...)
		b = append(b, 0xff)
	}
	round := func(i int, r *qRound) {
		t(r != nil)
		if r == nil {
			return
		}
		u(uint64(r.req.Kind))
		u(r.req.From)
		u(r.req.Seq)
		rel(r.start)
		u(uint64(r.expected))
		var ans uint64
		for k := range r.answered {
			ans |= 1 << k
		}
		u(ans)
		var gr uint64
		for v := range r.grants {
			gr |= 1 << (uint64(v) % 32)
		}
		u(gr)
		u(uint64(r.granted))
		for _, v := range []QVerdict{QNoAnswer, QLiveAlive, QStale, QHigher, QWait, QSuperseded, QRefused} {
			u(uint64(r.refusals[v]))
		}
		u(r.newest)
		u(r.higher)
		u(uint64(r.retry))
		for _, p := range r.peers {
			b = append(b, p.State...)
			b = append(b, p.URL...)
		}
		var gs uint64
		for v := range w.b[i].granters[r.id] {
			gs |= 1 << v
		}
		u(gs)
	}
	for i := range w.b {
		sb := &w.b[i]
		n := &sb.n
		t(sb.alive)
		t(sb.iso)
		voter(&sb.v)
		u(sb.diskL)
		u(uint64(sb.journal))
		u(sb.dataEpoch)
		u(uint64(sb.follow + 1))
		u(uint64(sb.link))
		if sb.link == linkSynced {
			u(sb.syncSeq)
		}
		t(sb.pendLost)
		t(sb.pendLost && sb.pendHandover)
		t(sb.pendLost && sb.lostConn == n.replConn)
		t(sb.link != linkNone && sb.linkConn == n.replConn)
		t(sb.serving)
		if sb.serving {
			u(sb.epoch)
		}
		u(uint64(sb.pendBackupLost))
		t(sb.pendFailback)
		t(sb.gate)
		u(uint64(sb.held))
		u(uint64(n.phase))
		u(uint64(n.pending))
		u(n.local)
		u(n.from)
		u(n.target)
		u(n.lseq)
		rel(n.retryAt)
		rel(n.replicaAt)
		rel(n.holdoffUntil)
		t(n.valid)
		if n.valid {
			rel(n.validUntil)
		}
		u(relf(n.lastLease+n.cfg.RenewInterval, w.now))
		t(n.lastLease == 0)
		t(n.serving)
		t(n.replica)
		t(n.backupSynced)
		u(uint64(n.bump))
		u(uint64(n.owed))
		t(n.rebump)
		t(n.staleShown)
		if n.staleShown {
			u(n.staleL)
			u(n.staleN)
		}
		t(n.handedOver)
		round(i, n.claimR)
		round(i, n.leaseR)
		round(i, n.infoR)
		t(sb.claimRound == 0 || n.claimR != nil && n.claimR.id == sb.claimRound)
		if n.phase == QPWriting || n.phase == QPActive && n.bump == bumpWrite {
			u(uint64(len(sb.granters[sb.claimRound])))
		}
		u(uint64(len(sb.queue)))
		for _, a := range sb.queue {
			u(uint64(a.Kind))
			u(a.Epoch)
			u(a.Seq)
			b = append(b, a.URL...)
			t(a.Active)
			t(a.Conn == n.replConn)
			u(roundCode(i, a.Round))
			u(uint64(a.Request.Kind))
			u(a.Request.From)
			u(a.Request.Seq)
		}
	}
	return key128{maphash.Bytes(rsSeeds[0], b), maphash.Bytes(rsSeeds[1], b)}, b
}

func (w *qsWorld) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "now=%v acked=%08b budget=%+v msgs=%d", w.now, w.acked, w.budget, len(w.msgs))
	for i := range w.voters {
		v := &w.voters[i]
		g := v.v.grants[rsNodeID]
		fmt.Fprintf(&sb, "\n    v%d alive=%v reg=%+v grant=%+v start=%v", i, v.alive, v.v.reg[rsNodeID], g, v.v.start)
	}
	for i := range w.b {
		b := &w.b[i]
		fmt.Fprintf(&sb, "\n    b%d alive=%v iso=%v L=%d journal=%08b link=%d serving=%v gate=%v held=%08b reg=%+v grant=%+v node: %s queue=%v",
			i, b.alive, b.iso, b.diskL, b.journal, b.link, b.serving, b.gate, b.held, b.v.reg[rsNodeID], b.v.grants[rsNodeID], &b.n, b.queue)
	}
	return sb.String()
}

// replayCopy returns a copy of w whose steps record into statistics of
// their own (a trace replayed after a violation changes no statistics).
func (w *qsWorld) replayCopy() *qsWorld {
	c := w.clone()
	c.stats = &qsStats{}
	return c
}

// exploreQuorum enumerates every world state reachable from w0 within
// maxDepth steps (exploreDFS: depth first, states hashed up to a shift of
// time) and checks the invariants after every step; on a violation it
// returns the trace to it, replayed from w0.
func exploreQuorum(w0 *qsWorld, maxDepth, maxStates int) (*qsStats, error) {
	res, err := exploreDFS(w0, maxDepth, maxStates)
	st := w0.stats
	st.states, st.maxDepth, st.truncated, st.deepTrace = res.states, res.maxDepth, res.truncated, res.deepTrace
	return st, err
}
