package server

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/tandemmq/tandem/journal"
)

// Large messages (issue 18). A body larger than min-large-message-size
// comes in chunks (wire SendLarge and LargeChunk frames) that go, as they
// arrive, to a fourth journal in large-messages-directory, in log mode
// like the paging journal: one record per chunk, whose position the
// message keeps (largeBody). The message itself, with that reference and
// no body, is then stored as any other (in the messages journal, or paged)
// once the last chunk is durable: a send is confirmed when its body and its
// record are durable (and replicated). Nothing holds a whole body in
// memory: a delivery streams it, a chunk at a time, from the journal
// (largeconn.go).
//
// The large-messages journal's floor (below it segments are reclaimed) is
// the oldest first chunk of a large message still held: in memory or in
// the messages journal (holders, counted as messages are charged and
// released), in a paged record not yet passed by the paging journal's
// floor, or of an upload in progress. Chunks of an upload that never
// completed (a connection lost, a crash) are garbage reclaimed with their
// segment once the floor passes it.

// RecLargeChunk is the one record type of the large-messages journal: an
// Add whose ID is the large body's and whose Data is the chunk's bytes.
const RecLargeChunk uint8 = 1

// LargeLog is the large-messages journal: a journal.FileJournal opened in
// log mode.
type LargeLog interface {
	PageLog
	ReadRecord(pos journal.Position) ([]byte, error)
}

// ErrNoLargeStore is returned for a large message on a broker without a
// large-messages journal (PostgreSQL or memory store).
var ErrNoLargeStore = errors.New("server: large messages need the file store (a large-messages-directory)")

// largeBody is a large message's body: where its chunks are.
type largeBody struct {
	id     uint64 // the chunk records' ID
	size   int64
	chunks []journal.Position
	// received counts the bytes of an upload's chunks so far.
	received int64
}

// largeState tracks what holds the large-messages journal's segments.
type largeState struct {
	mu      sync.Mutex
	holders map[uint64]*largeHold // by body ID
	paged   []pagedLarge          // in paging journal order
	uploads map[uint64]uint64     // body ID -> segment its first chunk is in or after
	floor   uint64
}

type largeHold struct {
	first uint64 // segment of its first chunk
	n     int    // messages holding it
}

// pagedLarge is a paged record holding a large body.
type pagedLarge struct {
	page  journal.Position // the paged record
	first uint64
}

func (lb *largeBody) first() uint64 {
	if len(lb.chunks) == 0 {
		return 0
	}
	return lb.chunks[0].Seq
}

// hold counts a message holding lb.
func (s *Server) holdLarge(lb *largeBody) {
	s.lg.mu.Lock()
	h := s.lg.holders[lb.id]
	if h == nil {
		h = &largeHold{first: lb.first()}
		s.lg.holders[lb.id] = h
	}
	h.n++
	s.lg.mu.Unlock()
}

// unholdLarge uncounts a message that held lb.
func (s *Server) unholdLarge(lb *largeBody) {
	s.lg.mu.Lock()
	if h := s.lg.holders[lb.id]; h != nil {
		h.n--
		if h.n <= 0 {
			delete(s.lg.holders, lb.id)
		}
	}
	s.lg.mu.Unlock()
	s.pager.kick() // the floor may move
}

// pagedLarge notes a paged record at page holding lb.
func (s *Server) notePagedLarge(page journal.Position, lb *largeBody) {
	s.lg.mu.Lock()
	s.lg.paged = append(s.lg.paged, pagedLarge{page: page, first: lb.first()})
	s.lg.mu.Unlock()
}

// updateLargeFloor lets the large-messages journal reclaim what nothing
// holds any more (pageFloor: the paging journal's floor).
func (s *Server) updateLargeFloor(pageFloor uint64) {
	if s.large == nil {
		return
	}
	floor := s.large.DurableEnd().Seq
	s.lg.mu.Lock()
	for _, h := range s.lg.holders {
		floor = min(floor, h.first)
	}
	keep := s.lg.paged[:0]
	for _, p := range s.lg.paged {
		if s.pages == nil || p.page.Seq >= pageFloor {
			keep = append(keep, p)
			floor = min(floor, p.first)
		}
	}
	clear(s.lg.paged[len(keep):])
	s.lg.paged = keep
	for _, first := range s.lg.uploads {
		floor = min(floor, first)
	}
	move := floor > s.lg.floor
	if move {
		s.lg.floor = floor
	}
	s.lg.mu.Unlock()
	if move {
		if err := s.large.SetFloor(floor); err != nil {
			s.storageError(err)
		}
	}
}

// beginLarge starts an upload: the ID of its chunk records.
func (s *Server) beginLarge() (uint64, error) {
	if s.large == nil {
		return 0, ErrNoLargeStore
	}
	id := s.nextID()
	s.lg.mu.Lock()
	s.lg.uploads[id] = s.large.AppendSeq()
	s.lg.mu.Unlock()
	return id, nil
}

// endLarge ends an upload (stored, refused or abandoned).
func (s *Server) endLarge(id uint64) {
	s.lg.mu.Lock()
	delete(s.lg.uploads, id)
	s.lg.mu.Unlock()
	s.pager.kick()
}

// appendLargeChunk appends one chunk of upload id; sync for the last one,
// whose done runs once every chunk is durable.
func (s *Server) appendLargeChunk(id uint64, data []byte, sync bool, done func(error)) (journal.Position, error) {
	pos, err := s.large.AppendPos([]journal.Entry{{Kind: journal.KindAdd, ID: id, Type: RecLargeChunk, Data: data}}, sync, done)
	if err != nil {
		s.storageError(err)
	}
	return pos, err
}

// readLargeChunk reads chunk i of lb, checked (its record's checksum, and
// that it is lb's).
func (s *Server) readLargeChunk(lb *largeBody, i int) ([]byte, error) {
	if s.large == nil {
		return nil, ErrNoLargeStore
	}
	p, err := s.large.ReadRecord(lb.chunks[i])
	if err != nil {
		return nil, err
	}
	it := journal.NewEntryIter(p)
	var e journal.Entry
	ok, err := it.Next(&e)
	if err != nil || !ok || e.ID != lb.id || e.Type != RecLargeChunk {
		return nil, fmt.Errorf("large message %d: chunk %d at %v is not its record (entry %d type %d, %v)", lb.id, i, lb.chunks[i], e.ID, e.Type, err)
	}
	return e.Data, nil
}

// LargeBody reads a large message's whole body into memory (AMQP and
// STOMP deliveries, which have no chunked form here); a message that is
// not large returns its Body.
func (s *Server) LargeBody(m *Message) ([]byte, error) {
	lb := m.large
	if lb == nil {
		return m.Body, nil
	}
	out := make([]byte, 0, lb.size)
	for i := range lb.chunks {
		c, err := s.readLargeChunk(lb, i)
		if err != nil {
			return nil, err
		}
		out = append(out, c...)
	}
	if int64(len(out)) != lb.size {
		return nil, fmt.Errorf("large message %d: %d bytes read, %d expected", lb.id, len(out), lb.size)
	}
	return out, nil
}

// LargeChunks returns how many chunk records hold a large message's body
// (0 for others); ReadLargeChunk reads them in order.
func (m *Message) LargeChunks() int {
	if m.large == nil {
		return 0
	}
	return len(m.large.chunks)
}

// ReadLargeChunk reads chunk i of large message m, checked (a delivery
// that streams the body: AMQP). The chunks stay readable while m is held
// by a delivery, as they do for LargeBody.
func (s *Server) ReadLargeChunk(m *Message, i int) ([]byte, error) {
	if m.large == nil || i < 0 || i >= len(m.large.chunks) {
		return nil, fmt.Errorf("%w: message %d has no chunk %d", ErrInvalid, m.ID, i)
	}
	return s.readLargeChunk(m.large, i)
}

// IsLarge reports whether m is a large message (its body in the
// large-messages journal; LargeBody reads it).
func (m *Message) IsLarge() bool { return m.large != nil }

// LargeSize returns a large message's body size (0 for others).
func (m *Message) LargeSize() int64 {
	if m.large == nil {
		return 0
	}
	return m.large.size
}

// checkLargeLoaded refuses a load whose messages reference chunks the
// large-messages journal no longer has (below its oldest segment).
func (s *Server) checkLargeLoaded(lb *largeBody, id uint64) error {
	if s.large == nil {
		return fmt.Errorf("message %d is a large message and this store has no large-messages journal", id)
	}
	if oldest := s.large.Oldest(); slices.ContainsFunc(lb.chunks, func(p journal.Position) bool { return p.Seq < oldest }) {
		return fmt.Errorf("message %d: its large body (chunk records %d) starts in segment %d, below the large-messages journal's oldest %d", id, lb.id, lb.first(), oldest)
	}
	return nil
}

// Materialize returns m with its body in memory: m itself when it is not
// large, else a copy whose Body is read from the large-messages journal
// (AMQP and STOMP deliver large messages whole; the ack still names m.ID).
func (s *Server) Materialize(m *Message) (*Message, error) {
	if m.large == nil {
		return m, nil
	}
	body, err := s.LargeBody(m)
	if err != nil {
		return nil, err
	}
	return &Message{ID: m.ID, Address: m.Address, Routing: m.Routing, Durable: m.Durable, DuplicateID: m.DuplicateID,
		Timestamp: m.Timestamp, Expiration: m.Expiration, Properties: m.Properties, Body: body}, nil
}
