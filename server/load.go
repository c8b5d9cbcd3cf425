package server

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// load replays both journals and rebuilds the broker's state.
func (s *Server) load(ctx context.Context) error {
	br, err := s.binds.Load(ctx)
	if err != nil {
		return fmt.Errorf("server: load bindings journal: %w", err)
	}
	mr, err := s.msgs.Load(ctx)
	if err != nil {
		return fmt.Errorf("server: load messages journal: %w", err)
	}
	if s.large != nil {
		// Checked and prepared; nothing of it is kept: the messages say
		// where their chunks are.
		lr, err := s.large.LoadLog(ctx, nil)
		if err != nil {
			return fmt.Errorf("server: load large-messages journal: %w", err)
		}
		for _, w := range lr.Warnings {
			s.log.Warn("large-messages journal: "+w, "journal", "large-messages")
		}
		s.lastID.Store(max(s.lastID.Load(), lr.MaxID))
	}
	for _, w := range br.Warnings {
		s.log.Warn("bindings journal: "+w, "journal", "bindings")
	}
	for _, w := range mr.Warnings {
		s.log.Warn("messages journal: "+w, "journal", "messages")
	}
	s.lastID.Store(max(s.lastID.Load(), br.MaxID, mr.MaxID))
	s.epoch = s.opts.Epoch
	if s.epoch == 0 {
		s.epoch = max(br.Epoch, mr.Epoch)
	}
	s.prepared = len(br.Prepared) + len(mr.Prepared)
	if len(br.Prepared)+len(mr.Prepared) > 0 {
		s.log.Warn("prepared transactions found and left alone (XA is not supported yet)", "count", len(br.Prepared)+len(mr.Prepared))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var bdel []journal.Entry
	var pauses []journal.Record
	for _, rec := range br.Records {
		switch rec.Type {
		case RecQueuePaused:
			pauses = append(pauses, rec) // once every queue is known
		case RecNodeID:
			if s.nodeID == "" {
				s.nodeID = string(rec.Data)
			} else {
				bdel = append(bdel, journal.Entry{Kind: journal.KindDelete, ID: rec.ID})
			}
		case RecAddress:
			ar, err := decodeAddress(rec.Data)
			if err != nil {
				return fmt.Errorf("server: bindings record %d: %w", rec.ID, err)
			}
			a := s.loadAddressLocked(ar.Name)
			if a.recID != 0 {
				bdel = append(bdel, journal.Entry{Kind: journal.KindDelete, ID: a.recID})
			}
			a.recID = rec.ID
			a.anycast = a.anycast || ar.Anycast
			a.multicast = a.multicast || ar.Multicast
			if ar.AutoCreated && !a.autoCreated {
				a.autoCreated = true
				if p := s.opts.AddressSettings.For(a.name); p.AutoDeleteAddresses {
					a.autoDelete, a.deleteDelay = true, p.AutoDeleteAddressesDelay
				}
			}
		case RecQueue:
			qr, err := decodeQueue(rec.Data)
			if err != nil {
				return fmt.Errorf("server: bindings record %d: %w", rec.ID, err)
			}
			if s.queues[qr.Name] != nil {
				return fmt.Errorf("server: bindings record %d: queue %q defined twice", rec.ID, qr.Name)
			}
			a := s.loadAddressLocked(qr.Address)
			if qr.Routing == Anycast {
				a.anycast = true
			} else {
				a.multicast = true
			}
			q := newQueue(rec.ID, qr.Name, a, qr.Routing, qr.Durable, false, qr.AutoCreated)
			if q.filter, err = parseSelector(qr.Filter); err != nil {
				return fmt.Errorf("server: bindings record %d: queue %q: %w", rec.ID, qr.Name, err)
			}
			q.srv = s
			s.queues[q.name] = q
			s.queueByID[q.id] = q
			a.queues = append(a.queues, q)
			s.loadForwardQueue(q) // forward.go
		default:
			return fmt.Errorf("server: bindings record %d: unknown type %d", rec.ID, rec.Type)
		}
	}
	for _, rec := range pauses {
		qid, err := decodeQueueID(rec.Data)
		if err != nil {
			return fmt.Errorf("server: bindings record %d: pause: %w", rec.ID, err)
		}
		q := s.queueByID[qid]
		if q == nil || q.pausedRec != 0 { // its queue was deleted, or a second one: drop it
			bdel = append(bdel, journal.Entry{Kind: journal.KindDelete, ID: rec.ID})
			continue
		}
		q.paused, q.pausedRec = true, rec.ID
	}
	if s.opts.NodeID != "" {
		s.nodeID = s.opts.NodeID
	} else if s.nodeID == "" {
		s.nodeID = newUUID()
		bdel = append(bdel, journal.Entry{Kind: journal.KindAdd, ID: s.nextID(), Type: RecNodeID, Data: []byte(s.nodeID)})
	}
	if len(bdel) > 0 {
		if err := journal.AppendSync(ctx, s.binds, bdel...); err != nil {
			return fmt.Errorf("server: bindings journal: %w", err)
		}
	}

	var mdel []journal.Entry
	pl := newPageLoad()
	messages, refs := 0, 0
	for i := range mr.Records {
		rec := &mr.Records[i]
		switch rec.Type {
		case RecMessage:
			m, err := decodeMessage(rec.Data)
			if err != nil {
				return fmt.Errorf("server: messages record %d: %w", rec.ID, err)
			}
			m.ID = rec.ID
			if m.large != nil {
				if err := s.checkLargeLoaded(m.large, rec.ID); err != nil {
					return fmt.Errorf("server: messages record %d: %w", rec.ID, err)
				}
			}
			// Replay's data may alias a whole segment's read buffer: copy
			// what stays, so a few old messages never pin whole segments.
			m.Body = bytes.Clone(m.Body)
			for i := range m.Properties {
				if b := m.Properties[i].Bytes; b != nil {
					m.Properties[i].Bytes = bytes.Clone(b)
				}
			}
			rs, err := s.restoreRefsLocked(m, rec.Updates)
			if err != nil {
				return fmt.Errorf("server: messages record %d: %w", rec.ID, err)
			}
			if len(rs) == 0 {
				mdel = append(mdel, journal.Entry{Kind: journal.KindDelete, ID: rec.ID})
				continue
			}
			m.durableRefs = int32(len(rs))
			s.charge(rs[0].q.addr, m, len(rs))
			messages++
			for _, r := range rs {
				r.q.seq++
				r.seq = r.q.seq
				r.q.msgs.pushBack(r)
				refs++
			}
		case RecDuplicateID:
			addr, id, err := decodeDuplicateID(rec.Data)
			if err != nil {
				return fmt.Errorf("server: messages record %d: %w", rec.ID, err)
			}
			a := s.loadAddressLocked(addr)
			if s.idCache <= 0 || a.dup.lookup(id) != nil {
				mdel = append(mdel, journal.Entry{Kind: journal.KindDelete, ID: rec.ID})
				continue
			}
			if ev, _ := a.dup.add(id, &dupEntry{recID: rec.ID}); ev != 0 {
				mdel = append(mdel, journal.Entry{Kind: journal.KindDelete, ID: ev})
			}
		case RecPageCursor, RecPageAck, RecPageTx:
			if err := pl.record(s, rec, &mdel); err != nil {
				return fmt.Errorf("server: messages record %d: %w", rec.ID, err)
			}
		case RecClusterMark:
			del, err := s.loadClusterMark(rec)
			if err != nil {
				return fmt.Errorf("server: messages record %d: %w", rec.ID, err)
			}
			mdel = append(mdel, del...)
		case RecScaleDownPending:
			del, err := s.loadPending(rec)
			if err != nil {
				return fmt.Errorf("server: messages record %d: %w", rec.ID, err)
			}
			mdel = append(mdel, del...)
		default:
			return fmt.Errorf("server: messages record %d: unknown type %d", rec.ID, rec.Type)
		}
	}
	if err := s.loadPages(ctx, pl, &mdel); err != nil {
		return err
	}
	if len(mdel) > 0 {
		if err := journal.AppendSync(ctx, s.msgs, mdel...); err != nil {
			return fmt.Errorf("server: messages journal: %w", err)
		}
	}
	// Auto-created queues and addresses left idle (by clients gone with
	// the previous run) go once their delay has passed at a scan.
	now := time.Now()
	for _, q := range s.queues {
		s.setQueuePolicy(q)
		if q.autoDelete {
			q.idleSince = now
			s.addReap(q, nil)
		}
	}
	for _, a := range s.addresses {
		a.emptySince = now
		if len(a.queues) == 0 {
			s.addressIdle(a, false)
		}
	}
	s.log.Info("journals loaded", "messages", messages, "references", refs, "queues", len(s.queues),
		"addresses", len(s.addresses), "max_id", s.lastID.Load())
	return nil
}

// loadAddressLocked returns the named address, creating it in memory.
func (s *Server) loadAddressLocked(name string) *address {
	a := s.addresses[name]
	if a == nil {
		a = &address{name: name, dup: newDupCache(s.idCache), policy: s.opts.AddressSettings.For(name)}
		s.addresses[name] = a
	}
	return a
}

// restoreRefsLocked applies a message's updates: the durable queues still
// holding it, with their delivery counts, in the order it was routed.
func (s *Server) restoreRefsLocked(m *Message, updates []journal.Update) ([]*ref, error) {
	var rs []*ref
	var routes map[uint64]fwdRoute // forward.go: the last per forwarding queue
	find := func(qid uint64) int {
		for i, r := range rs {
			if r.q.id == qid {
				return i
			}
		}
		return -1
	}
	for _, u := range updates {
		switch u.Type {
		case RecAddRef:
			qid, err := decodeQueueID(u.Data)
			if err != nil {
				return nil, err
			}
			q := s.queueByID[qid]
			if q == nil || find(qid) >= 0 {
				continue // the queue was deleted since
			}
			rs = append(rs, &ref{msg: m, q: q})
		case RecAckRef:
			qid, err := decodeQueueID(u.Data)
			if err != nil {
				return nil, err
			}
			if i := find(qid); i >= 0 {
				rs = append(rs[:i], rs[i+1:]...)
			}
		case RecDeliveryCount:
			qid, n, err := decodeDeliveryCount(u.Data)
			if err != nil {
				return nil, err
			}
			if i := find(qid); i >= 0 {
				rs[i].deliveries = n
			}
		case RecMessageOrigin:
			node, err := decodeOrigin(u.Data)
			if err != nil {
				return nil, err
			}
			if node != s.nodeID {
				m.origin = s.cluster.fwd.originIndex(node)
			}
		case RecForwardRoute:
			qid, r, err := decodeRoute(u.Data)
			if err != nil {
				return nil, err
			}
			if routes == nil {
				routes = map[uint64]fwdRoute{}
			}
			routes[qid] = r
		default:
			return nil, fmt.Errorf("unknown update type %d", u.Type)
		}
	}
	if routes != nil {
		s.loadRoutes(m, routes, rs)
	}
	return rs, nil
}
