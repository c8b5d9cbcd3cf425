package server

import (
	"context"
	"fmt"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// send routes m to its address with routing r and calls done once: nil
// when it is stored (durable, for a persistent message routed to a
// durable queue) or was a duplicate of a stored one.
func (s *Server) send(ctx context.Context, m *Message, r Routing, done func(error)) {
	s.sendResumable(ctx, m, r, s.timed(time.Now(), s.guard(done)), false)
}

// sendResumable is send; resumed is set for a send BLOCK held, taking its
// turn (done is guarded already).
func (s *Server) sendResumable(ctx context.Context, m *Message, r Routing, done func(error), resumed bool) {
	if err := s.checkUsable(); err != nil {
		done(err)
		return
	}
	if err := m.check(); err != nil {
		done(err)
		return
	}
	a, err := s.lockedAddressFor(ctx, m.Address, r)
	if err != nil {
		done(err)
		return
	}
	var qbuf [4]*Queue
	if m.DuplicateID != "" && s.idCache > 0 {
		if e := a.dup.lookup(m.DuplicateID); e != nil {
			a.mu.Unlock()
			s.ctr.dups.Add(1)
			a.dup.wait(e, done)
			return
		}
	}
	a.stampExpiry(m)
	qs := a.routeLocked(r, m, qbuf[:0])
	if len(qs) > 0 {
		switch s.admitLocked(a, resumed) {
		case admitPage:
			s.sendPagedLocked(a, m, qs, done)
			a.mu.Unlock()
			return
		case admitBlock:
			m.own()
			s.parkLocked(a, parkedSend{ctx: ctx, retry: func() { s.sendResumable(ctx, m, r, done, true) }, fail: done}, resumed)
			a.mu.Unlock()
			return
		case admitFail:
			a.mu.Unlock()
			done(fmt.Errorf("%w: %q holds its max-size-bytes or the broker its global-max-size (address-full-policy FAIL)", ErrAddressFull, a.name))
			return
		case admitDrop:
			a.mu.Unlock()
			s.ctr.dropped.Add(1)
			done(nil) // Artemis's DROP: dropped without a word
			return
		}
	}
	var prs []pendingRoute
	if s.cluster.fwd.active.Load() { // cluster load balancing (forward.go)
		qs, prs = s.balanceLocked(m, qs, nil)
	}
	routed(qs)
	m.ID = s.nextID()
	entries, de, undo := s.sendEntriesLocked(a, m, qs, a.entries[:0])
	if prs != nil {
		entries = s.forwardEntriesLocked(m, prs, entries)
	}
	m.own()
	refs := make([]ref, len(qs))
	for i, q := range qs {
		refs[i] = ref{msg: m, q: q}
	}
	s.charge(a, m, len(qs))
	if len(entries) == 0 {
		a.mu.Unlock()
		s.ctr.in.Add(1)
		if de != nil {
			a.dup.complete(de, nil)
		}
		enqueueRefs(refs, done)
		return
	}
	err = s.msgs.Append(entries, !s.opts.NoSyncNonTransactional, func(err error) {
		if err != nil {
			err = s.halt(err)
		} else {
			s.ctr.in.Add(1)
		}
		if de != nil {
			a.dup.complete(de, err)
		}
		if err != nil {
			s.unrouteRefs(refs)
			done(err)
			return
		}
		enqueueRefs(refs, done)
	})
	if err != nil && de != nil {
		a.dup.undo(undo)
	}
	a.entries = reuseEntries(entries) // Append copied them
	a.mu.Unlock()
	if err != nil {
		s.unrouteRefs(refs)
		s.storageError(err)
		if de != nil {
			a.dup.complete(de, err)
		}
		done(err)
	}
}

// sendEntriesLocked appends to entries the journal records of sending m
// to qs: the message and a reference per durable queue when m is
// persistent, and its duplicate ID (with the eviction of the oldest). It
// registers the duplicate ID, pending, and returns its entry and what
// takes the registration back (dupCache.undo) should the append be
// refused. Caller holds a.mu.
func (s *Server) sendEntriesLocked(a *address, m *Message, qs []*Queue, entries []journal.Entry) ([]journal.Entry, *dupEntry, dupUndo) {
	return s.dupEntriesLocked(a, m, s.msgEntriesLocked(m, qs, entries))
}

// msgEntriesLocked appends to entries the records of storing m for qs
// (sendEntriesLocked without the duplicate ID). Caller holds the
// address's mutex.
func (s *Server) msgEntriesLocked(m *Message, qs []*Queue, entries []journal.Entry) []journal.Entry {
	if m.Durable {
		var n int32
		for _, q := range qs {
			if q.durable {
				n++
			}
		}
		if n > 0 {
			m.durableRefs = n
			if entries == nil {
				entries = make([]journal.Entry, 0, 4+len(qs))
			}
			data := encodeMessage(m)
			if m.borrowed { // the record holds a copy of the body: share it
				n := len(data)
				m.Body = data[n-len(m.Body) : n : n]
				m.borrowed = false
			}
			entries = append(entries, journal.Entry{Kind: journal.KindAdd, ID: m.ID, Type: RecMessage, Data: data})
			for _, q := range qs {
				if q.durable {
					entries = append(entries, journal.Entry{Kind: journal.KindUpdate, ID: m.ID, Type: RecAddRef, Data: q.refData})
				}
			}
		}
	}
	return entries
}

// dupEntriesLocked appends to entries the records of m's duplicate ID
// (with the eviction of the oldest) and registers it, pending, as
// sendEntriesLocked does. Caller holds a.mu.
func (s *Server) dupEntriesLocked(a *address, m *Message, entries []journal.Entry) ([]journal.Entry, *dupEntry, dupUndo) {
	var de *dupEntry
	undo := dupUndo{pos: -1}
	if m.DuplicateID != "" && s.idCache > 0 {
		de = &dupEntry{pending: true}
		if m.Durable && !s.opts.NoPersistIDCache {
			de.recID = s.nextID()
			entries = append(entries, journal.Entry{Kind: journal.KindAdd, ID: de.recID, Type: RecDuplicateID, Data: encodeDuplicateID(a.name, m.DuplicateID)})
		}
		var ev uint64
		if ev, undo = a.dup.add(m.DuplicateID, de); ev != 0 {
			entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: ev})
		}
	}
	return entries, de, undo
}

// reuseEntries returns entries emptied for the next append under the same
// lock (Append copies its entries): references to record data are
// cleared, and a buffer grown unusually large is dropped.
func reuseEntries(entries []journal.Entry) []journal.Entry {
	if cap(entries) > 64 {
		return nil
	}
	clear(entries)
	return entries[:0]
}

// routed counts a send in flight to each of qs (see Queue.routed): push
// or unroute uncounts it. Caller holds the queues' address's mutex.
func routed(qs []*Queue) {
	for _, q := range qs {
		q.routed.Add(1)
	}
}

// unroute uncounts refs that will not be pushed.
func unroute(refs []ref) {
	for i := range refs {
		refs[i].q.routed.Add(-1)
	}
}

// unrouteRefs uncounts refs that will not be pushed, and their memory.
func (s *Server) unrouteRefs(refs []ref) {
	unroute(refs)
	for i := range refs {
		s.release(&refs[i])
	}
}

// enqueueRefs puts refs in their queues, calls done(nil), and then
// delivers what it can (deliverInline): the message is in its queues when
// done runs, and the sender's answer goes out before the deliveries this
// goroutine makes.
func enqueueRefs(refs []ref, done func(error)) {
	var buf [4]*Queue
	consumed := buf[:0]
	for i := range refs {
		q := refs[i].q
		switch {
		case !q.push(&refs[i]):
		case refs[i].msg.IsLarge():
			q.wake() // streamed by a delivery goroutine, never in a journal callback
		default:
			consumed = append(consumed, q)
		}
	}
	done(nil)
	for _, q := range consumed {
		q.deliverInline()
	}
}

// ackRef acknowledges one delivered reference: an update, or the
// message's delete when it was its last durable reference. done runs once
// that is durable.
func (s *Server) ackRef(r *ref, done func(error)) {
	done = s.guard(done)
	if err := s.checkUsable(); err != nil {
		done(err)
		return
	}
	s.ctr.acks.Add(1)
	r.q.acked.Add(1)
	if !r.durable() {
		s.release(r)
		done(nil)
		return
	}
	s.storeMu.Lock()
	entries := append(s.ackEntries[:0], s.ackEntryLocked(r))
	s.release(r)
	err := s.msgs.Append(entries, !s.opts.NoSyncNonTransactional, func(err error) {
		if err != nil {
			err = s.halt(err)
		}
		done(err)
	})
	s.ackEntries = reuseEntries(entries)
	s.storeMu.Unlock()
	if err != nil {
		s.storageError(err)
		done(err)
	}
}

// ackRefs acknowledges references in one atomic append.
func (s *Server) ackRefs(refs []*ref, done func(error)) {
	done = s.guard(done)
	if err := s.checkUsable(); err != nil {
		done(err)
		return
	}
	s.ctr.acks.Add(uint64(len(refs)))
	for _, r := range refs {
		r.q.acked.Add(1)
	}
	s.storeMu.Lock()
	entries := s.ackEntries[:0]
	for _, r := range refs {
		if r.durable() {
			entries = append(entries, s.ackEntryLocked(r))
		}
		s.release(r)
	}
	if len(entries) == 0 {
		s.storeMu.Unlock()
		done(nil)
		return
	}
	err := s.msgs.Append(entries, !s.opts.NoSyncNonTransactional, func(err error) {
		if err != nil {
			err = s.halt(err)
		}
		done(err)
	})
	s.ackEntries = reuseEntries(entries)
	s.storeMu.Unlock()
	if err != nil {
		s.storageError(err)
		done(err)
	}
}

// ackEntryLocked returns the record acking r. Caller holds storeMu.
func (s *Server) ackEntryLocked(r *ref) journal.Entry {
	if r.pt != nil { // a depaged message: no record of its own in this journal
		id := s.nextID()
		r.pt.ackRec.Store(id)
		r.pt.acked.Store(true)
		return journal.Entry{Kind: journal.KindAdd, ID: id, Type: RecPageAck, Data: encodePageAck(r.q.id, r.msg.ID)}
	}
	m := r.msg
	m.durableRefs--
	if m.durableRefs <= 0 {
		return journal.Entry{Kind: journal.KindDelete, ID: m.ID}
	}
	return journal.Entry{Kind: journal.KindUpdate, ID: m.ID, Type: RecAckRef, Data: r.q.refData}
}

// cancel returns deliveries of one queue to its head, persisting their
// delivery counts (not synced: they ride with the next synced append).
// When the queue was deleted meanwhile (DeleteQueue deletes only what is
// in it), the references go with it: their acks are appended, so the
// messages' durable counts reach zero and their records are deleted.
func (s *Server) cancel(q *Queue, refs []*ref) {
	if len(refs) == 0 {
		return
	}
	refs, dead := s.redeliveryPolicy(q, refs)
	if len(dead) > 0 {
		s.deadLetter(q, dead)
	}
	if len(refs) == 0 {
		return
	}
	var entries []journal.Entry
	for _, r := range refs {
		if r.durable() && r.pt == nil { // a depaged message's count is not kept
			entries = append(entries, journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecDeliveryCount, Data: encodeDeliveryCount(q.id, r.deliveries)})
		}
	}
	if len(entries) > 0 && s.checkUsable() == nil {
		s.storeMu.Lock()
		err := s.msgs.Append(entries, false, func(err error) {
			if err != nil {
				s.halt(err)
			}
		})
		s.storeMu.Unlock()
		s.storageError(err)
	}
	if !q.requeue(refs) {
		s.dropRefs(refs)
	}
}

// dropRefs acks durable references that their deleted queue (by
// DeleteQueue or an auto-delete) no longer holds, so their messages go
// once no other queue holds them. Not synced: they only reclaim the
// records; a replay keeps references only to queues whose bindings record
// is live, and both deletions make that record's delete durable first.
func (s *Server) dropRefs(refs []*ref) {
	if len(refs) == 0 || s.checkUsable() != nil {
		return
	}
	s.storeMu.Lock()
	var entries []journal.Entry
	for _, r := range refs {
		if r.durable() {
			entries = append(entries, s.ackEntryLocked(r))
		}
		s.release(r)
	}
	var err error
	if len(entries) > 0 {
		err = s.msgs.Append(entries, false, func(err error) {
			if err != nil {
				s.halt(err)
			}
		})
	}
	s.storeMu.Unlock()
	s.storageError(err)
}

// deferredDup is a duplicate ID registered for a paged send: its record
// is appended once the message is durable in the paging journal
// (appendDeferred), with the delete of the entry it evicted.
type deferredDup struct {
	a     *address
	de    *dupEntry
	add   journal.Entry
	evict []journal.Entry
	undo  dupUndo
}

// dupDeferredLocked registers m's duplicate ID for a paged send (nil
// when it has none or the cache is off). Caller holds a.mu.
func (s *Server) dupDeferredLocked(a *address, m *Message) *deferredDup {
	if m.DuplicateID == "" || s.idCache <= 0 {
		return nil
	}
	d := &deferredDup{a: a, de: &dupEntry{pending: true}}
	if m.Durable && !s.opts.NoPersistIDCache {
		d.de.recID = s.nextID()
		d.de.deferred = deferWaiting
		d.add = journal.Entry{Kind: journal.KindAdd, ID: d.de.recID, Type: RecDuplicateID, Data: encodeDuplicateID(a.name, m.DuplicateID)}
	}
	var ev uint64
	if ev, d.undo = a.dup.add(m.DuplicateID, d.de); ev != 0 {
		d.evict = append(d.evict, journal.Entry{Kind: journal.KindDelete, ID: ev})
	}
	return d
}

// record appends the duplicate ID's record (not synced: the paged record
// holds the ID too), unless it was evicted meanwhile.
func (d *deferredDup) record(s *Server) {
	err := d.a.dup.appendDeferred(d.de, d.add, d.evict, func(es []journal.Entry) error {
		return s.msgs.Append(es, false, func(err error) {
			if err != nil {
				s.halt(err)
			}
		})
	})
	s.storageError(err)
}
