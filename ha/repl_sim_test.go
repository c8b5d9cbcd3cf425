package ha

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// The simulated world of the replication machine: two brokers (the
// configured primary and backup, each running the real ReplNode with an
// adapter that executes one queued action per step, as ReplRunner does), a
// ZooKeeper model (the lock as an ephemeral node of a session that expires
// when the server has not heard from it for a session timeout; C with
// compare-and-set) and a data model (each broker's journal as a set of
// message IDs, its durable L, the replication link, the live's completion
// gate). Outside events reach a broker only when its action queue is
// empty (the runner feeds an operation's result before anything else).
// Time moves in units of 1 ns, one unit per "advance" step; a broker that
// takes no steps while time advances is paused (or slow): its lease and
// its session run on.
//
// Faults, each from a budget: crash either broker at any step, restart
// it, stop it cleanly, a storage error, the expiry of the live's session
// (the server stopped hearing from it: a partition or a pause), the
// replication link cut, ZooKeeper lost by one broker and regained. A
// crashed broker's session expires on its own once the server has not
// heard from it for a session timeout.

const (
	rsLease   = 2 // ReplConfig.Lease
	rsSession = 3 // the ZooKeeper session timeout; the lease must be shorter
	rsRetry   = 1
	rsHoldoff = 1
)

var rsNodeID = lockfile.NodeID{0x7a, 1, 2, 3, 4, 5, 0x40, 7, 0x88, 9, 10, 11, 12, 13, 14, 15}

type rsBudget struct {
	crashes, restarts, stops, storageErrs, expiries, cuts, zkLosses, msgs int
	// failbacks bounds the failback requests a live receives: a primary
	// slower than the holdoff after a handover loses the lock to the
	// ex-live again, syncs and asks again, each round a new epoch.
	failbacks int
}

func (b rsBudget) total() int {
	return b.crashes + b.restarts + b.stops + b.storageErrs + b.expiries + b.cuts + b.zkLosses
}

type rsLink uint8

const (
	linkNone       rsLink = iota
	linkConnecting        // StartReplica executed; the data is untouched
	linkSyncing           // the live accepted: L = 0 written, data wiped, copying
	linkSynced            // the live copied everything and reported BackupSynced
	linkPersisted         // the replica wrote L and reported ReplicaSynced
)

type rsBroker struct {
	role  Role
	n     ReplNode
	queue []ReplAction
	alive bool

	// ZooKeeper client.
	sess          uint8         // current session number
	expired       bool          // the server expired sess; the broker has not learnt it
	zkDown        bool          // cut from ZooKeeper
	lastHeard     time.Duration // the server last heard from sess
	pendLockLost  bool
	pendConnected bool

	// Data.
	diskL   uint64
	journal uint8 // message IDs (bits) in its journal
	// dataEpoch is the newest epoch its data is complete for: the live's
	// at a completed sync, its own while it serves (not what L says).
	dataEpoch uint64

	// As a replica.
	follow       int8 // the live it replicates from, -1 none
	link         rsLink
	linkConn     uint64 // StartReplica's Conn of the link
	lostConn     uint64 // the connection pendLost is about
	syncSeq      uint64
	pendLost     bool // ReplicaLost to deliver
	pendHandover bool

	// As the live.
	serving        bool   // StartServing executed, StopServing not yet
	epoch          uint64 // the epoch it serves under (StartServing, then Announce)
	pendBackupLost uint8
	pendFailback   bool
	gate           bool  // the completion gate holds (a synced backup was lost)
	held           uint8 // appended, waiting for ReleaseHeld
}

type rsWorld struct {
	now time.Duration

	lockOwner int8 // -1 free
	lockSess  uint8
	lockHeard time.Duration // the server last heard from the lock's session
	C         int64

	acked       uint8 // every message any live acknowledged
	nextMsg     uint8
	maxServed   uint64 // newest epoch that could acknowledge
	lastStarted uint64 // newest epoch StartServing was executed for

	b      [2]rsBroker
	budget rsBudget

	cfg     func(Role) ReplConfig
	seeded  seededBug
	session time.Duration
	stats   *rsStats
}

type rsStats struct {
	states, truncated, maxDepth int
	deepTrace                   string // a path to a state at the depth bound
	backupServed                bool   // the configured backup activated
	primaryAgain                bool   // the primary served after the backup did
	handover                    bool   // a failback handover completed
	stale                       bool   // a broker said it is stale
	halted                      bool
	acked                       bool // some message was acknowledged
	maxEpoch                    uint64
}

func newRSWorld(cfg func(Role) ReplConfig, b rsBudget, seeded seededBug, session time.Duration) *rsWorld {
	w := &rsWorld{lockOwner: -1, budget: b, cfg: cfg, seeded: seeded, session: session, stats: &rsStats{}}
	for i, r := range []Role{Primary, Backup} {
		w.b[i] = rsBroker{role: r, follow: -1}
		w.boot(i)
	}
	return w
}

func (w *rsWorld) boot(i int) {
	sb := &w.b[i]
	sb.n = ReplNode{cfg: w.cfg(sb.role), seeded: w.seeded} // unvalidated: tests try bad configs too
	sb.alive, sb.queue = true, nil
	sb.sess++
	sb.expired, sb.zkDown, sb.lastHeard, sb.pendLockLost, sb.pendConnected = false, false, w.now, false, false
	sb.follow, sb.link, sb.pendLost, sb.pendHandover = -1, linkNone, false, false
	sb.serving, sb.pendBackupLost, sb.pendFailback, sb.gate, sb.held = false, 0, false, false, 0
	w.deliver(i, ReplEvent{Kind: ReplEvStart})
}

func (w *rsWorld) clone() *rsWorld {
	c := *w
	for i := range c.b {
		c.b[i].n.out = nil
		c.b[i].queue = append([]ReplAction(nil), w.b[i].queue...)
	}
	return &c
}

func (w *rsWorld) deliver(i int, ev ReplEvent) {
	sb := &w.b[i]
	ev.Now = w.now
	sb.queue = append(sb.queue, sb.n.Step(ev)...)
	w.eager(i)
}

// eager executes at once the head actions of broker i that touch nothing
// another broker, the environment or the invariants can see: reading its
// own L (only it writes it, and a crash before or after the read leaves
// the same world), the stale report, and an announcement while not
// serving. It only removes interleavings that lead to the same states.
func (w *rsWorld) eager(i int) {
	sb := &w.b[i]
	for len(sb.queue) > 0 {
		switch a := sb.queue[0]; {
		case a.Kind == ReplActReadLocal, a.Kind == ReplActStale, a.Kind == ReplActAnnounce && !sb.serving:
			if err := w.exec(i); err != nil {
				panic(err) // none of these can fail
			}
		default:
			return
		}
	}
}

// zkOK says whether broker i's ZooKeeper requests succeed now; a success
// tells the server the session is alive.
func (w *rsWorld) zkOK(i int) bool {
	sb := &w.b[i]
	if sb.zkDown || sb.expired {
		return false
	}
	sb.lastHeard = w.now
	if w.lockOwner == int8(i) && w.lockSess == sb.sess {
		w.lockHeard = w.now
	}
	return true
}

func (w *rsWorld) holdsLock(i int) bool {
	return w.lockOwner == int8(i) && w.lockSess == w.b[i].sess && !w.b[i].expired
}

var errZK = errors.New("zk: connection closed")

// breakLink ends replica r's replication link. notify: the replica
// learns it (not when it stopped it itself or died).
func (w *rsWorld) breakLink(r int, handover, notify bool) {
	rb := &w.b[r]
	if rb.link == linkNone {
		return
	}
	j := int(rb.follow)
	synced := rb.link >= linkSynced
	known := rb.link >= linkSyncing // the live accepted it
	rb.link, rb.follow = linkNone, -1
	if notify && rb.alive {
		rb.pendLost, rb.pendHandover, rb.lostConn = true, handover, rb.linkConn
	}
	if lb := &w.b[j]; lb.alive && lb.serving && !handover && known {
		lb.pendBackupLost++
		if synced {
			lb.gate = true // nothing more completes without ReleaseHeld
		}
	}
}

// replicasOf returns the brokers replicating from j.
func (w *rsWorld) replicasOf(j int) []int {
	var out []int
	for r := range w.b {
		if w.b[r].link != linkNone && int(w.b[r].follow) == j {
			out = append(out, r)
		}
	}
	return out
}

// down takes broker i out: a crash, or the exit after a halt or a stop.
// Its session stays until the server expires it.
func (w *rsWorld) down(i int) {
	sb := &w.b[i]
	for _, r := range w.replicasOf(i) {
		w.breakLink(r, false, true)
	}
	sb.serving = false
	w.breakLink(i, false, false)
	sb.alive, sb.queue, sb.pendLost, sb.pendBackupLost, sb.pendFailback = false, nil, false, 0, false
	sb.pendLockLost, sb.pendConnected, sb.gate, sb.held = false, false, false, 0
}

func (w *rsWorld) exec(i int) error {
	sb := &w.b[i]
	a := sb.queue[0]
	sb.queue = sb.queue[1:]
	done := ReplEvent{Kind: ReplEvDone, Op: a.Kind}
	switch a.Kind {
	case ReplActReadLocal:
		done.Local, done.NodeID = sb.diskL, rsNodeID
	case ReplActWriteLocal:
		sb.diskL = a.Seq
	case ReplActReadCoordinated:
		if !w.zkOK(i) {
			done.Err = errZK
			break
		}
		done.Coord = w.C
	case ReplActCAS:
		if !w.zkOK(i) {
			done.Err = errZK
			break
		}
		if w.C == a.Old {
			w.C, done.Ok = a.New, true
		}
	case ReplActTryLock:
		if !w.zkOK(i) {
			done.Err = errZK
			break
		}
		if w.lockOwner < 0 || w.holdsLock(i) {
			w.lockOwner, w.lockSess, w.lockHeard, done.Ok = int8(i), sb.sess, w.now, true
		}
	case ReplActReadLock:
		if !w.zkOK(i) {
			done.Err = errZK
			break
		}
		if w.lockOwner >= 0 {
			done.Holder = LockHolder{Held: true, URL: fmt.Sprintf("b%d", w.lockOwner), Mine: w.lockOwner == int8(i)}
		}
	case ReplActReleaseLock:
		if w.holdsLock(i) && w.zkOK(i) {
			w.lockOwner = -1
		}
		return nil
	case ReplActLoadStore:
		// I9: a broker whose data is older than an epoch that served
		// never becomes active.
		if sb.dataEpoch < w.maxServed {
			return fmt.Errorf("I9: %s loads epoch %d with data complete for epoch %d although epoch %d served", sb.role, a.Epoch, sb.dataEpoch, w.maxServed)
		}
		if sb.diskL != a.Epoch || w.C != int64(a.Epoch) {
			return fmt.Errorf("%s loads epoch %d with L=%d C=%d", sb.role, a.Epoch, sb.diskL, w.C)
		}
	case ReplActVerifyLock:
		switch {
		case !w.zkOK(i):
			done.Err = errZK
		case !w.holdsLock(i):
			done.Err = errors.New("lock lost")
		default:
			done.Start = w.now
		}
	case ReplActStartServing:
		if a.Epoch <= w.lastStarted {
			return fmt.Errorf("I4: %s starts serving epoch %d after epoch %d served", sb.role, a.Epoch, w.lastStarted)
		}
		w.lastStarted = a.Epoch
		sb.serving, sb.epoch = true, a.Epoch
		return nil
	case ReplActStopServing:
		// Clients are closed; the replication connection stays (a
		// handover needs it; a stop or a halt closes it when the process
		// exits). Held completions are never released: outcome unknown.
		sb.serving = false
		sb.gate, sb.held, sb.pendBackupLost, sb.pendFailback = false, 0, 0, false
		return nil
	case ReplActStartReplica:
		var j int
		if _, err := fmt.Sscanf(a.URL, "b%d", &j); err != nil || j == i {
			return fmt.Errorf("%s replicates from %q", sb.role, a.URL)
		}
		if sb.link != linkNone {
			return fmt.Errorf("protocol: %s starts replicating while its replication link to b%d is still up", sb.role, sb.follow)
		}
		sb.follow, sb.link, sb.linkConn = int8(j), linkConnecting, a.Conn
		return nil
	case ReplActStopReplica:
		w.breakLink(i, false, false)
		return nil
	case ReplActRequestFailback:
		if sb.link == linkPersisted && w.budget.failbacks > 0 {
			w.budget.failbacks--
			w.b[sb.follow].pendFailback = true
		}
		return nil
	case ReplActReleaseHeld:
		if sb.n.CanAck(w.now) {
			w.ack(i, sb.held)
		}
		sb.held, sb.gate = 0, false
		return nil
	case ReplActHandover:
		done.Err = errors.New("no synced replica")
		for _, r := range w.replicasOf(i) {
			if w.b[r].link == linkPersisted {
				w.breakLink(r, true, true)
				done.Err = nil
				w.stats.handover = true
			}
		}
	case ReplActStale:
		w.stats.stale = true
		return nil
	case ReplActHalt:
		w.stats.halted = true
		w.down(i)
		return nil
	case ReplActStopped:
		w.down(i)
		return nil
	case ReplActAnnounce:
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

// ack records messages as acknowledged by live i.
func (w *rsWorld) ack(i int, m uint8) {
	if m == 0 {
		return
	}
	w.acked |= m
	w.stats.acked = true
}

type rsStep = simStep[*rsWorld]

func (w *rsWorld) steps() []rsStep {
	var out []rsStep
	add := func(desc string, f func(w *rsWorld) error) { out = append(out, rsStep{desc, f}) }
	add("advance", func(w *rsWorld) error { w.now++; return nil })
	// The lock's session expires once the server has not heard from it
	// for a session timeout: a fault (from the budget) while its broker
	// runs, a consequence when it died.
	if w.lockOwner >= 0 && w.now-w.lockHeard >= w.session {
		o := int(w.lockOwner)
		ob := &w.b[o]
		current := ob.alive && w.lockSess == ob.sess && !ob.expired
		if !current || ob.zkDown || w.budget.expiries > 0 {
			add(fmt.Sprintf("%s%d's session expires", ob.role, o), func(w *rsWorld) error {
				ob := &w.b[o]
				if current {
					if !ob.zkDown {
						w.budget.expiries--
					}
					ob.expired = true
				}
				w.lockOwner = -1
				return nil
			})
		}
	}
	for i := range w.b {
		sb := &w.b[i]
		name := fmt.Sprintf("%s%d", sb.role, i)
		if !sb.alive {
			if w.budget.restarts > 0 {
				add(name+" restarts", func(w *rsWorld) error { w.budget.restarts--; w.boot(i); return nil })
			}
			continue
		}
		if w.budget.crashes > 0 {
			add(name+" crashes", func(w *rsWorld) error { w.budget.crashes--; w.down(i); return nil })
		}
		if sb.serving && w.budget.msgs > 0 && sb.n.CanAck(w.now) {
			add(name+" acks a message", func(w *rsWorld) error {
				sb := &w.b[i]
				w.budget.msgs--
				m := uint8(1) << w.nextMsg
				w.nextMsg++
				sb.journal |= m
				for _, r := range w.replicasOf(i) {
					if w.b[r].link >= linkSynced {
						w.b[r].journal |= m // the ack waits for the backup's fdatasync
					}
				}
				if sb.gate {
					sb.held |= m
				} else {
					w.ack(i, m)
				}
				return nil
			})
		}
		if sb.link == linkConnecting || sb.link == linkSyncing {
			j := int(sb.follow)
			lb := &w.b[j]
			if !lb.alive || !lb.serving {
				add(name+"'s replication connection fails", func(w *rsWorld) error { w.breakLink(i, false, true); return nil })
			} else if sb.link == linkConnecting {
				add(fmt.Sprintf("%s%d accepts %s as its backup", lb.role, j, name), func(w *rsWorld) error {
					sb := &w.b[i]
					sb.link = linkSyncing
					sb.diskL, sb.journal, sb.dataEpoch = 0, 0, 0 // L = 0 before the data changes
					return nil
				})
			}
		}
		if sb.link != linkNone && w.budget.cuts > 0 {
			add(name+"'s replication link is cut", func(w *rsWorld) error {
				w.budget.cuts--
				w.breakLink(i, false, true)
				return nil
			})
		}
		if len(sb.queue) > 0 {
			add(name+" does "+sb.queue[0].String(), func(w *rsWorld) error { return w.exec(i) })
			continue
		}
		if sb.n.Done() {
			continue
		}
		// Outside events: only with an empty queue.
		add(name+" tick", func(w *rsWorld) error { w.deliver(i, ReplEvent{Kind: ReplEvTick}); return nil })
		if w.budget.storageErrs > 0 {
			add(name+" storage error", func(w *rsWorld) error {
				w.budget.storageErrs--
				w.deliver(i, ReplEvent{Kind: ReplEvStorageError, Err: errors.New("EIO")})
				return nil
			})
		}
		if w.budget.stops > 0 {
			add(name+" stop", func(w *rsWorld) error {
				w.budget.stops--
				w.deliver(i, ReplEvent{Kind: ReplEvStop})
				return nil
			})
		}
		if sb.n.phase == ReplActive && sb.n.holdsLock && !sb.zkDown && !sb.expired {
			add(name+" monitor verifies", func(w *rsWorld) error {
				if w.zkOK(i) && w.holdsLock(i) {
					w.deliver(i, ReplEvent{Kind: ReplEvVerified, Start: w.now})
				} else {
					w.deliver(i, ReplEvent{Kind: ReplEvLockLost, Err: errors.New("lock znode gone")})
				}
				return nil
			})
		}
		if sb.pendLockLost {
			add(name+" learns its session expired", func(w *rsWorld) error {
				w.b[i].pendLockLost = false
				w.deliver(i, ReplEvent{Kind: ReplEvLockLost, Err: errors.New("session expired")})
				return nil
			})
		}
		if sb.pendConnected && !sb.pendLockLost {
			add(name+" has a ZooKeeper session again", func(w *rsWorld) error {
				w.b[i].pendConnected = false
				w.deliver(i, ReplEvent{Kind: ReplEvZKConnected})
				return nil
			})
		}
		if sb.expired && !sb.zkDown && !sb.pendLockLost {
			add(name+"'s client reconnects after the expiry", func(w *rsWorld) error {
				sb := &w.b[i]
				sb.sess++
				sb.expired, sb.lastHeard, sb.pendLockLost, sb.pendConnected = false, w.now, true, true
				return nil
			})
		}
		if !sb.zkDown && w.budget.zkLosses > 0 {
			add(name+" loses ZooKeeper", func(w *rsWorld) error {
				w.budget.zkLosses--
				w.b[i].zkDown = true
				w.deliver(i, ReplEvent{Kind: ReplEvZKDisconnected})
				return nil
			})
		}
		if sb.zkDown {
			add(name+" regains ZooKeeper", func(w *rsWorld) error {
				sb := &w.b[i]
				sb.zkDown = false
				if sb.expired {
					sb.sess++
					sb.expired, sb.lastHeard, sb.pendLockLost, sb.pendConnected = false, w.now, true, true
					return nil
				}
				w.zkOK(i)
				w.deliver(i, ReplEvent{Kind: ReplEvZKConnected})
				return nil
			})
		}
		if sb.pendLost {
			add(name+" notices its replication ended", func(w *rsWorld) error {
				sb := &w.b[i]
				sb.pendLost = false
				w.deliver(i, ReplEvent{Kind: ReplEvReplicaLost, Handover: sb.pendHandover, Conn: sb.lostConn})
				return nil
			})
		}
		if sb.pendBackupLost > 0 {
			add(name+" notices its backup is gone", func(w *rsWorld) error {
				w.b[i].pendBackupLost--
				w.deliver(i, ReplEvent{Kind: ReplEvBackupLost})
				return nil
			})
		}
		if sb.pendFailback {
			add(name+" receives a failback request", func(w *rsWorld) error {
				w.b[i].pendFailback = false
				w.deliver(i, ReplEvent{Kind: ReplEvFailbackRequested})
				return nil
			})
		}
		if sb.link == linkSyncing {
			j := int(sb.follow)
			if lb := &w.b[j]; lb.alive && lb.serving && len(lb.queue) == 0 && lb.n.phase == ReplActive && !lb.n.Done() {
				add(fmt.Sprintf("%s%d completes the sync of %s", lb.role, j, name), func(w *rsWorld) error {
					sb, lb := &w.b[i], &w.b[j]
					sb.journal = lb.journal
					sb.link, sb.syncSeq = linkSynced, lb.n.local
					// Reported before the backup is told.
					w.deliver(j, ReplEvent{Kind: ReplEvBackupSynced})
					return nil
				})
			}
		}
		if sb.link == linkSynced {
			add(name+" persists the completed sync", func(w *rsWorld) error {
				sb := &w.b[i]
				sb.diskL, sb.link, sb.dataEpoch = sb.syncSeq, linkPersisted, sb.syncSeq
				w.deliver(i, ReplEvent{Kind: ReplEvReplicaSynced, Local: sb.syncSeq, NodeID: rsNodeID, Conn: sb.linkConn})
				return nil
			})
		}
	}
	return out
}

// check asserts the invariants at the current instant.
func (w *rsWorld) check() error {
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

// key128 identifies a world state (up to a shift of time).
type key128 [2]uint64

var rsSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func relf(t, now time.Duration) uint64 { return uint64(max(t-now, 0)) }

func (w *rsWorld) key(buf []byte) (key128, []byte) {
	b := buf[:0]
	u := func(v uint64) { b = binary.AppendUvarint(b, v) }
	s := func(v int64) { b = binary.AppendVarint(b, v) }
	t := func(v bool) {
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	past := func(t time.Duration) uint64 { return uint64(min(w.now-t, w.session)) }
	// Session numbers only matter as "the owner's current session or an
	// older one"; values that nothing reads any more are left out.
	s(int64(w.lockOwner))
	if w.lockOwner >= 0 {
		t(w.lockSess == w.b[w.lockOwner].sess)
		u(past(w.lockHeard))
	}
	s(w.C)
	u(uint64(w.acked))
	u(uint64(w.nextMsg))
	u(w.maxServed)
	u(w.lastStarted)
	bg := w.budget
	for _, v := range []int{bg.crashes, bg.restarts, bg.stops, bg.storageErrs, bg.expiries, bg.cuts, bg.zkLosses, bg.msgs, bg.failbacks} {
		u(uint64(v))
	}
	for i := range w.b {
		sb := &w.b[i]
		n := &sb.n
		t(sb.alive)
		t(sb.expired)
		t(sb.zkDown)
		t(sb.pendLockLost)
		t(sb.pendConnected)
		u(sb.diskL)
		u(uint64(sb.journal))
		u(sb.dataEpoch)
		s(int64(sb.follow))
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
		u(relf(n.retryAt, w.now))
		u(relf(n.replicaAt, w.now))
		u(relf(n.holdoffUntil, w.now))
		t(n.valid)
		if n.valid {
			u(relf(n.validUntil, w.now))
		}
		u(n.local)
		s(n.coord)
		t(n.holdsLock)
		t(n.serving)
		t(n.replica)
		t(n.backupSynced)
		u(uint64(n.bump))
		if n.bump != bumpNone || n.phase == ReplRepairing {
			u(n.target)
		}
		u(uint64(n.owed))
		t(n.rebump)
		t(n.staleShown)
		if n.staleShown {
			u(n.staleL)
			s(n.staleC)
		}
		u(uint64(len(sb.queue)))
		for _, a := range sb.queue {
			u(uint64(a.Kind))
			u(a.Epoch)
			u(a.Seq)
			s(a.Old)
			s(a.New)
			s(a.Coord)
			b = append(b, a.URL...)
			t(a.Active)
			t(a.Conn == n.replConn)
		}
	}
	return key128{maphash.Bytes(rsSeeds[0], b), maphash.Bytes(rsSeeds[1], b)}, b
}

func (w *rsWorld) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "now=%v C=%d lock=", w.now, w.C)
	if w.lockOwner >= 0 {
		fmt.Fprintf(&sb, "b%d/s%d", w.lockOwner, w.lockSess)
	} else {
		sb.WriteString("free")
	}
	fmt.Fprintf(&sb, " acked=%08b budget=%+v", w.acked, w.budget)
	for i := range w.b {
		b := &w.b[i]
		fmt.Fprintf(&sb, "\n    b%d alive=%v L=%d journal=%08b link=%d serving=%v gate=%v held=%08b node: %s queue=%v",
			i, b.alive, b.diskL, b.journal, b.link, b.serving, b.gate, b.held, &b.n, b.queue)
	}
	return sb.String()
}

// replayCopy returns a copy of w whose steps record into statistics of
// their own (a trace replayed after a violation changes no statistics).
func (w *rsWorld) replayCopy() *rsWorld {
	c := w.clone()
	c.stats = &rsStats{}
	return c
}

// exploreRepl enumerates every world state reachable from w0 within
// maxDepth steps (exploreDFS: depth first; states identified by a 128-bit
// hash of their encoding, up to a shift of time) and checks the invariants
// after every step. On a violation it returns the trace to it, replayed
// from w0.
func exploreRepl(w0 *rsWorld, maxDepth, maxStates int) (*rsStats, error) {
	res, err := exploreDFS(w0, maxDepth, maxStates)
	st := w0.stats
	st.states, st.maxDepth, st.truncated, st.deepTrace = res.states, res.maxDepth, res.truncated, res.deepTrace
	return st, err
}
