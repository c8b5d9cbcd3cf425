package server

// The source side of a scale-down (issue 19): a frozen server (Freeze)
// gives its messages away in ascending ID order (ExportMessages), acks
// each batch once the target answered that it holds it durably
// (AckExported), and hands its duplicate-ID caches over last
// (ExportDuplicateIDs). What the target did not confirm stays here: it is
// still in the journal, and back in its queues after RestoreExported.
//
// A scale-down in progress is recorded (RecScaleDownPending: the target's
// node ID and the highest message ID sent) before the first batch and
// deleted once everything is acked. A broker killed in the middle finds
// it at its next start: the messages up to that ID may be on that target
// already (its answer was lost with the process), so they go to that
// target only, whose watermark tells which it holds.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// pendingScaleDown is a RecScaleDownPending record.
type pendingScaleDown struct {
	recID uint64
	PendingScaleDown
}

// PendingScaleDown is a scale-down that did not finish: its target and
// the highest message ID it may hold.
type PendingScaleDown struct {
	Target string // the target's node ID
	URL    string // where it was reached
	High   uint64
}

func encodePending(p PendingScaleDown) []byte {
	b := make([]byte, 0, 16+len(p.Target)+len(p.URL))
	b = append(b, clusterRecordFormat)
	b = appendString(b, p.Target)
	b = appendString(b, p.URL)
	return binary.LittleEndian.AppendUint64(b, p.High)
}

func decodePending(b []byte) (PendingScaleDown, error) {
	d := decoder{b: b}
	var p PendingScaleDown
	if f := d.byte(); f != clusterRecordFormat && d.err == nil {
		return p, fmt.Errorf("scale-down record: unknown format %d", f)
	}
	p.Target = d.string()
	p.URL = d.string()
	p.High = d.uint64()
	if d.err == nil && d.off != len(b) {
		return PendingScaleDown{}, fmt.Errorf("scale-down record: offset %d: trailing bytes", d.off)
	}
	if d.err != nil {
		return PendingScaleDown{}, fmt.Errorf("scale-down record: %w", d.err)
	}
	return p, nil
}

// loadPending restores a RecScaleDownPending at load (the later of two
// wins; the other is deleted).
func (s *Server) loadPending(rec *journal.Record) ([]journal.Entry, error) {
	p, err := decodePending(rec.Data)
	if err != nil {
		return nil, err
	}
	var del []journal.Entry
	if old := s.cluster.pending; old != nil {
		del = append(del, journal.Entry{Kind: journal.KindDelete, ID: old.recID})
	}
	s.cluster.pending = &pendingScaleDown{recID: rec.ID, PendingScaleDown: p}
	return del, nil
}

// PendingScaleDown returns the scale-down that did not finish (ok false:
// none).
func (s *Server) PendingScaleDown() (p PendingScaleDown, ok bool) {
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	if x := s.cluster.pending; x != nil {
		return x.PendingScaleDown, true
	}
	return PendingScaleDown{}, false
}

// SetPendingScaleDown records, durably, that messages up to p.High may
// go to the target from now on (replacing an earlier record).
func (s *Server) SetPendingScaleDown(ctx context.Context, p PendingScaleDown) error {
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	id := s.nextID()
	entries := []journal.Entry{{Kind: journal.KindAdd, ID: id, Type: RecScaleDownPending, Data: encodePending(p)}}
	if x := s.cluster.pending; x != nil {
		entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: x.recID})
	}
	if err := journal.AppendSync(ctx, s.msgs, entries...); err != nil {
		s.storageError(err)
		return fmt.Errorf("server: recording the scale-down: %w", err)
	}
	s.cluster.pending = &pendingScaleDown{recID: id, PendingScaleDown: p}
	return nil
}

// ClearPendingScaleDown deletes the record of a scale-down that finished.
func (s *Server) ClearPendingScaleDown(ctx context.Context) error {
	s.cluster.mu.Lock()
	defer s.cluster.mu.Unlock()
	p := s.cluster.pending
	if p == nil {
		return nil
	}
	if err := journal.AppendSync(ctx, s.msgs, journal.Entry{Kind: journal.KindDelete, ID: p.recID}); err != nil {
		s.storageError(err)
		return fmt.Errorf("server: clearing the scale-down record: %w", err)
	}
	s.cluster.pending = nil
	return nil
}

// PreparedTransactions is how many prepared (two-phase) transactions the
// store held at load; Tandem leaves them alone (XA is not supported), and
// a scale-down refuses to run with them.
func (s *Server) PreparedTransactions() int { return s.prepared }

// ExportMessages takes every message out of the queues of a frozen server
// (Freeze) and returns them in ascending ID order, each with the queues
// holding it and its delivery count there; temporary queues are left out
// (their consumers are gone, their messages not durable). The messages
// stay in the journal until AckExported; RestoreExported puts back what
// was not acked. Body and properties are shared: read only.
func (s *Server) ExportMessages() ([]wire.ClusterMessage, error) {
	if !s.Frozen() {
		return nil, fmt.Errorf("%w: export needs a frozen server", ErrInvalid)
	}
	s.mu.RLock()
	qs := make([]*Queue, 0, len(s.queues))
	for _, q := range s.queues {
		if !q.temporary {
			qs = append(qs, q)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(qs, func(a, b *Queue) int { return strings.Compare(a.name, b.name) })
	if err := s.exportable(qs); err != nil {
		return nil, err
	}
	byMsg := map[*Message][]*ref{}
	var msgs []*Message
	for _, q := range qs {
		q.mu.Lock()
		for q.msgs.len() > 0 {
			r := q.msgs.popFront()
			if _, ok := byMsg[r.msg]; !ok {
				msgs = append(msgs, r.msg)
			}
			byMsg[r.msg] = append(byMsg[r.msg], r)
		}
		q.mu.Unlock()
	}
	slices.SortFunc(msgs, func(a, b *Message) int { return cmpU64(a.ID, b.ID) })
	out := make([]wire.ClusterMessage, len(msgs))
	s.cluster.mu.Lock()
	s.cluster.exported = make(map[uint64][]*ref, len(msgs))
	for i, m := range msgs {
		refs := byMsg[m]
		s.cluster.exported[m.ID] = refs
		cm := wire.ClusterMessage{ID: m.ID, Message: wire.Message{Address: m.Address, Routing: wire.RoutingType(m.Routing),
			Durable: m.Durable, DuplicateID: m.DuplicateID, Timestamp: m.Timestamp, Expiration: m.Expiration,
			Properties: s.exportProps(m), Body: m.Body}}
		for _, r := range refs {
			q := r.q
			if rt, ok := s.exportRoute(q, m.ID); ok { // forward.go: to the queues it was on its way to
				for _, qn := range rt.queues {
					cm.Queues = append(cm.Queues, wire.ClusterQueue{Name: qn, Address: rt.address,
						Routing: wire.RoutingType(rt.routing), Flags: wire.ClusterDurable, Deliveries: rt.deliveries + r.deliveries})
				}
				continue
			}
			var flags uint8
			if q.durable {
				flags |= wire.ClusterDurable
			}
			if q.autoCreated {
				flags |= wire.ClusterAutoCreated
			}
			cm.Queues = append(cm.Queues, wire.ClusterQueue{Name: q.name, Address: q.addr.name,
				Routing: wire.RoutingType(q.routing), Flags: flags, Deliveries: r.deliveries})
		}
		out[i] = cm
	}
	s.cluster.mu.Unlock()
	return out, nil
}

// ErrNotExportable is ExportMessages' error for a server holding messages
// a scale-down does not move: large messages (their bodies do not fit a
// ClusterMessages frame), paged messages beyond MaxExportPaged bytes (a
// scale-down reads them all into memory), and paged messages behind a
// transaction not decided yet. Nothing is taken: they all stay in this
// broker's journals (paged ones read into memory stay in their queues, in
// order, as if a consumer were about to take them).
var ErrNotExportable = errors.New("server: scale-down does not move these messages")

// MaxExportPaged bounds the paged messages' records a scale-down reads
// into memory to move them (the sum over its queues): half of
// global-max-size, at least 64 MiB (1 GiB without a global limit).
func (s *Server) MaxExportPaged() int64 {
	if s.globalMax <= 0 {
		return 1 << 30
	}
	return max(s.globalMax/2, 64<<20)
}

// exportable reads the paged messages of queues qs into memory and
// refuses an export that would hold large messages or more paged
// messages than MaxExportPaged (ErrNotExportable).
func (s *Server) exportable(qs []*Queue) error {
	s.pgInflight.mu.Lock()
	writing := len(s.pgInflight.segs)
	s.pgInflight.mu.Unlock()
	if writing > 0 {
		return fmt.Errorf("%w: %d paged appends in progress", ErrNotExportable, writing)
	}
	var paged int64
	for _, q := range qs {
		if pg := q.pg(); pg != nil {
			paged += pg.pendingBytes.Load()
		}
	}
	if limit := s.MaxExportPaged(); paged > limit {
		return fmt.Errorf("%w: the queues hold %d bytes of paged messages, more than the %d a scale-down reads into memory (half of global-max-size)",
			ErrNotExportable, paged, limit)
	}
	for _, q := range qs {
		if err := s.depageAll(q); err != nil {
			return err
		}
		var why string
		q.mu.Lock()
		q.msgs.filter(func(r *ref) (keep, stop bool) {
			if r.msg.large != nil {
				why = "large messages"
			}
			return true, why != ""
		})
		q.mu.Unlock()
		if why != "" {
			return fmt.Errorf("%w: queue %q holds %s", ErrNotExportable, q.name, why)
		}
	}
	return nil
}

// depageAll reads every paged message of q into memory (a frozen server's
// export); the pager serves q meanwhile under the same lock.
func (s *Server) depageAll(q *Queue) error {
	pg := q.pg()
	if pg == nil || s.pages == nil {
		return nil
	}
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.dropped {
		return nil
	}
	for pg.pending.Load() > 0 || pg.readPos.Seq != 0 && posLess(pg.readPos, s.pageBoot) {
		before, at := pg.pending.Load(), pg.readPos
		if _, err := s.depage(q, pg, 1<<62); err != nil {
			s.log.Error("reading paged messages failed: halting", "queue", q.name, "err", err)
			return fmt.Errorf("server: scale-down: %w", s.halt(fmt.Errorf("paging journal: %w", err)))
		}
		if pg.pending.Load() == before && pg.readPos == at {
			break // nothing more can be read now
		}
	}
	if n := pg.pending.Load(); n > 0 {
		return fmt.Errorf("%w: queue %q has %d paged messages behind a transaction not decided yet", ErrNotExportable, q.name, n)
	}
	return nil
}

// AckExported acknowledges exported messages (the target holds them
// durably) in one synced append; they leave this broker.
func (s *Server) AckExported(ctx context.Context, ids []uint64) error {
	if err := s.checkUsable(); err != nil {
		return err
	}
	s.cluster.mu.Lock()
	var refs []*ref
	for _, id := range ids {
		refs = append(refs, s.cluster.exported[id]...)
	}
	s.cluster.mu.Unlock()
	s.storeMu.Lock()
	ch, err := s.ackRefsLocked(refs)
	s.storeMu.Unlock()
	if err != nil {
		s.storageError(err)
		return fmt.Errorf("server: acking moved messages: %w", err)
	}
	select {
	case err = <-ch:
	case <-ctx.Done():
		return fmt.Errorf("server: acking moved messages: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("server: acking moved messages: %w", s.halt(err))
	}
	s.cluster.mu.Lock()
	for _, id := range ids {
		delete(s.cluster.exported, id)
	}
	s.cluster.mu.Unlock()
	for _, r := range refs {
		r.q.acked.Add(1)
		s.release(r) // their memory (global-max-size, max-size-bytes)
	}
	s.ctr.acks.Add(uint64(len(refs)))
	return nil
}

// ackRefsLocked appends the acks of refs (the durable ones) in one
// synced append and returns where its outcome arrives (at once when there
// is nothing to write); a refused append takes the acks back. Caller
// holds storeMu. Moved and forwarded messages leave this broker with it.
func (s *Server) ackRefsLocked(refs []*ref) (<-chan error, error) {
	var entries []journal.Entry
	for _, r := range refs {
		if r.durable() {
			entries = append(entries, s.ackEntryLocked(r))
		}
	}
	ch := make(chan error, 1)
	if len(entries) == 0 {
		ch <- nil
		return ch, nil
	}
	err := s.msgs.Append(entries, true, func(err error) { ch <- err })
	if err != nil {
		s.unackEntriesLocked(refs) // the acks were not appended
	}
	return ch, err
}

// RestoreExported puts the exported messages not acked back in their
// queues (in queue order).
func (s *Server) RestoreExported() {
	s.cluster.mu.Lock()
	byQueue := map[*Queue][]*ref{}
	for _, refs := range s.cluster.exported {
		for _, r := range refs {
			byQueue[r.q] = append(byQueue[r.q], r)
		}
	}
	s.cluster.exported = nil
	s.cluster.mu.Unlock()
	for q, refs := range byQueue {
		if err := s.putBack(q, refs); err != nil {
			s.log.Error("putting back messages a scale-down did not move", "queue", q.name, "err", err)
		}
	}
}

// ExportDuplicateIDs returns every address's duplicate-ID cache, oldest
// first.
func (s *Server) ExportDuplicateIDs() []wire.ClusterAddress {
	s.mu.RLock()
	as := make([]*address, 0, len(s.addresses))
	for _, a := range s.addresses {
		as = append(as, a)
	}
	s.mu.RUnlock()
	slices.SortFunc(as, func(a, b *address) int { return strings.Compare(a.name, b.name) })
	var out []wire.ClusterAddress
	for _, a := range as {
		a.mu.Lock()
		ids := a.dup.ids()
		var flags uint8
		if a.anycast {
			flags |= wire.ClusterAnycast
		}
		if a.multicast {
			flags |= wire.ClusterMulticast
		}
		if a.autoCreated {
			flags |= wire.ClusterAutoCreated
		}
		a.mu.Unlock()
		if len(ids) > 0 {
			out = append(out, wire.ClusterAddress{Name: a.name, Flags: flags, IDs: ids})
		}
	}
	return out
}

// ids returns the IDs in the window, oldest first, without those whose
// send failed (an ID added again later is listed at its later place).
// Caller holds the address's mutex.
func (c *dupCache) ids() []string {
	n := c.len()
	out := make([]string, 0, n)
	start := 0
	if c.full {
		start = c.next
	}
	for i := 0; i < n; i++ {
		pos := (start + i) % len(c.ring)
		sl := &c.ring[pos]
		if sl.e == nil {
			continue
		}
		if j := c.find(sl.id, sl.hash); j < 0 || int(c.index[j].pos) != pos+1 {
			continue
		}
		c.waitMu.Lock()
		failed := !sl.e.pending && sl.e.err != nil
		c.waitMu.Unlock()
		if !failed {
			out = append(out, sl.id)
		}
	}
	return out
}

// DropMovedMessages acks, in one synced append, every message with an ID
// up to upTo: a target holds them (an interrupted scale-down's). It is
// for a server that does not serve yet (no consumer holds a delivery);
// it returns how many messages it acked.
func (s *Server) DropMovedMessages(ctx context.Context, upTo uint64) (int, error) {
	if err := s.checkUsable(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	qs := make([]*Queue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.mu.RUnlock()
	var refs []*ref
	msgs := map[*Message]bool{}
	for _, q := range qs {
		q.mu.Lock()
		var keep []*ref
		for q.msgs.len() > 0 {
			r := q.msgs.popFront()
			if r.msg.ID <= upTo {
				refs = append(refs, r)
				msgs[r.msg] = true
			} else {
				keep = append(keep, r)
			}
		}
		for _, r := range keep {
			q.msgs.pushBack(r)
		}
		q.mu.Unlock()
	}
	if len(refs) == 0 {
		return 0, nil
	}
	s.storeMu.Lock()
	var entries []journal.Entry
	for _, r := range refs {
		if r.durable() {
			entries = append(entries, s.ackEntryLocked(r))
		}
	}
	ch := make(chan error, 1)
	var err error
	if len(entries) > 0 {
		err = s.msgs.Append(entries, true, func(err error) { ch <- err })
	} else {
		ch <- nil
	}
	s.storeMu.Unlock()
	if err != nil {
		s.storageError(err)
		return 0, fmt.Errorf("server: acking moved messages: %w", err)
	}
	select {
	case err = <-ch:
	case <-ctx.Done():
		return 0, fmt.Errorf("server: acking moved messages: %w", ctx.Err())
	}
	if err != nil {
		return 0, fmt.Errorf("server: acking moved messages: %w", s.halt(err))
	}
	for _, r := range refs {
		r.q.acked.Add(1)
		s.release(r)
	}
	return len(msgs), nil
}
