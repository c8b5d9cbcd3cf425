package server

import (
	"context"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// send routes m to its address with routing r and calls done once: nil
// when it is stored (durable, for a persistent message routed to a
// durable queue) or was a duplicate of a stored one.
func (s *Server) send(ctx context.Context, m *Message, r Routing, done func(error)) {
	done = s.timed(time.Now(), s.guard(done))
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
	qs := a.routeLocked(r, qbuf[:0])
	routed(qs)
	m.ID = s.nextID()
	entries, de, undo := s.sendEntriesLocked(a, m, qs, a.entries[:0])
	m.own()
	refs := make([]ref, len(qs))
	for i, q := range qs {
		refs[i] = ref{msg: m, q: q}
	}
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
			unroute(refs)
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
		unroute(refs)
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

// enqueueRefs puts refs in their queues, calls done(nil), and then
// delivers what it can (deliverInline): the message is in its queues when
// done runs, and the sender's answer goes out before the deliveries this
// goroutine makes.
func enqueueRefs(refs []ref, done func(error)) {
	var buf [4]*Queue
	consumed := buf[:0]
	for i := range refs {
		if q := refs[i].q; q.push(&refs[i]) {
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
		done(nil)
		return
	}
	s.storeMu.Lock()
	entries := append(s.ackEntries[:0], s.ackEntryLocked(r))
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
	var entries []journal.Entry
	for _, r := range refs {
		if r.durable() {
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
