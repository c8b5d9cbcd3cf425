package server

import (
	"context"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// Auto-delete (Artemis's auto-delete-queues and auto-delete-addresses): an
// anycast queue a client's send or consumer created is deleted once it has
// no consumer, holds at most auto-delete-queues-message-count messages and
// auto-delete-queues-delay has passed since its last consumer left; an
// address a client created is deleted once no queue is bound to it and
// auto-delete-addresses-delay has passed. Without a delay the deletion is
// tried when the last consumer (or queue) goes; what cannot go yet waits
// in a reap set checked every AddressQueueScanPeriod.
//
// Two deliberate differences from Artemis: queues loaded from the journal
// count as used (so queues a killed client left behind go after a
// restart), and an address whose duplicate-ID cache holds IDs is kept, so
// that a send resent after a lost connection is still recognised as a
// duplicate (Artemis drops the cache with the address).
//
// Races: the deletion holds the server's mutex (no lookup or creation of
// that name meanwhile), the address's (no send routes to the queue) and
// the queue's (no consumer attaches); a send routed before and not pushed
// yet (Queue.routed) postpones it. A send or consumer holding the deleted
// queue or address looks it up again (lockedAddressFor, CreateConsumer).
// DeleteQueue decides under the same server mutex (a queue it deletes is
// marked deleting and unbound in one hold, and is never auto-deleted
// after), and a delivery or transactional ack that comes back to a queue
// deleted either way is acked in the journal (Server.cancel, dropRefs).

// setQueuePolicy decides from the address settings whether q is deleted
// when idle. Only anycast queues a client created are: a subscription
// queue is either temporary (deleted with its last consumer) or durable
// (it keeps collecting while its subscriber is away).
func (s *Server) setQueuePolicy(q *Queue) {
	if !q.autoCreated || q.temporary || q.routing != Anycast {
		return
	}
	if p := s.opts.AddressSettings.For(q.addr.name); p.AutoDeleteQueues {
		q.autoDelete, q.deleteDelay, q.deleteCount = true, p.AutoDeleteQueuesDelay, p.AutoDeleteQueuesMessageCount
	}
}

// queueIdle is called when q may have become deletable: its last consumer
// left, or a consumer meant for it was not created. It deletes q when it
// can now and otherwise leaves it to the reaper.
func (s *Server) queueIdle(q *Queue) {
	if !q.autoDelete {
		return
	}
	q.mu.Lock()
	if len(q.consumers) > 0 {
		q.mu.Unlock()
		return
	}
	if q.idleSince.IsZero() {
		q.idleSince = time.Now()
	}
	q.mu.Unlock()
	if q.deleteDelay == 0 && !s.tryDeleteIdleQueue(q, time.Now()) {
		return
	}
	s.addReap(q, nil)
}

// addressIdle is queueIdle for an address that may have no queue left:
// lostQueue when its last queue just went (without a delay it goes at
// once), else it was created or loaded without queues and waits for a
// scan, so that a producer on a topic nobody listens to does not create
// and delete the address per send.
func (s *Server) addressIdle(a *address, lostQueue bool) {
	if !a.autoDelete {
		return
	}
	if lostQueue && a.deleteDelay == 0 && !s.tryDeleteIdleAddress(a, time.Now()) {
		return
	}
	s.addReap(nil, a)
}

// addReap puts q or a in the reap sets, unless nothing scans them.
func (s *Server) addReap(q *Queue, a *address) {
	if s.opts.AddressQueueScanPeriod < 0 {
		return
	}
	s.reapMu.Lock()
	if q != nil {
		s.reapQueues[q] = struct{}{}
	}
	if a != nil {
		s.reapAddrs[a] = struct{}{}
	}
	s.reapMu.Unlock()
}

// tryDeleteIdleQueue deletes q if it is idle at now: no consumer, no send
// in flight to it, at most deleteCount messages, deleteDelay passed. It
// returns whether q should be checked again later (false: deleted, gone,
// or in use again, so a later idle moment re-registers it).
func (s *Server) tryDeleteIdleQueue(q *Queue, now time.Time) (again bool) {
	s.mu.Lock()
	if s.closed || s.queues[q.name] != q {
		s.mu.Unlock()
		return false
	}
	a := q.addr
	a.mu.Lock()
	q.mu.Lock()
	switch {
	case q.deleted || q.deleting || len(q.consumers) > 0:
		q.mu.Unlock()
		a.mu.Unlock()
		s.mu.Unlock()
		return false
	case q.idleSince.IsZero() || now.Sub(q.idleSince) < q.deleteDelay || q.routed.Load() > 0 || a.pagedInflight.Load() > 0 ||
		q.deleteCount >= 0 && int64(q.msgs.len())+q.delivering.Load()+q.pagedDepth() > q.deleteCount:
		q.mu.Unlock()
		a.mu.Unlock()
		s.mu.Unlock()
		return true
	}
	q.deleted = true
	var refs []*ref
	for q.msgs.len() > 0 {
		refs = append(refs, q.msgs.popFront())
	}
	q.mu.Unlock()
	for i, x := range a.queues {
		if x == q {
			a.queues = append(a.queues[:i:i], a.queues[i+1:]...)
			break
		}
	}
	addrEmpty := len(a.queues) == 0
	if addrEmpty {
		a.emptySince = now
	}
	a.mu.Unlock()
	// The queue's delete is durable before the name is free again, so a
	// queue of that name created next never precedes it in the journal.
	if q.durable {
		if err := journal.AppendSync(context.Background(), s.binds, q.deleteEntries()...); err != nil {
			s.storageError(err)
			s.log.Error("auto-delete: journal write failed", "queue", q.name, "err", err)
		}
	}
	delete(s.queues, q.name)
	delete(s.queueByID, q.id)
	s.mu.Unlock()
	q.shutdown()
	// Its paged messages go with its page records; depaged ones in memory
	// have no record of their own to ack.
	kept := refs[:0:0]
	for _, r := range refs {
		if r.pt != nil {
			s.release(r)
		} else {
			kept = append(kept, r)
		}
	}
	s.dropRefs(kept)
	if q.durable {
		if pdel := s.pageRecordsOf(q); len(pdel) > 0 && s.checkUsable() == nil {
			s.storeMu.Lock()
			err := s.msgs.Append(pdel, false, func(err error) {
				if err != nil {
					s.halt(err)
				}
			})
			s.storeMu.Unlock()
			s.storageError(err)
		}
	} else {
		s.dropPageState(q)
	}
	s.log.Debug("queue auto-deleted", "queue", q.name, "address", a.name, "messages", len(refs))
	if addrEmpty {
		s.addressIdle(a, true)
	}
	return false
}

// tryDeleteIdleAddress deletes a if no queue is bound to it, its delay has
// passed and its duplicate-ID cache is empty. It returns whether a should
// be checked again later.
func (s *Server) tryDeleteIdleAddress(a *address, now time.Time) (again bool) {
	s.mu.Lock()
	if s.closed || s.addresses[a.name] != a {
		s.mu.Unlock()
		return false
	}
	a.mu.Lock()
	switch {
	case a.deleted || len(a.queues) > 0 || a.dup.len() > 0:
		// In use again (a later idle moment re-registers it), or holding
		// duplicate IDs, which it keeps for good.
		a.mu.Unlock()
		s.mu.Unlock()
		return false
	case now.Sub(a.emptySince) < a.deleteDelay:
		a.mu.Unlock()
		s.mu.Unlock()
		return true
	}
	a.deleted = true
	a.mu.Unlock()
	if a.recID != 0 {
		if err := journal.AppendSync(context.Background(), s.binds, journal.Entry{Kind: journal.KindDelete, ID: a.recID}); err != nil {
			s.storageError(err)
			s.log.Error("auto-delete: journal write failed", "address", a.name, "err", err)
		}
	}
	delete(s.addresses, a.name)
	s.mu.Unlock()
	s.log.Debug("address auto-deleted", "address", a.name)
	return false
}

// reaper checks the reap sets every period until Close.
func (s *Server) reaper(period time.Duration) {
	defer close(s.reapDone)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			s.reap(now)
		case <-s.stopReap:
			return
		}
	}
}

// reap deletes the queues and addresses of the reap sets that are idle at
// now and forgets those that are gone or in use again.
func (s *Server) reap(now time.Time) {
	if !s.tryEnter() { // frozen for a scale-down: its queues must stay
		return
	}
	defer s.exit()
	s.reapMu.Lock()
	qs := make([]*Queue, 0, len(s.reapQueues))
	for q := range s.reapQueues {
		qs = append(qs, q)
	}
	s.reapMu.Unlock()
	for _, q := range qs {
		if !s.tryDeleteIdleQueue(q, now) {
			s.reapMu.Lock()
			delete(s.reapQueues, q)
			s.reapMu.Unlock()
		}
	}
	// Addresses after queues: a queue deleted above may leave one empty.
	s.reapMu.Lock()
	as := make([]*address, 0, len(s.reapAddrs))
	for a := range s.reapAddrs {
		as = append(as, a)
	}
	s.reapMu.Unlock()
	for _, a := range as {
		if !s.tryDeleteIdleAddress(a, now) {
			s.reapMu.Lock()
			delete(s.reapAddrs, a)
			s.reapMu.Unlock()
		}
	}
}
