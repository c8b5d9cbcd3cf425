package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
)

// Paging (issue 18). An address whose messages take more memory than its
// max-size-bytes, or when all addresses together take more than
// global-max-size, applies its address-full-policy: PAGE writes new
// messages to the paging journal instead of keeping them in memory, BLOCK
// holds new sends (neither stored nor answered) until memory frees, FAIL
// refuses them (ErrAddressFull), DROP drops them (answered as stored, as
// Artemis does).
//
// The paging journal is a journal.FileJournal in log mode: part of the
// store like the two others (on the shared store under its lock and
// fencing, replicated with them through the same record stream and
// completion gate, read by `tandem data verify|print`), but holding no
// record in memory: a paged message is an Add whose position (segment,
// offset) the queues track.
//
//   - A paged send is one append to the paging journal (the message with
//     the IDs of the queues it was routed to); it is confirmed, and counts
//     in its queues' depth (pageState.pending), once that append is
//     durable (and replicated). Its duplicate ID goes to the messages
//     journal after that (not synced: the paged record holds it too, and
//     a load takes both).
//   - A transaction's paged messages carry its ID (Entry.TxID) and count
//     only once a RecPageTx record of the transaction is in the messages
//     journal, appended with the transaction's other records after the
//     paged ones are durable. A reader stops at a paged record of a
//     transaction still in flight.
//   - Depaging (the pager goroutine) reads a queue's paged messages in
//     order into memory, a bounded read-ahead at a time, while the queue
//     has consumers. An ack of a depaged message is a RecPageAck record; a
//     queue's cursor (RecPageCursor) moves past its acknowledged messages
//     in one append that deletes their acks: after a crash nothing acked
//     is delivered again and nothing unacked is lost.
//   - The paging journal's floor (below it segments are reclaimed) is the
//     oldest cursor of a queue that still has paged messages, and never
//     past a paged append not yet confirmed.
//   - Once an address pages, every new message of it is paged until its
//     queues have read every paged message (and memory is below the
//     limit): order is kept.

// ErrAddressFull is returned for a send to a full address whose
// address-full-policy is FAIL.
var ErrAddressFull = errors.New("server: address full")

// PageLog is the paging journal: a journal.FileJournal opened in log mode
// (journal.Options.Log).
type PageLog interface {
	journal.Journal
	LoadLog(ctx context.Context, visit journal.LogVisitor) (*journal.LoadResult, error)
	NewLogReader(from journal.Position) *journal.LogReader
	SetFloor(seq uint64) error
	DurableEnd() journal.Position
	AppendSeq() uint64
	Oldest() uint64
	SegmentSize() int64
	AppendPos(entries []journal.Entry, sync bool, done func(error)) (journal.Position, error)
}

// refOverhead is what a message in memory costs beyond Message.Size: the
// message and reference structures, the queue's slot.
const refOverhead = 256

// memSize is what m counts against max-size-bytes and global-max-size.
func (m *Message) memSize() int64 { return int64(m.Size()) + refOverhead }

// charge counts n new references to m held in memory; the first charges
// m's memory to address a.
func (s *Server) charge(a *address, m *Message, n int) {
	if n <= 0 {
		return
	}
	if m.refs.Load() == 0 {
		m.acct = a
	}
	if m.refs.Add(int32(n)) == int32(n) {
		sz := m.memSize()
		a.mem.Add(sz)
		s.mem.Add(sz)
		if m.large != nil {
			s.holdLarge(m.large)
		}
	}
}

// release uncounts a reference that leaves memory for good (acked,
// dropped with its queue, moved to a dead-letter or expiry address);
// the last one frees the message's memory, which may let blocked sends
// in.
func (s *Server) release(r *ref) {
	m := r.msg
	if r.pt != nil {
		r.pt.acked.Store(true) // an ack record, when one is due, was noted first
		if pg := r.q.pg(); pg != nil {
			pg.inMem.Add(-m.memSize())
		}
		s.pager.want(r.q)
	}
	if m.refs.Add(-1) == 0 && m.acct != nil {
		sz := m.memSize()
		m.acct.mem.Add(-sz)
		s.mem.Add(-sz)
		if m.large != nil {
			s.unholdLarge(m.large)
		}
		if s.blocked.Load() > 0 {
			s.pager.kick()
		}
	}
}

// releaseAll releases refs.
func (s *Server) releaseAll(refs []*ref) {
	for _, r := range refs {
		s.release(r)
	}
}

// fullLocked reports whether a (or the broker) holds as much in memory as
// it may. Caller holds a.mu.
func (s *Server) fullLocked(a *address) bool {
	if max := a.policy.MaxSizeBytes; max >= 0 && a.mem.Load() >= max {
		return true
	}
	return s.globalMax > 0 && s.mem.Load() >= s.globalMax
}

// admission is what a send to an address gets.
type admission uint8

const (
	admitMemory admission = iota
	admitPage
	admitBlock
	admitFail
	admitDrop
)

// admitLocked decides where a message sent to a goes (see the file's
// comment). resumed: a parked send taking its turn. Caller holds a.mu.
func (s *Server) admitLocked(a *address, resumed bool) admission {
	if len(a.parked) > 0 && !resumed {
		return admitBlock // behind the sends already waiting
	}
	if a.paging {
		if !s.leavePagingLocked(a) {
			return admitPage
		}
	}
	if !s.fullLocked(a) {
		return admitMemory
	}
	switch a.policy.AddressFullPolicy {
	case config.FullPage:
		if s.pages == nil {
			return admitBlock // no paging journal (no file store): hold sends instead
		}
		a.paging = true
		s.log.Info("address full: paging", "address", a.name, "memory", a.mem.Load(), "max_size_bytes", a.policy.MaxSizeBytes,
			"global_memory", s.mem.Load(), "global_max_size", s.globalMax)
		return admitPage
	case config.FullFail:
		return admitFail
	case config.FullDrop:
		return admitDrop
	}
	return admitBlock
}

// leavePagingLocked ends a's paging when nothing of it is paged any more,
// no paged send is in flight, and it is not full. Caller holds a.mu.
func (s *Server) leavePagingLocked(a *address) bool {
	if a.pagedInflight.Load() > 0 || s.fullLocked(a) {
		return false
	}
	for _, q := range a.queues {
		if pg := q.pg(); pg != nil && pg.pending.Load() > 0 {
			return false
		}
	}
	a.paging = false
	s.log.Info("address no longer paging", "address", a.name)
	return true
}

// pageState is a queue's paged messages (issue 18). pending and inMem are
// atomic; the rest belongs to the pager goroutine (and to load, before
// it starts).
type pageState struct {
	// pending counts the queue's confirmed paged messages not read into
	// memory yet (part of its depth), pendingBytes their records' bytes.
	pending, pendingBytes atomic.Int64
	// inMem is the memory of depaged messages not acknowledged yet (the
	// read-ahead).
	inMem atomic.Int64

	// mu guards the rest: the pager holds it while it serves the queue, a
	// queue's deletion to drop it (dropped: nothing more is read or
	// written for the queue). Taken before storeMu.
	mu      sync.Mutex
	dropped bool

	// readPos is where the next read starts; reader reads from it.
	readPos journal.Position
	reader  *journal.LogReader
	// resume is the queue's durable cursor (RecPageCursor cursorRec):
	// every paged message of the queue before it is acknowledged.
	resume    journal.Position
	cursorRec uint64
	// track are the paged messages read, in order, that the cursor has
	// not passed; loadAcks the acks found at load, by message ID, not met
	// by a read yet.
	track    []*pageTrack
	loadAcks map[uint64]uint64
}

// pageTrack is one paged message a queue read: its record's position and
// whether it is acknowledged (ackRec: its RecPageAck record, 0 when none
// is needed: not durable, or skipped).
type pageTrack struct {
	id     uint64
	pos    journal.Position
	ackRec atomic.Uint64
	acked  atomic.Bool
}

// pg returns q's page state, nil until something of q was paged.
func (q *Queue) pg() *pageState { return q.pgp.Load() }

// pageStateOf returns q's page state, creating it. A new one reads from
// the paging journal's durable end: what is appended before it cannot be
// the queue's (routed before it existed).
func (q *Queue) pageStateOf(pages PageLog) *pageState {
	if pg := q.pgp.Load(); pg != nil {
		return pg
	}
	pg := &pageState{}
	if pages != nil {
		pg.readPos = pages.DurableEnd()
		pg.resume = pg.readPos
	}
	q.pgp.CompareAndSwap(nil, pg)
	return q.pgp.Load()
}

// pagedDepth is what q's depth counts beyond memory.
func (q *Queue) pagedDepth() int64 {
	if pg := q.pg(); pg != nil {
		return pg.pending.Load()
	}
	return 0
}

// pageTx is a transaction with paged messages (Entry.TxID).
type pageTx struct {
	state   uint8  // txInflight, txCommitted, txRolledBack
	seq0    uint64 // the paging journal's segment when its records were appended
	lastSeq uint64 // the segment its records end in (once committed)
	recID   uint64 // its RecPageTx record (once committed)
}

const (
	txInflight uint8 = iota
	txCommitted
	txRolledBack
)

// pageInflight tracks paged appends not completed yet, in append order:
// the segment each was appended at or after. The floor never passes the
// oldest.
type pageInflight struct {
	mu   sync.Mutex
	segs []uint64
}

// pageAppend appends entries to the paging journal (synced) and calls done
// with the outcome; the floor stays at or below their segment until done.
// The large bodies of the paged messages (one per entry, nil for others)
// are held while the record is before the paging journal's floor.
func (s *Server) pageAppend(entries []journal.Entry, larges []*largeBody, done func(error)) error {
	s.pgAppendMu.Lock()
	defer s.pgAppendMu.Unlock()
	pi := &s.pgInflight
	pi.mu.Lock()
	pi.segs = append(pi.segs, s.pages.AppendSeq())
	pi.mu.Unlock()
	pos, err := s.pages.AppendPos(entries, true, func(err error) {
		pi.mu.Lock()
		pi.segs = pi.segs[1:] // completions run in append order
		pi.mu.Unlock()
		done(err)
	})
	if err != nil {
		pi.mu.Lock()
		pi.segs = pi.segs[:len(pi.segs)-1]
		pi.mu.Unlock()
		return err
	}
	for _, lb := range larges {
		if lb != nil {
			s.notePagedLarge(pos, lb)
		}
	}
	return nil
}

// sendPagedLocked pages m, routed to qs (the memory path's sendEntries
// did nothing yet): one append to the paging journal; its duplicate ID
// is registered as a stored one's and journaled once the message is
// durable. Caller holds a.mu; it returns with it held.
func (s *Server) sendPagedLocked(a *address, m *Message, qs []*Queue, done func(error)) {
	m.ID = s.nextID()
	data := encodePaged(m, qs)
	size := int64(len(data))
	dd := s.dupDeferredLocked(a, m)
	for _, q := range qs {
		q.pageStateOf(s.pages)
	}
	a.pagedInflight.Add(1)
	err := s.pageAppend([]journal.Entry{{Kind: journal.KindAdd, ID: m.ID, Type: RecPagedMessage, Data: data}}, []*largeBody{m.large}, func(err error) {
		if err != nil {
			err = s.halt(err)
		} else {
			for _, q := range qs {
				q.pagedConfirmed(size)
			}
			s.ctr.in.Add(1)
			s.ctr.paged.Add(1)
			if dd != nil {
				dd.record(s)
			}
		}
		a.pagedInflight.Add(-1)
		if dd != nil {
			a.dup.complete(dd.de, err)
		}
		done(err)
	})
	if err != nil {
		a.pagedInflight.Add(-1)
		if dd != nil {
			a.dup.undo(dd.undo)
			a.dup.complete(dd.de, err)
		}
		s.storageError(err)
		done(err)
	}
}

// pagedConfirmed counts a confirmed paged message of size bytes in q.
func (q *Queue) pagedConfirmed(size int64) {
	pg := q.pg()
	pg.pendingBytes.Add(size)
	pg.pending.Add(1)
	q.enqueued.Add(1)
	if q.srv != nil {
		q.srv.pager.want(q)
	}
}

// pager is the goroutine that depages, moves the queues' cursors, sets
// the paging journal's floor and lets blocked sends in.
type pager struct {
	s    *Server
	mu   sync.Mutex
	qs   map[*Queue]struct{}
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newPager(s *Server) *pager {
	return &pager{s: s, qs: map[*Queue]struct{}{}, wake: make(chan struct{}, 1)}
}

// want asks the pager to look at q.
func (p *pager) want(q *Queue) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.qs[q] = struct{}{}
	p.mu.Unlock()
	p.kick()
}

// kick wakes the pager.
func (p *pager) kick() {
	if p == nil {
		return
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pager) start() {
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	go p.run()
}

// close stops the pager and waits for it.
func (p *pager) close() {
	if p == nil || p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
}

func (p *pager) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			p.closeReaders()
			return
		case <-p.wake:
		}
		p.mu.Lock()
		qs := make([]*Queue, 0, len(p.qs))
		for q := range p.qs {
			qs = append(qs, q)
		}
		clear(p.qs)
		p.mu.Unlock()
		more := false
		for _, q := range qs {
			if p.serve(q) {
				more = true
				p.mu.Lock()
				p.qs[q] = struct{}{}
				p.mu.Unlock()
			}
		}
		p.s.unblock()
		if p.s.pages != nil {
			p.s.updateFloor()
		}
		p.s.updateLargeFloor(p.s.pageFloor)
		if more {
			p.kick()
		}
	}
}

// closeReaders closes the queues' readers (the pager owns them).
func (p *pager) closeReaders() {
	p.s.mu.RLock()
	defer p.s.mu.RUnlock()
	for _, q := range p.s.queues {
		if pg := q.pg(); pg != nil {
			pg.mu.Lock()
			if pg.reader != nil {
				pg.reader.Close()
				pg.reader = nil
			}
			pg.mu.Unlock()
		}
	}
}

// Depaging bounds.
const (
	// depageBatch is the most messages one step reads for a queue.
	depageBatch = 1000
	// depageLowWater: a queue is read into while fewer messages than this
	// wait in its memory.
	depageLowWater = 2 * depageBatch
	// cursorEvery is how many passed messages make the cursor be
	// written at once (else at a segment change or when the queue has
	// nothing more paged).
	cursorEvery = 256
)

// readAhead is the most memory a queue's depaged, unacknowledged messages
// take: twice a page segment (Artemis's max-read-page-bytes default),
// less when global-max-size is small.
func (s *Server) readAhead() int64 {
	ra := int64(2 * config.DefaultPageSizeBytes)
	if s.pages != nil {
		ra = 2 * s.pages.SegmentSize()
	}
	if s.globalMax > 0 {
		ra = min(ra, max(s.globalMax/4, 1<<20))
	}
	return ra
}

// serve depages into q and moves its cursor; it reports whether q wants
// more work at once (its step stopped at a budget, not for lack of
// anything to do).
func (p *pager) serve(q *Queue) bool {
	s := p.s
	pg := q.pg()
	if pg == nil || s.pages == nil {
		return false
	}
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.dropped {
		if pg.reader != nil {
			pg.reader.Close()
			pg.reader = nil
		}
		return false
	}
	q.mu.Lock()
	deleted := q.deleted || q.deleting
	want := !deleted && !q.paused && len(q.consumers) > 0 && q.msgs.len() < depageLowWater
	q.mu.Unlock()
	if deleted {
		if pg.reader != nil {
			pg.reader.Close()
			pg.reader = nil
		}
		return false
	}
	more := false
	if want && pg.inMem.Load() < s.readAhead() && (pg.pending.Load() > 0 || pg.readPos.Seq != 0 && posLess(pg.readPos, s.pageBoot)) {
		var err error
		more, err = s.depage(q, pg, s.readAhead()-pg.inMem.Load())
		if err != nil {
			s.log.Error("reading paged messages failed: halting", "queue", q.name, "err", err)
			s.halt(fmt.Errorf("paging journal: %w", err))
			return false
		}
	}
	s.advanceCursor(q, pg, false)
	return more
}

// depage reads up to depageBatch of q's paged messages, at most budget
// bytes of records (at least one record), into memory.
func (s *Server) depage(q *Queue, pg *pageState, budget int64) (more bool, err error) {
	if pg.reader == nil {
		from := pg.readPos
		if oldest := s.pages.Oldest(); from.Seq < oldest {
			from = journal.Position{Seq: oldest}
		}
		pg.reader = s.pages.NewLogReader(from)
	}
	var refs []*ref
	var tracks []*pageTrack
	var bytes, consumed int64
	var e journal.Entry
	var qbuf []uint64
	stopped := false
	for len(refs) < depageBatch && bytes < budget && !stopped {
		at := pg.reader.Position()
		// Past the confirmed messages only what earlier boots left (all
		// decided) is read: a later record may be durable and not
		// confirmed yet.
		if pg.pending.Load()-consumed <= 0 && !posLess(at, s.pageBoot) {
			break
		}
		pos, payload, rerr := pg.reader.Next()
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return false, rerr
		}
		it := journal.NewEntryIter(payload)
		var recTracks []*pageTrack
		var recRefs []*ref
		var recBytes int64
		for {
			ok, ierr := it.Next(&e)
			if ierr != nil {
				return false, ierr
			}
			if !ok {
				break
			}
			h, herr := decodePagedHeader(e.Data, qbuf)
			if herr != nil {
				return false, fmt.Errorf("%v: record %d: %w", pos, e.ID, herr)
			}
			qbuf = h.queues
			if !h.has(q.id) {
				continue
			}
			if e.TxID != 0 {
				switch s.pageTxState(e.TxID) {
				case txInflight:
					stopped = true // wait for its commit: read it again then
				case txRolledBack:
					t := &pageTrack{id: e.ID, pos: pos}
					t.acked.Store(true)
					recTracks = append(recTracks, t)
					continue
				}
				if stopped {
					break
				}
			}
			t := &pageTrack{id: e.ID, pos: pos}
			if rec, ok := pg.loadAcks[e.ID]; ok {
				delete(pg.loadAcks, e.ID)
				t.ackRec.Store(rec)
				t.acked.Store(true)
				recTracks = append(recTracks, t)
				continue
			}
			durable := len(h.msg) > 1 && h.msg[1]&1 != 0
			if !durable && posLess(pos, s.pageBoot) {
				t.acked.Store(true) // a non-persistent message of an earlier boot: gone
				recTracks = append(recTracks, t)
				continue
			}
			_, m, derr := decodePaged(e.Data)
			if derr != nil {
				return false, fmt.Errorf("%v: record %d: %w", pos, e.ID, derr)
			}
			m.ID = e.ID
			recTracks = append(recTracks, t)
			recRefs = append(recRefs, &ref{msg: m, q: q, pt: t})
			recBytes += int64(len(e.Data))
		}
		if stopped {
			// Read the record again once its transaction is decided.
			pg.reader.Close()
			pg.reader = nil
			pg.readPos = pos
			break
		}
		tracks = append(tracks, recTracks...)
		refs = append(refs, recRefs...)
		consumed += int64(len(recRefs))
		bytes += recBytes
		pg.readPos = pg.reader.Position()
	}
	for _, r := range refs {
		s.charge(q.addr, r.msg, 1)
		pg.inMem.Add(r.msg.memSize())
	}
	pg.track = append(pg.track, tracks...)
	q.mu.Lock()
	if q.deleted || q.deleting {
		q.mu.Unlock()
		pg.pending.Add(-consumed)
		pg.pendingBytes.Add(-bytes)
		s.releaseAll(refs)
		return false, nil
	}
	for _, r := range refs {
		q.seq++
		r.seq = q.seq
		q.msgs.pushBack(r)
	}
	pg.pending.Add(-consumed)
	pg.pendingBytes.Add(-bytes)
	q.mu.Unlock()
	if len(refs) > 0 {
		q.wake()
	}
	more = !stopped && (len(refs) == depageBatch || bytes >= budget) && pg.pending.Load() > 0
	return more, nil
}

// pageTxState returns the state of a paged transaction: one unknown
// (an earlier boot's that never committed) is rolled back.
func (s *Server) pageTxState(id uint64) uint8 {
	s.pgTxMu.Lock()
	defer s.pgTxMu.Unlock()
	if tx := s.pgTx[id]; tx != nil {
		return tx.state
	}
	return txRolledBack
}

// advanceCursor writes q's cursor past its acknowledged paged messages
// (deleting their ack records in the same append) when enough passed, or
// the segment changed, or nothing of q is paged any more (force: always
// when it moved).
func (s *Server) advanceCursor(q *Queue, pg *pageState, force bool) {
	u := 0
	for u < len(pg.track) && pg.track[u].acked.Load() {
		u++
	}
	resume := pg.readPos
	if u < len(pg.track) {
		resume = pg.track[u].pos
	}
	k := 0
	for k < len(pg.track) && posLess(pg.track[k].pos, resume) {
		k++
	}
	if resume == pg.resume && k == 0 || posLess(resume, pg.resume) {
		return
	}
	idle := u == len(pg.track) && pg.pending.Load() == 0
	if !q.durable { // nothing of it is journaled: the cursor lives in memory
		pg.resume = resume
		clear(pg.track[:k])
		pg.track = pg.track[k:]
		return
	}
	if !force && !idle && resume.Seq == pg.resume.Seq && k < cursorEvery {
		return // the passed entries stay: their acks go when it is written
	}
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	id := s.nextID()
	entries := []journal.Entry{{Kind: journal.KindAdd, ID: id, Type: RecPageCursor, Data: encodePageCursor(q.id, resume)}}
	if pg.cursorRec != 0 {
		entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: pg.cursorRec})
	}
	for _, t := range pg.track[:k] {
		if rec := t.ackRec.Load(); rec != 0 {
			entries = append(entries, journal.Entry{Kind: journal.KindDelete, ID: rec})
		}
	}
	if err := s.msgs.Append(entries, false, func(err error) {
		if err != nil {
			s.halt(err)
		}
	}); err != nil {
		s.storageError(err)
		s.log.Warn("page cursor not written", "queue", q.name, "err", err)
		return
	}
	pg.resume, pg.cursorRec = resume, id
	clear(pg.track[:k])
	pg.track = pg.track[k:]
}

// updateFloor lets the paging journal reclaim the segments no queue needs
// any more, and deletes the transaction records they held.
func (s *Server) updateFloor() {
	floor := s.pages.DurableEnd().Seq
	s.pgInflight.mu.Lock()
	if len(s.pgInflight.segs) > 0 {
		floor = min(floor, s.pgInflight.segs[0])
	}
	s.pgInflight.mu.Unlock()
	s.pgTxMu.Lock()
	for _, tx := range s.pgTx {
		if tx.state == txInflight {
			floor = min(floor, tx.seq0)
		}
	}
	s.pgTxMu.Unlock()
	s.mu.RLock()
	for _, q := range s.queues {
		pg := q.pg()
		if pg == nil {
			continue
		}
		pg.mu.Lock()
		if !pg.dropped && (pg.pending.Load() > 0 || len(pg.track) > 0 || len(pg.loadAcks) > 0) {
			floor = min(floor, pg.resume.Seq, pg.readPos.Seq)
		}
		pg.mu.Unlock()
	}
	s.mu.RUnlock()
	if floor <= s.pageFloor {
		return
	}
	s.pageFloor = floor
	if err := s.pages.SetFloor(floor); err != nil {
		s.storageError(err)
		return
	}
	// Transactions whose paged records are all below the floor need no
	// record any more.
	var del []journal.Entry
	s.pgTxMu.Lock()
	for id, tx := range s.pgTx {
		if tx.state != txInflight && tx.lastSeq < floor {
			if tx.recID != 0 {
				del = append(del, journal.Entry{Kind: journal.KindDelete, ID: tx.recID})
			}
			delete(s.pgTx, id)
		}
	}
	s.pgTxMu.Unlock()
	if len(del) > 0 {
		s.storeMu.Lock()
		err := s.msgs.Append(del, false, func(err error) {
			if err != nil {
				s.halt(err)
			}
		})
		s.storeMu.Unlock()
		s.storageError(err)
	}
}

// parkedSend is a send (or a commit) held by BLOCK: retry runs it again
// (with resumed set), fail ends it when its connection went away.
type parkedSend struct {
	ctx   context.Context
	retry func()
	fail  func(error)
}

// parkLocked holds a send on a: it is neither stored nor answered until
// memory frees (unblock) or its context ends. Caller holds a.mu.
func (s *Server) parkLocked(a *address, p parkedSend, front bool) {
	if front {
		a.parked = append([]parkedSend{p}, a.parked...)
	} else {
		a.parked = append(a.parked, p)
	}
	if len(a.parked) == 1 {
		s.blockedMu.Lock()
		s.blockedAddrs[a] = struct{}{}
		s.blockedMu.Unlock()
		s.blocked.Add(1)
		s.log.Info("address full: blocking sends", "address", a.name, "memory", a.mem.Load(), "global_memory", s.mem.Load())
	}
	s.ctr.blocked.Add(1)
	s.pager.kick() // memory may have freed meanwhile
}

// unblock lets held sends in, in order, while their address has room; a
// send whose connection went away fails.
func (s *Server) unblock() {
	if s.blocked.Load() == 0 {
		return
	}
	s.blockedMu.Lock()
	as := make([]*address, 0, len(s.blockedAddrs))
	for a := range s.blockedAddrs {
		as = append(as, a)
	}
	s.blockedMu.Unlock()
	for _, a := range as {
		for {
			a.mu.Lock()
			if len(a.parked) == 0 {
				a.mu.Unlock()
				break
			}
			p := a.parked[0]
			if err := p.ctx.Err(); err == nil && s.fullLocked(a) && s.checkUsable() == nil {
				a.mu.Unlock()
				break
			}
			a.parked[0] = parkedSend{}
			a.parked = a.parked[1:]
			if len(a.parked) == 0 {
				a.parked = nil
				s.blockedMu.Lock()
				delete(s.blockedAddrs, a)
				s.blockedMu.Unlock()
				s.blocked.Add(-1)
			}
			a.mu.Unlock()
			if err := p.ctx.Err(); err != nil {
				p.fail(fmt.Errorf("%w: the sender went away while its address was full", ErrClosed))
				continue
			}
			if err := s.checkUsable(); err != nil {
				p.fail(err)
				continue
			}
			// A held send taking its turn is a client's operation: a
			// freeze (scale-down) waits for it or it fails.
			if !s.tryEnter() {
				p.fail(fmt.Errorf("%w: its address was full", ErrFrozen))
				continue
			}
			p.retry()
			s.exit()
		}
	}
}

// commitPaged commits a transaction that pages (commitResumable): its
// paged messages (pageEntries, marked with txID) go to the paging journal;
// once they are durable, the rest (entries: its messages kept in memory;
// its acks, decided then under storeMu; its duplicate IDs; the RecPageTx
// record that makes the paged ones count) in one append to the messages
// journal. A crash between the two leaves paged records of a transaction
// without its record: a load drops them. Caller holds the addresses'
// mutexes (it undoes the duplicate IDs under them when refused).
func (s *Server) commitPaged(txID uint64, pageEntries, entries []journal.Entry, larges []*largeBody, acks []*ref, ddups []*deferredDup,
	paddrs []*address, pqs []*Queue, unack func([]*ref), finish func(error)) {
	tx := &pageTx{state: txInflight, seq0: s.pages.AppendSeq()}
	s.pgTxMu.Lock()
	s.pgTx[txID] = tx
	s.pgTxMu.Unlock()
	for _, a := range paddrs {
		a.pagedInflight.Add(1)
	}
	end := func(state uint8, lastSeq, recID uint64) {
		s.pgTxMu.Lock()
		tx.state, tx.lastSeq, tx.recID = state, lastSeq, recID
		if state == txRolledBack {
			delete(s.pgTx, txID)
		}
		s.pgTxMu.Unlock()
		for _, a := range paddrs {
			a.pagedInflight.Add(-1)
		}
		// A reader that stopped at the transaction's records reads on.
		for _, q := range pqs {
			s.pager.want(q)
		}
	}
	err := s.pageAppend(pageEntries, larges, func(err error) {
		if err != nil {
			err = s.halt(err)
			end(txRolledBack, 0, 0)
			finish(err)
			return
		}
		s.storeMu.Lock()
		es := entries
		for _, r := range acks {
			if r.durable() {
				es = append(es, s.ackEntryLocked(r))
			}
		}
		recID := s.nextID()
		lastSeq := s.pages.DurableEnd().Seq
		es = append(es, journal.Entry{Kind: journal.KindAdd, ID: recID, Type: RecPageTx, Data: encodePageTx(txID, lastSeq)})
		aerr := s.appendWithDups(es, ddups, !s.opts.NoSyncTransactional, func(err error) {
			if err != nil {
				err = s.halt(err)
				end(txRolledBack, 0, 0)
				finish(err)
				return
			}
			finish(nil) // counts the paged messages in their queues first
			end(txCommitted, lastSeq, recID)
		})
		if aerr != nil {
			s.unackEntriesLocked(acks)
		}
		s.storeMu.Unlock()
		if aerr != nil {
			s.storageError(aerr)
			end(txRolledBack, 0, 0)
			unack(acks)
			finish(fmt.Errorf("server: commit: %w", aerr))
		}
	})
	if err != nil {
		for i := len(ddups) - 1; i >= 0; i-- {
			ddups[i].a.dup.undo(ddups[i].undo)
		}
		s.storageError(err)
		end(txRolledBack, 0, 0)
		unack(acks)
		finish(fmt.Errorf("server: commit: %w", err))
	}
}

// appendWithDups appends es to the messages journal with the records of
// the deferred duplicate IDs not evicted meanwhile and their evictions,
// holding their caches' waitMu (see dupCache.appendDeferred).
func (s *Server) appendWithDups(es []journal.Entry, ddups []*deferredDup, sync bool, done func(error)) error {
	var as []*address
	for _, d := range ddups {
		if !slices.Contains(as, d.a) {
			as = append(as, d.a)
		}
	}
	slices.SortFunc(as, func(x, y *address) int { return strings.Compare(x.name, y.name) })
	for _, a := range as {
		a.dup.waitMu.Lock()
	}
	defer func() {
		for _, a := range as {
			a.dup.waitMu.Unlock()
		}
	}()
	var marked []*dupEntry
	for _, d := range ddups {
		if d.de.deferred == deferWaiting {
			d.de.deferred = deferAppended
			marked = append(marked, d.de)
			es = append(es, d.add)
		}
		es = append(es, d.evict...)
	}
	err := s.msgs.Append(es, sync, done)
	if err != nil {
		for _, e := range marked {
			e.deferred = deferWaiting
		}
	}
	return err
}

// pageRecordsOf returns the deletes of a deleted queue's page records
// (its cursor and its acks) and drops its page state: its paged messages
// are not read any more, and no longer hold the floor.
func (s *Server) pageRecordsOf(q *Queue) []journal.Entry {
	pg := q.pg()
	if pg == nil {
		return nil
	}
	pg.mu.Lock()
	defer pg.mu.Unlock()
	pg.dropped = true
	var del []journal.Entry
	if pg.cursorRec != 0 {
		del = append(del, journal.Entry{Kind: journal.KindDelete, ID: pg.cursorRec})
		pg.cursorRec = 0
	}
	for _, t := range pg.track {
		if rec := t.ackRec.Load(); rec != 0 && t.acked.Load() {
			del = append(del, journal.Entry{Kind: journal.KindDelete, ID: rec})
		}
	}
	for _, rec := range pg.loadAcks {
		del = append(del, journal.Entry{Kind: journal.KindDelete, ID: rec})
	}
	pg.track, pg.loadAcks = nil, nil
	pg.pending.Store(0)
	pg.pendingBytes.Store(0)
	s.pager.want(q) // its reader closes
	return del
}

// dropPageState forgets a non-durable queue's page state (it has no page
// records).
func (s *Server) dropPageState(q *Queue) {
	if pg := q.pg(); pg != nil {
		pg.mu.Lock()
		defer pg.mu.Unlock()
		pg.dropped = true
		pg.track, pg.loadAcks = nil, nil
		pg.pending.Store(0)
		pg.pendingBytes.Store(0)
		s.pager.want(q)
	}
}

// failParked ends every held send with err (the broker is closing).
func (s *Server) failParked(err error) {
	s.blockedMu.Lock()
	as := make([]*address, 0, len(s.blockedAddrs))
	for a := range s.blockedAddrs {
		as = append(as, a)
	}
	clear(s.blockedAddrs)
	s.blockedMu.Unlock()
	for _, a := range as {
		a.mu.Lock()
		ps := a.parked
		a.parked = nil
		if len(ps) > 0 {
			s.blocked.Add(-1)
		}
		a.mu.Unlock()
		for _, p := range ps {
			p.fail(err)
		}
	}
}
