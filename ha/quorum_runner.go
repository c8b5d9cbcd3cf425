package ha

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// QuorumTransport carries a QuorumNode's rounds to the other brokers of
// the cluster (the broker's network adapter, over the cluster user's
// connections). Calls may come from several goroutines at once.
type QuorumTransport interface {
	// Targets returns the other brokers' URLs: the electorate is these
	// plus this broker.
	Targets() []string
	// Ask sends req to the broker at url and returns its voter's answer
	// and what it says of itself; an error is no answer.
	Ask(ctx context.Context, url string, req QRequest) (QAnswer, QPeer, error)
	// Describe names the transport for the log.
	Describe() string
}

// QuorumRunner runs a QuorumNode (this broker's activation) and a
// QuorumVoter (its vote for every pair of the cluster) against the local
// store, the transport and the broker's hooks (the same ReplHooks a
// ReplRunner takes). Its Run goroutine feeds events into the node and
// carries out the node's actions one at a time; a round's questions to the
// other brokers run on goroutines Run owns and report back as events. The
// other methods may be called from any goroutine.
type QuorumRunner struct {
	tr      QuorumTransport
	local   LocalStore
	lockDir string
	hooks   ReplHooks
	log     *slog.Logger
	origin  time.Time
	tick    time.Duration
	opLimit time.Duration
	self    func() QPeer

	mu   sync.Mutex // guards node
	node *QuorumNode

	vmu   sync.Mutex // guards voter and state
	voter *QuorumVoter
	state QuorumState

	replConn atomic.Uint64

	events  chan QEvent
	runDone chan struct{}
	asks    sync.WaitGroup
}

// NewQuorumRunner returns a runner for cfg; the voter's durable state
// lives under lockDir (QuorumStatePath). self says what this broker tells
// the others of itself (its URL, node ID, group, state).
func NewQuorumRunner(tr QuorumTransport, local LocalStore, lockDir string, cfg QuorumConfig, self func() QPeer, hooks ReplHooks) (*QuorumRunner, error) {
	if hooks.LoadStore == nil || hooks.StartServing == nil || hooks.StopServing == nil || hooks.StartReplica == nil ||
		hooks.StopReplica == nil || hooks.RequestFailback == nil || hooks.ReleaseHeld == nil || hooks.Handover == nil {
		return nil, errors.New("ha: every replication hook except Announce is required")
	}
	var b [8]byte
	owner := uint64(0)
	for owner == 0 {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		owner = binary.BigEndian.Uint64(b[:])
	}
	n, err := NewQuorumNode(cfg, owner)
	if err != nil {
		return nil, err
	}
	st, err := LoadQuorumState(lockDir)
	if err != nil {
		return nil, err
	}
	log := hooks.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("coordinator", tr.Describe(), "role", cfg.Role.String())
	r := &QuorumRunner{tr: tr, local: local, lockDir: lockDir, hooks: hooks, log: log, origin: time.Now(), self: self,
		tick: max(min(cfg.RetryInterval, cfg.RenewInterval)/2, time.Millisecond), opLimit: max(cfg.Lease, cfg.RetryInterval, 30*time.Second),
		node: n, state: st, events: make(chan QEvent, 256), runDone: make(chan struct{})}
	// The voter starts now: for one lease it lets nobody activate (it may
	// have granted a lease before a restart and forgotten it).
	r.voter = NewQuorumVoter(st.Voter, cfg.Lease, r.since(time.Now()), st.Register)
	r.voter.SetMembers(st.View, st.Pending)
	if !cfg.StayOnStop {
		r.voter.SetElectorate(len(tr.Targets()) + 1)
	}
	return r, nil
}

// saveLocked writes the voter's state (vmu held).
func (r *QuorumRunner) saveLocked() error {
	r.state.Register = r.voter.Register()
	r.state.View, r.state.Pending, _ = r.voter.Members()
	return SaveQuorumState(r.lockDir, r.state)
}

func (r *QuorumRunner) since(t time.Time) time.Duration { return t.Sub(r.origin) }

// Vote answers a request from another broker (or this one): the register
// is durable before the answer leaves. A failed write is a storage error:
// the answer is "no answer" and the broker halts.
func (r *QuorumRunner) Vote(req QRequest) (QAnswer, QPeer) {
	now := r.since(time.Now())
	r.vmu.Lock()
	a, changed := r.voter.Handle(req, now)
	if changed {
		if err := r.saveLocked(); err != nil {
			r.vmu.Unlock()
			r.StorageError(err)
			return QAnswer{Verdict: QNoAnswer}, QPeer{}
		}
	}
	r.vmu.Unlock()
	p := r.self()
	p.Voter = r.voter.ID()
	return a, p
}

// CanAck reports whether the broker may acknowledge now.
func (r *QuorumRunner) CanAck() bool {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node.CanAck(r.since(now))
}

// Epoch returns L: the epoch while active.
func (r *QuorumRunner) Epoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node.Local()
}

// Status returns the node's status (Coordinated is 0: the voters keep
// the pair's newest sequence).
func (r *QuorumRunner) Status() ReplStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.node
	st := ReplStatus{Role: n.cfg.Role.String(), State: n.phase.StatusState(), Phase: n.phase.String(), Epoch: n.local}
	if !n.nodeID.IsZero() {
		st.NodeID = n.nodeID.String()
	}
	return st
}

func (r *QuorumRunner) send(ev QEvent) {
	select {
	case r.events <- ev:
	case <-r.runDone:
	}
}

// Stop asks for a clean stop; Run returns when it is done.
func (r *QuorumRunner) Stop() { r.send(QEvent{Kind: QEvStop}) }

// StorageError reports an I/O error of the store: the node halts.
func (r *QuorumRunner) StorageError(err error) { r.send(QEvent{Kind: QEvStorageError, Err: err}) }

// ReplicaSynced: see ReplRunner.ReplicaSynced.
func (r *QuorumRunner) ReplicaSynced(seq uint64, nodeID lockfile.NodeID) {
	r.send(QEvent{Kind: QEvReplicaSynced, Local: seq, NodeID: nodeID, Conn: r.replConn.Load()})
}

// ReplicaLost: see ReplRunner.ReplicaLost.
func (r *QuorumRunner) ReplicaLost(handover bool) {
	r.send(QEvent{Kind: QEvReplicaLost, Handover: handover, Conn: r.replConn.Load()})
}

// BackupSynced: see ReplRunner.BackupSynced.
func (r *QuorumRunner) BackupSynced() { r.send(QEvent{Kind: QEvBackupSynced}) }

// BackupLost: see ReplRunner.BackupLost.
func (r *QuorumRunner) BackupLost() { r.send(QEvent{Kind: QEvBackupLost}) }

// FailbackRequested: see ReplRunner.FailbackRequested.
func (r *QuorumRunner) FailbackRequested() { r.send(QEvent{Kind: QEvFailbackRequested}) }

func (r *QuorumRunner) step(ev QEvent) []QAction {
	if ev.Now == 0 {
		ev.Now = r.since(time.Now())
	}
	r.mu.Lock()
	before := r.node.phase
	_, failsBefore := r.node.FailNote()
	out := r.node.Step(ev)
	after := r.node.phase
	note, fails := r.node.FailNote()
	st := r.node.String()
	r.mu.Unlock()
	if fails > failsBefore {
		lvl := slog.LevelInfo
		if fails >= r.node.cfg.VoteRetries {
			// Artemis gives up after vote-retries; Tandem keeps voting
			// and says so loudly.
			lvl = slog.LevelWarn
		}
		r.log.Log(context.Background(), lvl, "quorum vote lost; voting again", "why", note, "failed_in_a_row", fails, "vote_retries", r.node.cfg.VoteRetries)
	}
	if before != after {
		lvl := slog.LevelDebug
		if before.StatusState() != after.StatusState() {
			lvl = slog.LevelInfo
		}
		r.log.Log(context.Background(), lvl, "quorum activation", "phase", after.String(), "event", ev.Kind.String(), "node", st)
	}
	return out
}

// Run starts the node and runs it until it stops (nil), halts
// (*HaltError) or ctx ends (it then stops cleanly and returns ctx.Err()).
func (r *QuorumRunner) Run(ctx context.Context) error {
	actx, acancel := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		close(r.runDone) // a round's goroutine blocked sending gives up
		acancel()
		r.asks.Wait()
	}()
	r.asks.Add(1)
	go func() {
		defer r.asks.Done()
		r.rejoin(actx)
	}()
	queue := r.step(QEvent{Kind: QEvStart})
	ticker := time.NewTicker(r.tick)
	defer ticker.Stop()
	var ctxErr error
	done := ctx.Done()
	opCtx := ctx
	for {
		for len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			r.log.Debug("quorum action", "action", a.String())
			switch a.Kind {
			case QActHalt:
				r.log.Error("halting", "err", a.Err)
				return &HaltError{Err: a.Err}
			case QActStopped:
				r.log.Info("stopped")
				return ctxErr
			case QActRound:
				queue = append(queue, r.round(actx, a)...)
				continue
			}
			if ev, ok := r.exec(opCtx, a); ok {
				queue = append(queue, r.step(ev)...)
			}
		}
		select {
		case <-done:
			ctxErr, done, opCtx = ctx.Err(), nil, context.WithoutCancel(ctx)
			queue = r.step(QEvent{Kind: QEvStop})
		case ev := <-r.events:
			queue = r.step(ev)
		case <-ticker.C:
			queue = r.step(QEvent{Kind: QEvTick})
		}
	}
}

// round asks this broker's voter at once and the others on goroutines.
func (r *QuorumRunner) round(ctx context.Context, a QAction) []QAction {
	targets := r.tr.Targets()
	q := len(targets) + 1
	ans, peer := r.Vote(a.Request)
	out := r.step(QEvent{Kind: QEvAnswer, Round: a.Round, Target: 0, Answer: ans, Peer: peer, Quorum: q})
	out = append(out, r.step(QEvent{Kind: QEvRoundSent, Round: a.Round, Targets: len(targets)})...)
	wait := r.node.Config().VoteWait
	for k, url := range targets {
		r.asks.Add(1)
		go func() {
			defer r.asks.Done()
			actx, cancel := context.WithTimeout(ctx, wait)
			ans, peer, err := r.tr.Ask(actx, url, a.Request)
			cancel()
			if err != nil {
				r.log.Debug("quorum vote: no answer", "peer", url, "request", a.Request.Kind.String(), "err", err)
				ans, peer = QAnswer{Verdict: QNoAnswer}, QPeer{}
			}
			r.send(QEvent{Kind: QEvAnswer, Round: a.Round, Target: k + 1, Answer: ans, Peer: peer, Quorum: q})
		}()
	}
	return out
}

// exec carries out one action; for an operation it returns the result.
func (r *QuorumRunner) exec(ctx context.Context, a QAction) (QEvent, bool) {
	ev := QEvent{Kind: QEvDone, Op: a.Kind}
	switch a.Kind {
	case QActReadLocal:
		ev.NodeID, ev.Local, ev.Err = r.local.ReadLocal()
	case QActWriteLocal:
		ev.Err = r.local.WriteLocal(a.NodeID, a.Seq)
		if ev.Err == nil {
			r.log.Info("local activation sequence written", "L", a.Seq)
		}
	case QActLoadStore:
		ev.Err = r.hooks.LoadStore(ctx, a.Epoch)
	case QActHandover:
		r.log.Info("handing over to the primary (failback)")
		ev.Err = r.hooks.Handover(ctx)
	default:
		r.signal(ctx, a)
		return ev, false
	}
	return ev, true
}

// signal carries out an action that answers nothing.
func (r *QuorumRunner) signal(ctx context.Context, a QAction) {
	switch a.Kind {
	case QActStartServing:
		r.log.Info("serving", "epoch", a.Epoch)
		r.hooks.StartServing(a.Epoch)
	case QActStopServing:
		r.log.Info("stopped serving")
		r.hooks.StopServing()
	case QActStartReplica:
		r.log.Info("replicating from the live", "url", a.URL)
		r.replConn.Store(a.Conn)
		r.hooks.StartReplica(a.URL)
	case QActStopReplica:
		r.log.Info("stopped replicating")
		r.hooks.StopReplica()
		r.replConn.Store(0)
	case QActRequestFailback:
		r.log.Info("synced with the live: asking it to fail back to this primary")
		r.hooks.RequestFailback()
	case QActReleaseHeld:
		r.hooks.ReleaseHeld()
	case QActAnnounce:
		if r.hooks.Announce != nil {
			r.hooks.Announce(ReplAction{Kind: ReplActAnnounce, Epoch: a.Epoch, Active: a.Active})
		}
	case QActStale:
		if a.Seq == 0 {
			r.log.Warn("no valid local data (never synced, or a sync did not complete): not activating; waiting for the live of this pair to replicate from (see docs/ha-replication-quorum.md)", "L", a.Seq)
			return
		}
		r.log.Warn(fmt.Sprintf("local activation sequence %d is behind %d, which the cluster's voters saw served: not activating; waiting for the broker with the newest data (see docs/ha-replication-quorum.md)", a.Seq, a.Newest),
			"L", a.Seq, "newest", a.Newest)
	case QActDepart:
		// Best effort: give the lease back so the backup need not wait
		// for it to run out; then leave the electorate (below).
		if a.Request.Owner == 0 {
			break
		}
		rel := a.Request
		rel.Kind = QRelease
		r.Vote(rel)
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		var wg sync.WaitGroup
		for _, url := range r.tr.Targets() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, _ = r.tr.Ask(dctx, url, rel)
			}()
		}
		wg.Wait()
		cancel()
	}
	if a.Kind == QActDepart {
		r.depart(ctx)
	}
}
