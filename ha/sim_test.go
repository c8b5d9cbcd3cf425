package ha

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// The simulated world: two brokers (a primary and a backup) and the
// coordinator (a lock directory or a database lease), stepped in one
// goroutine. Each broker runs the real Node with an adapter that executes
// one queued action per step, as FileLockCoordinator does; outside events
// (ticks, monitor verifications, stops) reach a broker only when its queue
// is empty. Time moves in units of 1 ns, one unit per step. Faults: crashes
// (locks released by the OS, a database lease left to expire), restarts,
// clean stops with and without failover, a silently lost file lock (NFS),
// a storage error.
//
// Store writes: a broker has its store open from the execution of
// LoadStore until the execution of StopServing (or, stopped without
// serving, Stopped), where it closes it: a seal and pending batches, if
// its write rule allows them at that instant. While it is open, it may
// write whenever the rule allows. The rule is the node's MayWrite (the
// fence in front of the shared file store); a test can swap in a broken
// one to check that the exploration notices.

const (
	simLease     = 3
	simDBExpiry  = 4 // database lease expiration; the local lease is shorter
	simRetry     = 1
	simRenew     = 1
	noHolder     = -1
	maxSimStates = 3_000_000
)

type budget struct {
	crashes, restarts, stops, losses, storageErrs int
}

type simNode struct {
	role      Role
	n         *Node
	queue     []Action
	alive     bool
	monitorOn bool
	lost      bool // its file lock was dropped silently
	serving   bool // StartServing executed, StopServing not yet
	store     bool // LoadStore executed, the store not yet closed or abandoned
}

// writeRule says whether node n may write its open store at now; closing:
// asked at the instant the adapter closes the store (StopServing, or
// Stopped without serving).
type writeRule func(n *Node, now time.Duration, closing bool) bool

func nodeMayWrite(n *Node, now time.Duration, _ bool) bool { return n.MayWrite(now) }

// loadingPhase: the node is in its own load under a new epoch, where
// MayWrite allows writes without a verification (documented in
// Node.MayWrite; the exploration does not hold it to the lease).
func loadingPhase(n *Node) bool { return n.phase == PhaseLoading || n.phase == PhaseVerifying }

type world struct {
	coord Coordinator
	cfg   func(Role) Config
	now   time.Duration

	priHolders  map[int]bool // nodes that really hold the primary file lock
	bakHolder   int
	fbHolder    int // failback lock (file lock only)
	leaseHolder int
	leaseExpiry time.Duration
	bakLease    int
	state       State
	epoch       uint64
	maxServed   uint64
	maxLoaded   uint64 // newest epoch whose store was loaded
	mayWrite    writeRule

	nodes  []*simNode
	budget budget
}

// newWorld makes a world with a primary and backups backup brokers.
func newWorld(coord Coordinator, cfg func(Role) Config, b budget, backups int) *world {
	w := &world{coord: coord, cfg: cfg, priHolders: map[int]bool{}, bakHolder: noHolder, fbHolder: noHolder,
		leaseHolder: noHolder, bakLease: noHolder, state: lockfile.StateFirstStart, budget: b, mayWrite: nodeMayWrite}
	roles := []Role{Primary}
	for range backups {
		roles = append(roles, Backup)
	}
	for i, r := range roles {
		w.nodes = append(w.nodes, &simNode{role: r})
		w.boot(i)
	}
	return w
}

func (w *world) boot(i int) {
	sn := w.nodes[i]
	cfg := w.cfg(sn.role)
	n := &Node{cfg: cfg, peers: map[Role]Peer{}} // unvalidated: tests try bad configs too
	sn.n, sn.alive, sn.monitorOn, sn.lost, sn.queue, sn.serving, sn.store = n, true, false, false, nil, false, false
	sn.queue = append(sn.queue, n.Step(Event{Kind: EvStart, Now: w.now})...)
}

func (w *world) clone() *world {
	c := *w
	c.nodes = make([]*simNode, len(w.nodes))
	c.priHolders = map[int]bool{}
	for k, v := range w.priHolders {
		c.priHolders[k] = v
	}
	for i, sn := range w.nodes {
		s := *sn
		nn := *sn.n
		nn.peers = map[Role]Peer{}
		for k, v := range sn.n.peers {
			nn.peers[k] = v
		}
		nn.out = nil
		s.n = &nn
		s.queue = append([]Action(nil), sn.queue...)
		c.nodes[i] = &s
	}
	return &c
}

func rel(t, now time.Duration) time.Duration { return max(t-now, 0) }

// key identifies a world state up to a shift of time.
func (w *world) key() string {
	var b strings.Builder
	hs := make([]int, 0, 2)
	for k, v := range w.priHolders {
		if v {
			hs = append(hs, k)
		}
	}
	sort.Ints(hs)
	fmt.Fprintf(&b, "P%v B%d F%d L%d/%d BL%d S%c E%d M%d ML%d %v|", hs, w.bakHolder, w.fbHolder, w.leaseHolder, rel(w.leaseExpiry, w.now), w.bakLease,
		byte(w.state), w.epoch, w.maxServed, w.maxLoaded, w.budget)
	for _, sn := range w.nodes {
		n := sn.n
		fmt.Fprintf(&b, "%v %v %v %v %v|%d %d %d %d %d %v %v %v|%d %d %v %c %v %v %v %v %v|%v|",
			sn.alive, sn.monitorOn, sn.lost, sn.serving, sn.store,
			n.phase, n.pending, rel(n.retryAt, w.now), rel(n.fenceUntil, w.now), rel(n.renewAt, w.now), n.valid, rel(n.validUntil, w.now), rel(n.proofUntil, w.now),
			n.epoch, n.maxEpoch, n.activated, byte(n.initial), n.holdPri, n.holdBak, n.holdFbk, n.monitoring, n.serving, sn.queue)
	}
	return b.String()
}

// step is one transition of the world.
type step struct {
	desc  string
	apply func(w *world) error
}

func (w *world) steps() []step {
	var out []step
	out = append(out, step{"advance", func(w *world) error { w.now++; return nil }})
	for i, sn := range w.nodes {
		i, sn := i, sn
		name := fmt.Sprintf("%s%d", sn.role, i)
		if !sn.alive {
			if w.budget.restarts > 0 {
				out = append(out, step{name + " restarts", func(w *world) error {
					w.budget.restarts--
					w.boot(i)
					return nil
				}})
			}
			continue
		}
		if len(sn.queue) > 0 {
			out = append(out, step{name + " does " + sn.queue[0].String(), func(w *world) error { return w.exec(i) }})
		}
		if w.budget.crashes > 0 {
			out = append(out, step{name + " crashes", func(w *world) error {
				w.budget.crashes--
				w.crash(i)
				return nil
			}})
		}
		if w.budget.storageErrs > 0 && !sn.n.Done() {
			out = append(out, step{name + " storage error", func(w *world) error {
				w.budget.storageErrs--
				w.deliver(i, Event{Kind: EvStorageError, Err: errors.New("EIO")})
				return nil
			}})
		}
		if len(sn.queue) > 0 || sn.n.Done() {
			continue
		}
		out = append(out, step{name + " tick", func(w *world) error { w.deliver(i, Event{Kind: EvTick}); return nil }})
		if sn.monitorOn {
			out = append(out, step{name + " monitor verifies", func(w *world) error { w.verify(i); return nil }})
		}
		if w.budget.stops > 0 {
			for _, f := range []Failover{FailoverNo, FailoverYes} {
				f := f
				out = append(out, step{fmt.Sprintf("%s stop failover=%v", name, f == FailoverYes), func(w *world) error {
					w.budget.stops--
					w.deliver(i, Event{Kind: EvStop, Failover: f})
					return nil
				}})
			}
		}
	}
	if w.coord == FileLock && w.budget.losses > 0 && len(w.priHolders) > 0 {
		out = append(out, step{"primary lock silently lost", func(w *world) error {
			w.budget.losses--
			for k := range w.priHolders {
				w.nodes[k].lost = true
			}
			w.priHolders = map[int]bool{}
			return nil
		}})
	}
	return out
}

func (w *world) deliver(i int, ev Event) {
	sn := w.nodes[i]
	ev.Now = w.now
	sn.queue = append(sn.queue, sn.n.Step(ev)...)
}

func (w *world) crash(i int) {
	sn := w.nodes[i]
	sn.alive, sn.queue, sn.monitorOn, sn.serving, sn.store = false, nil, false, false, false
	delete(w.priHolders, i) // the OS drops file locks; a lease stays until it expires
	if w.bakHolder == i {
		w.bakHolder = noHolder
	}
	if w.fbHolder == i {
		w.fbHolder = noHolder
	}
}

// failbackWaiting: a primary holds the failback lock (a database lease has
// none: an F always counts).
func (w *world) failbackWaiting() bool {
	return w.coord == DBLease || w.fbHolder != noHolder
}

// verify is one check of the file-lock monitor (lockfile.Manager.Verify).
func (w *world) verify(i int) {
	sn := w.nodes[i]
	if !w.priHolders[i] {
		if len(w.priHolders) > 0 {
			sn.monitorOn = false
			w.deliver(i, Event{Kind: EvLockLost, Err: lockfile.ErrLockLost, Epoch: sn.n.epoch})
			return
		}
		// Nobody holds it: F_OFD_GETLK finds no conflict; only the epoch
		// check below can tell.
	}
	if w.epoch != sn.n.epoch {
		sn.monitorOn = false
		w.deliver(i, Event{Kind: EvLockLost, Err: &lockfile.EpochError{Ours: sn.n.epoch, Found: w.epoch}, Epoch: sn.n.epoch})
		return
	}
	w.deliver(i, Event{Kind: EvVerified, Start: w.now, Epoch: w.epoch, State: w.state, Waiting: w.failbackWaiting()})
}

func (w *world) holdsLease(i int) bool {
	return w.leaseHolder == i && w.now < w.leaseExpiry
}

// exec carries out node i's next action against the world.
func (w *world) exec(i int) error {
	sn := w.nodes[i]
	a := sn.queue[0]
	sn.queue = sn.queue[1:]
	done := Event{Kind: EvDone, Op: a.Kind}
	switch a.Kind {
	case ActWriteState:
		// A conditional write (P at a stop) is refused once another
		// epoch was taken, atomically with the bump (lockfile's
		// WriteStateAt, jdbcstore's WriteStateAt).
		if a.Epoch != 0 && a.Epoch != w.epoch {
			done.Err = errors.New("epoch superseded")
			break
		}
		w.state = a.State
	case ActReadState:
		done.State, done.Waiting = w.state, w.failbackWaiting()
	case ActTryAcquireFailback:
		if w.coord == DBLease || w.fbHolder == noHolder || w.fbHolder == i {
			if w.coord == FileLock {
				w.fbHolder = i
			}
			done.Ok = true
		}
	case ActTryAcquirePrimary:
		if w.coord == FileLock {
			others := len(w.priHolders) > 0 && !w.priHolders[i]
			if !others {
				w.priHolders[i] = true
				sn.lost = false
			}
			done.Ok = !others
		} else {
			if w.leaseHolder == noHolder || w.leaseHolder == i || w.now >= w.leaseExpiry {
				w.leaseHolder, w.leaseExpiry, done.Ok = i, w.now+simDBExpiry, true
			}
		}
	case ActTryAcquireBackup:
		if w.bakHolder == noHolder || w.bakHolder == i {
			w.bakHolder, done.Ok = i, true
		}
	case ActBumpEpoch:
		if w.coord == DBLease && !w.holdsLease(i) {
			done.Err = errors.New("lease not held: epoch update refused")
			break
		}
		w.epoch++
		w.state = lockfile.StateActive
		done.Epoch = w.epoch
	case ActLoadStore:
		// A new live loads only once the previous one is fenced. (A node
		// whose epoch is already superseded may still load: it can never
		// serve, its verification fails; the journal fences its writes.)
		for j, o := range w.nodes {
			if a.Epoch < w.epoch {
				break
			}
			if j != i && o.alive && o.serving && o.n.CanAck(w.now) {
				return fmt.Errorf("%s loads epoch %d while %s can still ack epoch %d", sn.role, a.Epoch, o.role, o.n.epoch)
			}
		}
		sn.store = true
		w.maxLoaded = max(w.maxLoaded, a.Epoch)
	case ActStartMonitor:
		sn.monitorOn = true
		return nil
	case ActStopMonitor:
		sn.monitorOn = false
		return nil
	case ActRenewLease:
		if w.leaseHolder != i {
			w.deliver(i, Event{Kind: EvLockLost, Err: errors.New("lease taken by another"), Epoch: a.Epoch})
			return nil
		}
		w.leaseExpiry = w.now + simDBExpiry
		w.deliver(i, Event{Kind: EvVerified, Start: w.now, Epoch: w.epoch, State: w.state, Waiting: w.failbackWaiting()})
		return nil
	case ActStartServing:
		// It acknowledges from now on while its node says CanAck; a late
		// StartServing (the adapter was slow or paused) acknowledges
		// nothing until a fresh verification. check records the
		// activation when it first can ack.
		sn.serving = true
		return nil
	case ActStopServing:
		sn.serving = false
		return w.closeStore(i)
	case ActStopped:
		return w.closeStore(i) // a store loaded but never served is closed after Run returns
	case ActHalt:
		sn.store = false // abandoned: a halted broker writes nothing more
		return nil
	case ActReleasePrimary:
		delete(w.priHolders, i)
		if w.leaseHolder == i {
			w.leaseHolder = noHolder
		}
		return nil
	case ActReleaseBackup:
		if w.bakHolder == i {
			w.bakHolder = noHolder
		}
		return nil
	case ActReleaseFailback:
		if w.fbHolder == i {
			w.fbHolder = noHolder
		}
		return nil
	default:
		return nil // stop-serving, announce, halt, stopped: nothing in the world
	}
	w.deliver(i, done)
	return nil
}

// closeStore is node i's adapter closing its store, if open: it writes
// (a seal, pending batches) if its rule allows that now.
func (w *world) closeStore(i int) error {
	sn := w.nodes[i]
	if !sn.store {
		return nil
	}
	sn.store = false
	if w.mayWrite(sn.n, w.now, true) && sn.n.epoch < w.maxLoaded {
		return fmt.Errorf("%s closes its store (writes) under epoch %d after epoch %d was loaded", sn.role, sn.n.epoch, w.maxLoaded)
	}
	return nil
}

// check asserts the safety invariants at the current instant and records
// the newest activated epoch.
func (w *world) check() error {
	for _, sn := range w.nodes {
		// Only one epoch's broker may write to the shared store: once a
		// newer epoch was loaded, an older live writes nothing (outside
		// its own load, see loadingPhase).
		if sn.alive && sn.store && !loadingPhase(sn.n) && w.mayWrite(sn.n, w.now, false) && sn.n.epoch < w.maxLoaded {
			return fmt.Errorf("%s may write its store under epoch %d after epoch %d was loaded", sn.role, sn.n.epoch, w.maxLoaded)
		}
	}
	ackers := 0
	for i, sn := range w.nodes {
		// A broker acknowledges only once it executed StartServing and
		// while its node says CanAck.
		if !sn.alive || !sn.serving || !sn.n.CanAck(w.now) {
			continue
		}
		ackers++
		if sn.n.epoch < w.maxServed {
			return fmt.Errorf("%s can ack under epoch %d although epoch %d was activated", sn.role, sn.n.epoch, w.maxServed)
		}
		w.maxServed = sn.n.epoch // activation (or still the same one)
		switch w.coord {
		case FileLock:
			if !w.priHolders[i] && !sn.lost {
				return fmt.Errorf("%s can ack without holding the lock", sn.role)
			}
		case DBLease:
			if !w.holdsLease(i) {
				return fmt.Errorf("%s can ack without a valid lease (holder %d, expiry %v, now %v)", sn.role, w.leaseHolder, w.leaseExpiry, w.now)
			}
		}
	}
	if ackers > 1 {
		return errors.New("two brokers can ack at once")
	}
	return nil
}

type exploreStats struct {
	states       int
	backupServed bool // the backup activated at some point
	failedBack   bool // the primary served again after the backup did
	halted       bool
}

// explore enumerates every reachable world state (breadth first, states
// identified up to a time shift) and checks the invariants in each. On a
// violation it returns the shortest trace that leads to it.
func explore(w0 *world) (exploreStats, error) {
	type entry struct {
		parent string
		desc   string
	}
	seen := map[string]entry{w0.key(): {}}
	queue := []*world{w0}
	var st exploreStats
	trace := func(k string) string {
		var lines []string
		for k != "" {
			e := seen[k]
			if e.desc != "" {
				lines = append(lines, e.desc)
			}
			k = e.parent
		}
		for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
			lines[i], lines[j] = lines[j], lines[i]
		}
		return strings.Join(lines, "\n  ")
	}
	for len(queue) > 0 {
		w := queue[0]
		queue = queue[1:]
		k := w.key()
		for _, s := range w.steps() {
			c := w.clone()
			err := s.apply(c)
			if err == nil {
				err = c.check()
			}
			if err != nil {
				return st, fmt.Errorf("invariant violated: %v\ntrace (%s):\n  %s\n  %s", err, w0.coord, trace(k), s.desc)
			}
			ck := c.key()
			if _, ok := seen[ck]; ok {
				continue
			}
			seen[ck] = entry{k, s.desc}
			if len(seen) > maxSimStates {
				return st, fmt.Errorf("state space larger than %d: lower the fault budget", maxSimStates)
			}
			for _, sn := range c.nodes {
				if sn.role == Backup && sn.n.serving {
					st.backupServed = true
				}
				if sn.role == Primary && sn.n.serving && sn.n.epoch > 1 {
					st.failedBack = true
				}
				if sn.n.phase == PhaseHalted {
					st.halted = true
				}
			}
			queue = append(queue, c)
		}
	}
	st.states = len(seen)
	return st, nil
}
