package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/journal"
)

// ErrNotTransacted is returned by Commit and Rollback on a session that is
// not transacted.
var ErrNotTransacted = errors.New("server: session is not transacted")

// Destination is where a producer sends or a consumer receives: a queue
// (anycast) or a topic (multicast) by name.
type Destination struct {
	Name    string
	Routing Routing
}

// ConsumerOptions configure CreateConsumer.
type ConsumerOptions struct {
	// Subscription names a durable subscription on a topic; empty means a
	// non-durable subscription deleted when the consumer closes.
	Subscription string
	// Credit is the initial credit in messages (0: none until Credit;
	// negative: unlimited).
	Credit int
	// NonDurable makes an auto-created queue or a named subscription
	// non-durable; a non-durable subscription is deleted when its last
	// consumer closes.
	NonDurable bool
	// Selector, when set, is a message selector (package selector): the
	// consumer receives only the messages it matches; the others wait in
	// the queue for other consumers.
	Selector string
}

// Session is a client's unit of work: its consumers, and in a transacted
// session the sends and acks of the current transaction. Its methods are
// safe for concurrent use, but a transaction is meant to be driven by one
// goroutine.
type Session struct {
	s          *Server
	transacted bool
	owner      atomic.Uint64 // the connection's ID (SetOwner), for Consumers

	mu        sync.Mutex
	consumers map[uint64]*Consumer
	nextCons  uint64
	txSends   []txSend
	txAcks    []*ref
	closed    bool
}

type txSend struct {
	m *Message
	r Routing
}

// NewSession opens a session; transacted sessions buffer sends and acks
// until Commit.
func (s *Server) NewSession(transacted bool) *Session {
	ss := &Session{s: s, transacted: transacted, consumers: make(map[uint64]*Consumer)}
	s.trackSession(ss)
	return ss
}

// Transacted reports whether the session is transacted.
func (ss *Session) Transacted() bool { return ss.transacted }

// Send sends m to dest. done runs once: in a non-transacted session when
// the message is stored (durable for a persistent message) or dropped as a
// duplicate; in a transacted session at once (the commit is the durable
// point). The caller must not modify m afterwards. A duplicate (its
// DuplicateID already stored) is confirmed with nil and keeps m.ID 0.
func (ss *Session) Send(ctx context.Context, dest Destination, m *Message, done func(error)) {
	if err := ss.s.enter(); err != nil {
		done(err)
		return
	}
	defer ss.s.exit()
	if err := authorize(ctx, auth.Send, dest.Name); err != nil {
		done(err)
		return
	}
	m.Address = dest.Name
	m.Routing = dest.Routing
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		done(ErrClosed)
		return
	}
	if ss.transacted {
		if err := m.check(); err != nil {
			ss.mu.Unlock()
			done(err)
			return
		}
		m.own()
		if m.large != nil {
			// Its chunks are held until the transaction ends (nothing
			// else holds them before the commit stores the message).
			ss.s.holdLarge(m.large)
		}
		ss.txSends = append(ss.txSends, txSend{m, dest.Routing})
		ss.mu.Unlock()
		done(nil)
		return
	}
	ss.mu.Unlock()
	ss.s.send(ctx, m, dest.Routing, done)
}

// CreateConsumer attaches a consumer to dest: the queue of that name for
// anycast (auto-created), a subscription queue on the address for
// multicast. handler is called from the goroutine making the delivery
// (the queue's delivery goroutine, or the one completing a send: the
// journal's completion, flusher or aio goroutine, or a connection reader)
// and must not block for long. It must not close its own consumer or
// session itself (a queue's shutdown waits for the delivery in progress):
// hand that to another goroutine.
func (ss *Session) CreateConsumer(ctx context.Context, dest Destination, opts ConsumerOptions, handler func(Delivery)) (*Consumer, error) {
	if err := ss.s.enter(); err != nil {
		return nil, err
	}
	defer ss.s.exit()
	if err := ss.s.checkUsable(); err != nil {
		return nil, err
	}
	if err := authorize(ctx, auth.Consume, ss.s.consumeAddress(dest)); err != nil {
		return nil, err
	}
	if strings.HasPrefix(dest.Name, ClusterPrefix) || strings.HasPrefix(opts.Subscription, ClusterPrefix) {
		// forward.go: the bridges' queues; a consumer would take messages
		// on their way to another broker.
		return nil, fmt.Errorf("%w: %q is internal to the cluster connection (%s*)", ErrInvalid, dest.Name, ClusterPrefix)
	}
	sel, err := parseSelector(opts.Selector)
	if err != nil {
		return nil, err
	}
	temp := dest.Routing != Anycast && (opts.Subscription == "" || opts.NonDurable)
	ss.mu.Lock()
	ss.nextCons++
	id := ss.nextCons
	ss.mu.Unlock()
	// An auto-delete may remove the queue between its lookup and the
	// attach: look it up (create it) again.
	var c *Consumer
	for attempt := 1; ; attempt++ {
		q, err := ss.ensureConsumerQueue(ctx, dest, opts)
		if err != nil {
			return nil, err
		}
		if q.routing != dest.Routing {
			return nil, fmt.Errorf("server: queue %q routes %s, not %s", q.name, q.routing, dest.Routing)
		}
		c = &Consumer{id: id, q: q, sess: ss, handler: handler, temp: temp, sel: sel, delivered: make(map[uint64]*ref)}
		ss.mu.Lock()
		if ss.closed {
			ss.mu.Unlock()
			if temp {
				ss.s.deleteQueue(q)
			} else {
				ss.s.queueIdle(q)
			}
			return nil, ErrClosed
		}
		ss.consumers[c.id] = c
		ss.mu.Unlock()
		if q.addConsumer(c) {
			break
		}
		ss.mu.Lock()
		delete(ss.consumers, c.id)
		ss.mu.Unlock()
		if attempt == maxRouteAttempts {
			return nil, fmt.Errorf("server: queue %q: %w", q.name, ErrClosed)
		}
	}
	if opts.Credit != 0 {
		c.Credit(opts.Credit)
	}
	return c, nil
}

// ensureConsumerQueue returns the queue a consumer on dest reads: the
// queue of that name for anycast (auto-created), a subscription queue on
// the address for multicast (a temporary one without a name).
func (ss *Session) ensureConsumerQueue(ctx context.Context, dest Destination, opts ConsumerOptions) (*Queue, error) {
	switch {
	case dest.Routing == Anycast:
		return ss.s.ensureQueue(ctx, dest.Name, dest.Name, Anycast, !opts.NonDurable, false)
	case opts.Subscription != "":
		return ss.s.ensureQueue(ctx, dest.Name, opts.Subscription, Multicast, !opts.NonDurable, opts.NonDurable)
	default:
		return ss.s.ensureQueue(ctx, dest.Name, dest.Name+"."+newUUID(), Multicast, false, true)
	}
}

// Consumer returns the session's consumer with the given ID.
func (ss *Session) Consumer(id uint64) *Consumer {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.consumers[id]
}

// CloseConsumer detaches the consumer; its unacked deliveries go back to
// the queue head with their delivery counts.
func (ss *Session) CloseConsumer(id uint64) error {
	ss.mu.Lock()
	c := ss.consumers[id]
	delete(ss.consumers, id)
	ss.mu.Unlock()
	if c == nil {
		return fmt.Errorf("server: no consumer %d", id)
	}
	ss.closeConsumer(c)
	return nil
}

func (ss *Session) closeConsumer(c *Consumer) {
	refs, left := c.q.removeConsumer(c)
	if c.temp && left == 0 {
		ss.s.deleteQueue(c.q)
		c.q.delivering.Add(-int64(len(refs)))
		ss.s.releaseAll(refs)
		return
	}
	ss.s.cancel(c.q, refs)
	if left == 0 {
		ss.s.queueIdle(c.q)
	}
}

// Ack acknowledges message msgID delivered to consumer consumerID. done
// runs once the ack is durable (non-transacted), or at once in a
// transacted session (the commit is the durable point). Acks may be
// pipelined: their done callbacks run in the order the acks were made.
func (ss *Session) Ack(consumerID, msgID uint64, done func(error)) {
	if err := ss.s.enter(); err != nil {
		done(err)
		return
	}
	defer ss.s.exit()
	ss.mu.Lock()
	c := ss.consumers[consumerID]
	if c == nil || ss.closed {
		ss.mu.Unlock()
		done(fmt.Errorf("%w: no consumer %d", ErrUnknownDelivery, consumerID))
		return
	}
	r, err := c.take(msgID)
	if err != nil {
		ss.mu.Unlock()
		done(err)
		return
	}
	if ss.transacted {
		r.q.delivering.Add(1) // still being delivered until the commit
		ss.txAcks = append(ss.txAcks, r)
		ss.mu.Unlock()
		done(nil)
		return
	}
	ss.mu.Unlock()
	ss.s.ackRef(r, done)
}

// Commit makes the transaction's sends and acks durable in one atomic
// journal append, then routes the sends. done runs once with the outcome.
func (ss *Session) Commit(ctx context.Context, done func(error)) {
	if err := ss.s.enter(); err != nil {
		done(err)
		return
	}
	defer ss.s.exit()
	if !ss.transacted {
		done(ErrNotTransacted)
		return
	}
	ss.mu.Lock()
	sends, acks := ss.txSends, ss.txAcks
	ss.txSends, ss.txAcks = nil, nil
	ss.mu.Unlock()
	ss.s.commit(ctx, sends, acks, func(err error) {
		// Committed, the messages hold their bodies themselves (in
		// memory or paged); rolled back, nothing does.
		ss.s.unholdTxLarge(sends)
		done(err)
	})
}

// unholdTxLarge ends the holds transacted sends took on their large
// bodies.
func (s *Server) unholdTxLarge(sends []txSend) {
	for _, ts := range sends {
		if ts.m.large != nil {
			s.unholdLarge(ts.m.large)
		}
	}
}

// Rollback drops the transaction's sends and returns its acked messages
// to their queues for redelivery.
func (ss *Session) Rollback() error {
	if !ss.transacted {
		return ErrNotTransacted
	}
	ss.mu.Lock()
	sends, acks := ss.txSends, ss.txAcks
	ss.txSends, ss.txAcks = nil, nil
	ss.mu.Unlock()
	ss.s.unholdTxLarge(sends)
	ss.s.cancelAcks(acks)
	return nil
}

// Close closes every consumer (their unacked messages are redelivered) and
// rolls back an open transaction.
func (ss *Session) Close() {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.closed = true
	ss.s.untrackSession(ss)
	cs := make([]*Consumer, 0, len(ss.consumers))
	for _, c := range ss.consumers {
		cs = append(cs, c)
	}
	ss.consumers = map[uint64]*Consumer{}
	sends, acks := ss.txSends, ss.txAcks
	ss.txSends, ss.txAcks = nil, nil
	ss.mu.Unlock()
	ss.s.unholdTxLarge(sends)
	for _, c := range cs {
		ss.closeConsumer(c)
	}
	ss.s.cancelAcks(acks)
}

// cancelAcks returns refs acked in a rolled-back transaction to their
// queues.
func (s *Server) cancelAcks(acks []*ref) {
	byQueue := map[*Queue][]*ref{}
	for _, r := range acks {
		byQueue[r.q] = append(byQueue[r.q], r)
	}
	for q, rs := range byQueue {
		s.cancel(q, rs)
	}
}

// commit writes a transaction as one Append.
func (s *Server) commit(ctx context.Context, sends []txSend, acks []*ref, done func(error)) {
	s.commitWith(ctx, sends, acks, s.cancelAcks, done)
}

// commitWith is commit, with what takes back the acks when the commit
// fails (refused or not durable): unacked, they go back to their queues
// (cancelAcks for a client's transaction; a plain requeue for a move to a
// dead-letter or expiry address, which must not loop into another move).
func (s *Server) commitWith(ctx context.Context, sends []txSend, acks []*ref, unack func([]*ref), done func(error)) {
	s.commitResumable(ctx, sends, acks, unack, s.guard(done), false)
}

// commitResumable is commitWith; resumed is set for a commit BLOCK held,
// taking its turn (done is guarded already). A transaction whose sends go
// to paging addresses writes them to the paging journal first (with its
// ID), then, once they are durable, the rest of it with a RecPageTx
// record in one append (commitPaged).
func (s *Server) commitResumable(ctx context.Context, sends []txSend, acks []*ref, unack func([]*ref), done func(error), resumed bool) {
	if err := s.checkUsable(); err != nil {
		unack(acks)
		done(err)
		return
	}
	if len(sends) == 0 && len(acks) == 0 {
		done(nil)
		return
	}
	addrs, locked, err := s.lockCommitAddresses(ctx, sends)
	if err != nil {
		unack(acks)
		done(fmt.Errorf("server: commit: %w", err))
		return
	}
	unlock := func() {
		for _, a := range locked {
			a.mu.Unlock()
		}
	}
	// Where each send goes, before anything changes: a full address may
	// hold or refuse the whole transaction.
	qss := make([][]*Queue, len(sends))
	adm := make([]admission, len(sends))
	paged := false
	for i, ts := range sends {
		a, m := addrs[i], ts.m
		if m.DuplicateID != "" && s.idCache > 0 && a.dup.lookup(m.DuplicateID) != nil {
			continue // a duplicate (dropped below)
		}
		a.stampExpiry(m)
		qss[i] = a.routeLocked(ts.r, m, nil)
		if len(qss[i]) == 0 {
			continue
		}
		switch adm[i] = s.admitLocked(a, resumed); adm[i] {
		case admitPage:
			paged = true
		case admitBlock:
			for _, ts := range sends {
				ts.m.own()
			}
			s.parkLocked(a, parkedSend{ctx: ctx,
				retry: func() { s.commitResumable(ctx, sends, acks, unack, done, true) },
				fail:  func(err error) { unack(acks); done(err) }}, resumed)
			unlock()
			return
		case admitFail:
			unlock()
			unack(acks)
			done(fmt.Errorf("server: commit: %w: %q holds its max-size-bytes or the broker its global-max-size (address-full-policy FAIL)", ErrAddressFull, a.name))
			return
		}
	}
	var entries []journal.Entry
	type dupDone struct {
		a    *address
		e    *dupEntry
		undo dupUndo
	}
	var dups []dupDone
	var ddups []*deferredDup
	var refs []ref
	var pageEntries []journal.Entry
	var pageLarges []*largeBody
	type pagedSend struct {
		qs   []*Queue
		size int64
		a    *address
	}
	var pagedSends []pagedSend
	var txID uint64
	stored := 0
	for i, ts := range sends {
		a, m := addrs[i], ts.m
		if m.DuplicateID != "" && s.idCache > 0 && a.dup.lookup(m.DuplicateID) != nil {
			s.ctr.dups.Add(1)
			continue // a duplicate: dropped, the rest of the transaction stands
		}
		if adm[i] == admitDrop {
			s.ctr.dropped.Add(1)
			continue
		}
		stored++
		qs := qss[i]
		m.ID = s.nextID()
		if adm[i] == admitPage {
			if txID == 0 {
				txID = s.nextID()
			}
			data := encodePaged(m, qs)
			pageEntries = append(pageEntries, journal.Entry{Kind: journal.KindAdd, ID: m.ID, TxID: txID, Type: RecPagedMessage, Data: data})
			pageLarges = append(pageLarges, m.large)
			pagedSends = append(pagedSends, pagedSend{qs: qs, size: int64(len(data)), a: a})
			for _, q := range qs {
				q.pageStateOf(s.pages)
			}
			if dd := s.dupDeferredLocked(a, m); dd != nil {
				ddups = append(ddups, dd)
			}
			continue
		}
		routed(qs)
		if paged {
			// Its duplicate ID is journaled with the rest of the
			// transaction, once the paged part is durable.
			entries = s.msgEntriesLocked(m, qs, entries)
			if dd := s.dupDeferredLocked(a, m); dd != nil {
				ddups = append(ddups, dd)
			}
		} else {
			var de *dupEntry
			var undo dupUndo
			entries, de, undo = s.sendEntriesLocked(a, m, qs, entries)
			if de != nil {
				dups = append(dups, dupDone{a, de, undo})
			}
		}
		m.own()
		s.charge(a, m, len(qs))
		for _, q := range qs {
			refs = append(refs, ref{msg: m, q: q})
		}
	}
	finish := func(err error) {
		if err == nil {
			s.ctr.in.Add(uint64(stored))
			s.ctr.acks.Add(uint64(len(acks)))
			for _, r := range acks {
				r.q.delivering.Add(-1)
				r.q.acked.Add(1)
				s.release(r)
			}
			for _, p := range pagedSends {
				for _, q := range p.qs {
					q.pagedConfirmed(p.size)
				}
				s.ctr.paged.Add(1)
			}
		}
		for _, d := range dups {
			d.a.dup.complete(d.e, err)
		}
		for _, d := range ddups {
			d.a.dup.complete(d.de, err)
		}
		if err != nil {
			s.unrouteRefs(refs)
			done(err)
			return
		}
		enqueueRefs(refs, done)
	}
	if len(pageEntries) > 0 {
		paddrs := make([]*address, len(pagedSends))
		var pqs []*Queue
		for i, p := range pagedSends {
			paddrs[i] = p.a
			pqs = append(pqs, p.qs...)
		}
		s.commitPaged(txID, pageEntries, entries, pageLarges, acks, ddups, paddrs, pqs, unack, finish)
		unlock()
		return
	}
	s.storeMu.Lock()
	for _, r := range acks {
		if r.durable() {
			entries = append(entries, s.ackEntryLocked(r))
		}
	}
	if len(entries) > 0 {
		err = s.msgs.Append(entries, !s.opts.NoSyncTransactional, func(err error) {
			if err != nil {
				err = s.halt(err)
			}
			finish(err)
		})
		if err != nil {
			// Refused (too large, or the journal failed): undo the acks'
			// counting so the messages can be acked again.
			s.unackEntriesLocked(acks)
		}
	}
	s.storeMu.Unlock()
	if err != nil {
		// Refused: the duplicate ID caches as they were, last add first.
		for i := len(dups) - 1; i >= 0; i-- {
			dups[i].a.dup.undo(dups[i].undo)
		}
	}
	unlock()
	if err != nil {
		// The acks are still counted as being delivered: unack's requeue
		// uncounts them (uncounting them here too made the queues' depth
		// go down by one per ack).
		s.storageError(err)
		unack(acks)
		finish(fmt.Errorf("server: commit: %w", err))
		return
	}
	if len(entries) == 0 {
		finish(nil)
	}
}

// unackEntriesLocked takes back what ackEntryLocked counted for acks
// whose append was refused. Caller holds storeMu.
func (s *Server) unackEntriesLocked(acks []*ref) {
	for _, r := range acks {
		if !r.durable() {
			continue
		}
		if r.pt != nil {
			r.pt.acked.Store(false)
			r.pt.ackRec.Store(0)
			continue
		}
		r.msg.durableRefs++
	}
}

// lockCommitAddresses resolves the addresses of a transaction's sends
// (auto-create may write bindings) and locks them in name order, all
// routable: when an auto-delete removed one meanwhile, it unlocks them and
// resolves them again.
func (s *Server) lockCommitAddresses(ctx context.Context, sends []txSend) (addrs, locked []*address, err error) {
	for attempt := 1; ; attempt++ {
		addrs = make([]*address, len(sends))
		locked = locked[:0]
		for i, ts := range sends {
			a, err := s.addressFor(ctx, ts.m.Address, ts.r)
			if err != nil {
				return nil, nil, err
			}
			addrs[i] = a
			if !containsAddr(locked, a) {
				locked = append(locked, a)
			}
		}
		sort.Slice(locked, func(i, j int) bool { return locked[i].name < locked[j].name })
		for _, a := range locked {
			a.mu.Lock()
		}
		ok := true
		for i, ts := range sends {
			if !addrs[i].routableLocked(ts.r) {
				ok = false
				break
			}
		}
		if ok {
			return addrs, locked, nil
		}
		for _, a := range locked {
			a.mu.Unlock()
		}
		if attempt == maxRouteAttempts {
			return nil, nil, fmt.Errorf("%w: an address was deleted %d times while committing to it", ErrNoSuchQueue, attempt)
		}
	}
}

func containsAddr(as []*address, a *address) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// AckMany acknowledges several messages delivered to one consumer. In a
// non-transacted session the durable acks go in one atomic journal append
// and done runs once it is durable; failed lists the IDs the consumer did
// not hold (those are not acked; the others are). In a transacted session
// done runs at once.
func (ss *Session) AckMany(consumerID uint64, ids []uint64, done func(failed []uint64, err error)) {
	if err := ss.s.enter(); err != nil {
		done(nil, err)
		return
	}
	defer ss.s.exit()
	ss.mu.Lock()
	c := ss.consumers[consumerID]
	if c == nil || ss.closed {
		ss.mu.Unlock()
		done(nil, fmt.Errorf("%w: no consumer %d", ErrUnknownDelivery, consumerID))
		return
	}
	var failed []uint64
	refs := make([]*ref, 0, len(ids))
	for _, id := range ids {
		r, err := c.take(id)
		if err != nil {
			failed = append(failed, id)
			continue
		}
		refs = append(refs, r)
	}
	if ss.transacted {
		for _, r := range refs {
			r.q.delivering.Add(1)
		}
		ss.txAcks = append(ss.txAcks, refs...)
		ss.mu.Unlock()
		done(failed, nil)
		return
	}
	ss.mu.Unlock()
	ss.s.ackRefs(refs, func(err error) { done(failed, err) })
}
