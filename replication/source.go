package replication

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// SourceOptions configure the live side.
type SourceOptions struct {
	// NodeID is the pair's node ID, which the replica adopts.
	NodeID string
	// Group is the live's group-name; a replica of another group is
	// refused (either side empty: any).
	Group string
	// Seq returns the live's current activation sequence (package ha).
	Seq func() uint64
	// SyncTimeout bounds the last catch-up of the initial sync, during
	// which answers wait for the replica (initial-replication-sync-timeout,
	// default 30 s).
	SyncTimeout time.Duration
	// CallTimeout: a synced replica that leaves an answer waiting longer
	// is dropped (the cluster connection's call-timeout, default 30 s).
	CallTimeout time.Duration
	// PingInterval (default 2 s, R25) and TTL (connection-ttl or its
	// override, default 60 s): a replica silent for the TTL is dropped.
	PingInterval time.Duration
	TTL          time.Duration
	// CatchUpBytes: the replica is close enough to gate answers when its
	// acknowledged position is in the segment being written and at most
	// this far behind (default 1 MiB).
	CatchUpBytes int64
	Logger       *slog.Logger

	// BackupSynced is called once a replica may hold a complete copy,
	// before it is told so (package ha: from now on losing it needs a new
	// activation sequence).
	BackupSynced func()
	// BackupLost is called when a replica that BackupSynced announced is
	// gone. Answers stay held until ReleaseHeld.
	BackupLost func()
	// FailbackRequested is called when a synced replica asks to take over.
	FailbackRequested func()
}

func (o *SourceOptions) defaults() {
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = 30 * time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 2 * time.Second
	}
	if o.TTL <= 0 {
		o.TTL = 60 * time.Second
	}
	if o.CatchUpBytes <= 0 {
		o.CatchUpBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Seq == nil {
		o.Seq = func() uint64 { return 0 }
	}
	for _, f := range []*func(){&o.BackupSynced, &o.BackupLost, &o.FailbackRequested} {
		if *f == nil {
			*f = func() {}
		}
	}
}

// State is a replication state as /status shows it.
type State string

// States.
const (
	StateNone    State = "none"
	StateSyncing State = "syncing"
	StateSynced  State = "synced"
)

// Status is the live's view of its replica.
type Status struct {
	State State
	Peer  string // the replica's URL ("" when none)
	// LagRecords counts appends whose answers wait for the replica;
	// LagBytes is how far its acknowledged position is behind the
	// durable end (both journals, approximate across segments).
	LagRecords int
	LagBytes   int64
	Since      time.Time // when State last changed
	Dropped    int64     // replicas dropped since start
}

// Source is the live side: it serves one replica at a time.
type Source struct {
	opts     SourceOptions
	log      *slog.Logger
	journals []*journal.FileJournal

	mu        sync.Mutex
	link      *link
	heldGates []*journal.Gate // of a dropped synced replica, until ReleaseHeld
	closed    bool
	// stopped: FailHeld was called (the broker stopped serving): a
	// synced replica lost from now on fails what waited for it instead
	// of holding it for a ReleaseHeld that will never come.
	stopped bool
	since   time.Time
	dropped atomic.Int64
}

// NewSource returns the live side over the broker's journals, in the
// order of their wire journal IDs (bindings, messages, ...).
func NewSource(journals []*journal.FileJournal, opts SourceOptions) *Source {
	opts.defaults()
	return &Source{opts: opts, log: opts.Logger.With("replication", "live"),
		journals: journals, since: time.Now()}
}

// link is one replica connection.
type link struct {
	s       *Source
	c       *fconn
	peer    string
	stream  uint64
	ctx     context.Context
	cancel  context.CancelFunc
	subs    []*journal.Subscription
	started time.Time

	mu         sync.Mutex
	acked      []journal.Position
	gates      []*journal.Gate
	target     []journal.Position // durable ends when the gates were attached
	gatedAt    time.Time
	synced     bool // BackupSynced was called: losing it needs a bump
	handedOver bool
	lastHeard  time.Time
	progress   chan struct{} // signalled on every ack

	dropOnce sync.Once
	done     chan struct{}
}

// Serve runs a replication connection (server.ReplicaHandler's Serve):
// it answers Hello, takes the registration and streams until the link
// ends.
func (s *Source) Serve(nc net.Conn, r *bufio.Reader, hello *wire.Hello, corr uint64) {
	c := newFconn(nc, r, s.opts.CallTimeout)
	welcome := &wire.Welcome{Version: wire.Version, NodeID: s.opts.NodeID, ConnectionTTL: uint32(s.opts.TTL / time.Millisecond)}
	if err := c.send(corr, welcome); err != nil {
		return
	}
	_, f, err := c.expect(wire.TypeReplicaRegister, 10*time.Second)
	if err != nil {
		s.log.Warn("replica registration failed", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	reg := *f.(*wire.ReplicaRegister)
	refuse := func(code wire.Code, msg string) {
		s.log.Warn("replica refused", "replica", reg.URL, "reason", msg)
		c.send(0, &wire.Error{Code: code, Message: msg})
	}
	if s.opts.Group != "" && reg.Group != "" && reg.Group != s.opts.Group {
		refuse(wire.CodeForbidden, fmt.Sprintf("group %q, this live serves group %q", reg.Group, s.opts.Group))
		return
	}
	l, err := s.attach(c, reg.URL)
	if err != nil {
		refuse(wire.CodeUnavailable, err.Error())
		return
	}
	seq := s.opts.Seq()
	if err := c.send(0, &wire.ReplicaStart{NodeID: s.opts.NodeID, Seq: seq, StreamID: l.stream, Journals: uint8(len(s.journals))}); err != nil {
		l.drop(err)
		<-l.done
		return
	}
	s.log.Info("replica attached: initial sync", "replica", reg.URL, "stream", l.stream, "seq", seq)
	var wg sync.WaitGroup
	for i := range l.subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.send(i)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.monitor()
	}()
	l.read()
	wg.Wait()
	<-l.done
}

// attach registers a new link with subscriptions to both journals.
func (s *Source) attach(c *fconn, peer string) (*link, error) {
	s.mu.Lock()
	if old := s.link; old != nil && peer != "" && old.peer == peer {
		// The same replica registers again: its previous connection is
		// dead even if this side has not noticed yet (a silent partition
		// lasts until the TTL). Drop it now rather than hold answers for
		// it; the new registration waits for that drop to settle.
		s.mu.Unlock()
		old.drop(errors.New("the replica reconnected"))
		<-old.done
		// Losing a synced replica holds answers until package ha has moved
		// the activation sequence on (ReleaseHeld): wait for that, briefly,
		// rather than refuse the replica that is here now.
		for range 100 {
			s.mu.Lock()
			held := s.heldGates != nil
			s.mu.Unlock()
			if !held {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, errors.New("the live is stopping")
	case s.link != nil:
		return nil, fmt.Errorf("another replica (%s) is attached", s.link.peer)
	case s.heldGates != nil:
		return nil, errors.New("the previous replica is being dropped; retry")
	}
	subs := make([]*journal.Subscription, len(s.journals))
	for i, j := range s.journals {
		var sub *journal.Subscription
		var err error
		for try := 0; ; try++ {
			sub, err = j.SubscribeReplica(journal.Position{})
			if !errors.Is(err, journal.ErrCompactBusy) || try == 100 {
				break
			}
			s.mu.Unlock()
			time.Sleep(100 * time.Millisecond) // a compaction is finishing; it is not started again while we are attached
			s.mu.Lock()
		}
		if err != nil {
			for _, p := range subs[:i] {
				p.Close()
			}
			return nil, fmt.Errorf("subscribe to the journal: %v", err)
		}
		subs[i] = sub
	}
	var b [8]byte
	rand.Read(b[:])
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now()
	n := len(s.journals)
	l := &link{s: s, c: c, peer: peer, stream: binary.BigEndian.Uint64(b[:]), ctx: ctx, cancel: cancel, subs: subs,
		acked: make([]journal.Position, n), gates: make([]*journal.Gate, n), target: make([]journal.Position, n),
		started: now, lastHeard: now, progress: make(chan struct{}, 1), done: make(chan struct{})}
	for i, sub := range subs {
		l.acked[i] = sub.Position() // everything before the oldest segment kept: nothing to copy
	}
	s.link = l
	s.since = now
	return l, nil
}

// send streams journal i until the link ends: from the segment files
// (a Subscription: durable bytes, read back) until it is close to the
// live end, then from a tap (the flusher's ranges as it submits them, so
// the replica syncs its copy while this broker syncs its own). A replica
// too slow for the tap goes back to the files from where it got to.
func (l *link) send(i int) {
	j, sub := l.s.journals[i], l.subs[i]
	var tap *journal.Tap
	var tapStart journal.Position
	sent := sub.Position() // everything before it was sent
	defer func() {
		if tap != nil {
			tap.Close()
		}
	}()
	for {
		var b journal.StreamBatch
		var err error
		if tap != nil && sub == nil {
			b, err = tap.Next(l.ctx)
			if errors.Is(err, journal.ErrTapOverflow) {
				tap.Close()
				tap = nil
				l.s.log.Warn("the replica fell behind the live end: reading from the segments again", "replica", l.peer, "journal", i)
				if sub, err = j.SubscribeReplica(sent); err != nil {
					l.drop(fmt.Errorf("journal stream: resume at %v: %w", sent, err))
					return
				}
				l.setSub(i, sub)
				continue
			}
		} else {
			b, err = sub.Next(l.ctx)
		}
		if err != nil {
			l.drop(fmt.Errorf("journal stream: %w", err))
			return
		}
		// Skip what was sent already (the subscription may have passed the
		// tap's start before it was closed).
		end := b.End()
		if b.Sealed {
			end = journal.Position{Seq: b.Pos.Seq + 1}
		}
		if !sent.Less(end) {
			continue
		}
		if b.Pos.Less(sent) { // the rest of a range partly sent (same segment)
			cut := int(sent.Offset - b.Pos.Offset)
			b.Data, b.Pos = b.Data[cut:], sent
		}
		if err := l.sendBatch(i, j, b); err != nil {
			l.drop(err)
			return
		}
		sent = end
		switch {
		case tap == nil && sub != nil:
			// Close to the live end: attach a tap.
			end := j.DurableEnd()
			if sent.Seq == end.Seq && end.Offset-sent.Offset <= l.s.opts.CatchUpBytes || !sent.Less(end) {
				if tap = j.AttachTap(tapLimit); tap != nil {
					tapStart = tap.Position()
				}
			}
		case tap != nil && sub != nil && !sent.Less(tapStart):
			// The subscription reached the tap's start: the tap brings
			// the rest.
			l.setSub(i, nil)
			sub.Close()
			sub = nil
		}
	}
}

// tapLimit bounds what a tap queues for a replica that does not keep up.
const tapLimit = 16 << 20

// setSub records journal i's current subscription (closed by drop).
func (l *link) setSub(i int, sub *journal.Subscription) {
	l.mu.Lock()
	l.subs[i] = sub
	l.mu.Unlock()
}

// sendBatch sends one range in frames of at most wire.MaxReplicaData.
func (l *link) sendBatch(i int, j *journal.FileJournal, b journal.StreamBatch) error {
	data := b.Data
	off := b.Pos.Offset
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), wire.MaxReplicaData)
		f := &wire.ReplicaData{Seq: l.s.opts.Seq(), Journal: uint8(i), Segment: b.Pos.Seq, Offset: uint64(off),
			Epoch: b.Epoch, SegmentSize: uint64(b.SegmentSize), Sealed: b.Sealed && n == len(data),
			Oldest: j.Oldest(), Data: data[:n]}
		if err := l.c.send(0, f); err != nil {
			return err
		}
		data, off = data[n:], off+int64(n)
	}
	return nil
}

// read handles the replica's frames until the link ends.
func (l *link) read() {
	for {
		h, f, err := l.c.read(l.s.opts.TTL)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("nothing received from the replica for the connection TTL (%v)", l.s.opts.TTL)
			}
			l.drop(err)
			return
		}
		l.mu.Lock()
		l.lastHeard = time.Now()
		l.mu.Unlock()
		switch f := f.(type) {
		case *wire.ReplicaAck:
			if int(f.Journal) >= len(l.s.journals) {
				l.drop(fmt.Errorf("the replica acknowledged journal %d of %d", f.Journal, len(l.s.journals)))
				return
			}
			p := journal.Position{Seq: f.Segment, Offset: int64(f.Offset)}
			l.mu.Lock()
			if l.acked[f.Journal].Less(p) {
				l.acked[f.Journal] = p
			}
			g := l.gates[f.Journal]
			l.mu.Unlock()
			if g != nil {
				g.Ack(p)
			}
			select {
			case l.progress <- struct{}{}:
			default:
			}
		case *wire.Ping:
			if err := l.c.send(h.Corr, &wire.Pong{}); err != nil {
				l.drop(err)
				return
			}
		case *wire.Pong:
		case *wire.ReplicaFailback:
			l.mu.Lock()
			synced := l.synced
			l.mu.Unlock()
			if synced {
				l.s.log.Info("the replica asks to take over (failback)", "replica", l.peer)
				go l.s.opts.FailbackRequested()
			} else {
				l.s.log.Warn("failback request from a replica that is not synced: ignored", "replica", l.peer)
			}
		default:
			l.drop(fmt.Errorf("unexpected %v frame from the replica", h.Type))
			return
		}
	}
}

// monitor pings, ends the initial sync, and drops a replica that is slow,
// silent, or that does not finish its sync in time.
func (l *link) monitor() {
	o := l.s.opts
	tick := time.NewTicker(min(o.PingInterval, 100*time.Millisecond))
	defer tick.Stop()
	lastPing := time.Now()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-tick.C:
		case <-l.progress:
		}
		now := time.Now()
		if now.Sub(lastPing) >= o.PingInterval {
			lastPing = now
			if err := l.c.send(0, &wire.Ping{}); err != nil {
				l.drop(err)
				return
			}
		}
		if err := l.check(now); err != nil {
			l.drop(err)
			return
		}
	}
}

// check advances the sync and applies the limits.
func (l *link) check(now time.Time) error {
	o := l.s.opts
	l.mu.Lock()
	if now.Sub(l.lastHeard) > o.TTL {
		l.mu.Unlock()
		return fmt.Errorf("nothing received from the replica for the connection TTL (%v)", o.TTL)
	}
	gated, synced := l.gates[0] != nil, l.synced
	acked := slices.Clone(l.acked)
	l.mu.Unlock()
	switch {
	case !gated:
		for i, j := range l.s.journals {
			end := j.DurableEnd()
			near := acked[i].Seq == end.Seq && end.Offset-acked[i].Offset <= o.CatchUpBytes
			if acked[i].Less(end) && !near {
				return nil
			}
		}
		// Close enough: from now on answers wait for the replica.
		l.mu.Lock()
		for i, j := range l.s.journals {
			l.gates[i] = j.AttachGate(l.acked[i])
			l.target[i] = j.DurableEnd() // after attaching: every answered batch ends before it
		}
		l.gatedAt = now
		l.mu.Unlock()
		l.s.log.Info("replica caught up: answers now wait for it until the sync completes", "replica", l.peer)
	case !synced:
		for i := range acked {
			if acked[i].Less(l.target[i]) {
				if now.Sub(l.gatedAt) > o.SyncTimeout {
					return fmt.Errorf("the initial sync did not finish within initial-replication-sync-timeout (%v): abandoned, the replica will retry", o.SyncTimeout)
				}
				return nil
			}
		}
		// Order: package ha learns that this replica may hold a complete
		// copy, then a drop counts as losing a synced replica, then the
		// replica is told. A drop before the send releases the gates
		// (the replica cannot activate); a drop after it needs the bump.
		o.BackupSynced()
		l.mu.Lock()
		l.synced = true
		l.mu.Unlock()
		seq := o.Seq()
		if err := l.c.send(0, &wire.ReplicaSynced{Seq: seq, NodeID: o.NodeID}); err != nil {
			return err
		}
		l.s.mu.Lock()
		l.s.since = now
		l.s.mu.Unlock()
		l.s.log.Info("replica synced: durable answers now wait for it", "replica", l.peer, "seq", seq,
			"sync_time", now.Sub(l.started).Round(time.Millisecond))
	default:
		for _, g := range l.gates {
			if n, since := g.Held(); n > 0 && now.Sub(since) > o.CallTimeout {
				return fmt.Errorf("the replica left an answer waiting for more than %v (call-timeout)", o.CallTimeout)
			}
		}
	}
	return nil
}

// drop ends the link once: closes the connection and subscriptions and
// settles the gates (see the package documentation).
func (l *link) drop(reason error) {
	l.dropOnce.Do(func() {
		l.cancel()
		l.c.close()
		l.mu.Lock()
		subs := slices.Clone(l.subs)
		l.mu.Unlock()
		for _, sub := range subs {
			if sub != nil {
				sub.Close()
			}
		}
		s := l.s
		l.mu.Lock()
		synced, handedOver, gates := l.synced, l.handedOver, slices.Clone(l.gates)
		l.mu.Unlock()
		var attached []*journal.Gate
		for _, g := range gates {
			if g != nil {
				attached = append(attached, g)
			}
		}
		s.mu.Lock()
		closing, stopped := s.closed, s.stopped
		if s.link == l {
			s.link = nil
			s.since = time.Now()
		}
		lost := synced && !handedOver && !closing
		if lost && !stopped && len(attached) > 0 {
			s.heldGates = attached
		}
		s.mu.Unlock()
		s.dropped.Add(1)
		switch {
		case handedOver:
			s.log.Info("handed over to the replica", "replica", l.peer)
			for _, g := range attached {
				g.Release() // everything was acknowledged by the replica
			}
		case closing:
			for _, g := range attached {
				g.Fail(nil) // not confirmed by the replica: outcome unknown
			}
		case lost && stopped:
			s.log.Warn("replica lost after this broker stopped serving: what waited for it fails (outcome unknown)",
				"replica", l.peer, "reason", reason)
			for _, g := range attached {
				g.Fail(nil)
			}
		case lost:
			s.log.Error("replica lost: answers held until the activation sequence moves on; then running unreplicated until a replica re-syncs",
				"replica", l.peer, "reason", reason)
			s.opts.BackupLost()
		default:
			s.log.Warn("replica dropped before its sync completed; running unreplicated", "replica", l.peer, "reason", reason)
			for _, g := range attached {
				g.Release() // it never got ReplicaSynced: it can never activate with its copy
			}
		}
		close(l.done)
	})
}

// ReleaseHeld completes the answers held for a lost replica: package ha
// calls it once the activation sequence moved on.
func (s *Source) ReleaseHeld() {
	s.mu.Lock()
	gates := s.heldGates
	s.heldGates = nil
	s.mu.Unlock()
	for _, g := range gates {
		g.Release()
	}
}

// FailHeld completes the answers held for a lost replica with an error
// (outcome unknown): the broker stopped serving without the activation
// sequence moving on, so they must never be confirmed. From then on a
// synced replica that is lost fails what waited for it at once: nothing
// will bump the sequence or call ReleaseHeld for this Source any more,
// and a held answer would block whoever waits for it (a client
// connection being closed) for good.
func (s *Source) FailHeld() {
	s.mu.Lock()
	gates := s.heldGates
	s.heldGates = nil
	s.stopped = true
	s.mu.Unlock()
	for _, g := range gates {
		g.Fail(nil)
	}
}

// Handover ends a failback: with the broker no longer serving, it waits
// until the replica acknowledged every durable byte of both journals,
// tells it to take over, and ends the link without a new activation
// sequence.
func (s *Source) Handover(ctx context.Context) error {
	s.mu.Lock()
	l := s.link
	s.mu.Unlock()
	if l == nil {
		return errors.New("replication: handover: no replica attached")
	}
	l.mu.Lock()
	synced := l.synced
	l.mu.Unlock()
	if !synced {
		return errors.New("replication: handover: the replica is not synced")
	}
	for {
		all := true
		l.mu.Lock()
		for i, j := range s.journals {
			if l.acked[i].Less(j.DurableEnd()) {
				all = false
			}
		}
		l.mu.Unlock()
		if all {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replication: handover: the replica did not confirm everything: %w", ctx.Err())
		case <-l.done:
			return errors.New("replication: handover: the replica went away")
		case <-l.progress:
		case <-time.After(10 * time.Millisecond):
		}
	}
	l.mu.Lock()
	l.handedOver = true
	l.mu.Unlock()
	seq := s.opts.Seq()
	if err := l.c.send(0, &wire.ReplicaHandover{Seq: seq}); err != nil {
		l.mu.Lock()
		l.handedOver = false
		l.mu.Unlock()
		l.drop(err)
		return fmt.Errorf("replication: handover: %w", err)
	}
	// The replica closes once it has the frame.
	select {
	case <-l.done:
	case <-time.After(2 * time.Second):
		l.drop(errors.New("handed over"))
	case <-ctx.Done():
		l.drop(errors.New("handed over"))
	}
	return nil
}

// Close drops the replica without confirming what it did not (a clean
// stop: answers still held complete with journal.ErrNotReplicated) and
// refuses new ones.
func (s *Source) Close() {
	s.mu.Lock()
	s.closed = true
	l := s.link
	held := s.heldGates
	s.heldGates = nil
	s.mu.Unlock()
	if l != nil {
		l.drop(errors.New("the live is stopping"))
		<-l.done
	}
	for _, g := range held {
		g.Fail(nil)
	}
}

// Status returns the replication state for /status and /metrics.
func (s *Source) Status() Status {
	s.mu.Lock()
	l, since := s.link, s.since
	s.mu.Unlock()
	st := Status{State: StateNone, Since: since, Dropped: s.dropped.Load()}
	if l == nil {
		return st
	}
	st.Peer = l.peer
	l.mu.Lock()
	st.State = StateSyncing
	if l.synced {
		st.State = StateSynced
	}
	acked, gates := slices.Clone(l.acked), slices.Clone(l.gates)
	l.mu.Unlock()
	for i, j := range s.journals {
		st.LagBytes += lagBytes(acked[i], j.DurableEnd(), j.SegmentSize())
		if g := gates[i]; g != nil {
			n, _ := g.Held()
			st.LagRecords += n
		}
	}
	return st
}

// lagBytes is how far a is behind b, counting whole segments between them.
func lagBytes(a, b journal.Position, segSize int64) int64 {
	if !a.Less(b) {
		return 0
	}
	if a.Seq == b.Seq {
		return b.Offset - a.Offset
	}
	return int64(b.Seq-a.Seq-1)*segSize + (segSize - a.Offset) + b.Offset
}
