package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// Management operations (issue 16): what `tandem queue|address`, the
// management HTTP API (/api/...) and the console do, beside CreateQueue
// and DeleteQueue (admin.go). Every change is journaled as a client's
// would be: an address's record, a queue's pause (RecQueuePaused), the
// acks of a purge, the add and ack references of a move, all appended
// with fdatasync before the answer; and, like every answer a client takes
// as done, checked against Options.CanAck.

// Errors of management operations.
var (
	// ErrAddressInUse is returned when deleting an address that still has
	// queues bound to it.
	ErrAddressInUse = errors.New("server: address has queues")
	// ErrNoSuchAddress is returned for an address that does not exist.
	ErrNoSuchAddress = errors.New("server: no such address")
	// ErrInvalid is returned for a management request that is well formed
	// but cannot be done (moving a queue's messages to itself, say).
	ErrInvalid = errors.New("server: invalid request")
)

// AddressInfo describes an address for management.
type AddressInfo struct {
	Name        string   `json:"name"`
	Routing     []string `json:"routing"` // "anycast", "multicast" or both
	Queues      []string `json:"queues"`
	AutoCreated bool     `json:"auto_created"`
}

// Addresses describes every address, sorted by name.
func (s *Server) Addresses() []AddressInfo {
	s.mu.RLock()
	as := make([]*address, 0, len(s.addresses))
	for _, a := range s.addresses {
		as = append(as, a)
	}
	s.mu.RUnlock()
	slices.SortFunc(as, func(x, y *address) int { return strings.Compare(x.name, y.name) })
	out := make([]AddressInfo, len(as))
	for i, a := range as {
		out[i] = a.info()
	}
	return out
}

// Address describes the named address.
func (s *Server) Address(name string) (AddressInfo, bool) {
	a := s.lookupAddress(name)
	if a == nil {
		return AddressInfo{}, false
	}
	return a.info(), true
}

func (a *address) info() AddressInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	ai := AddressInfo{Name: a.name, Routing: []string{}, Queues: []string{}, AutoCreated: a.autoCreated}
	if a.anycast {
		ai.Routing = append(ai.Routing, Anycast.String())
	}
	if a.multicast {
		ai.Routing = append(ai.Routing, Multicast.String())
	}
	for _, q := range a.queues {
		ai.Queues = append(ai.Queues, q.name)
	}
	slices.Sort(ai.Queues)
	return ai
}

// CreateAddress creates an address with routing r (or adds r to an
// existing one), as management: whatever the address settings say about
// auto-creation, within MaxAddresses. Its record is durable before it
// returns.
func (s *Server) CreateAddress(ctx context.Context, name string, r Routing) error {
	if name == "" {
		return fmt.Errorf("%w: address name is empty", ErrInvalid)
	}
	if r != Anycast && r != Multicast {
		r = Anycast
	}
	if err := s.checkUsable(); err != nil {
		return err
	}
	s.mu.Lock()
	_, _, err := s.ensureAddressLocked(ctx, name, r, false)
	s.mu.Unlock()
	return s.confirmed(err)
}

// DeleteAddress deletes an address without queues, with its duplicate ID
// cache (whose records go in the same append as the address's).
func (s *Server) DeleteAddress(ctx context.Context, name string) error {
	if err := s.checkUsable(); err != nil {
		return err
	}
	s.mu.Lock()
	a := s.addresses[name]
	if a == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNoSuchAddress, name)
	}
	a.mu.Lock()
	if n := len(a.queues); n > 0 {
		a.mu.Unlock()
		s.mu.Unlock()
		return fmt.Errorf("%w: %q has %d queue(s); delete them first", ErrAddressInUse, name, n)
	}
	a.deleted = true // a send holding it looks the name up again
	var bdel, mdel []journal.Entry
	if a.recID != 0 {
		bdel = append(bdel, journal.Entry{Kind: journal.KindDelete, ID: a.recID})
	}
	for _, id := range a.dup.recIDs() {
		mdel = append(mdel, journal.Entry{Kind: journal.KindDelete, ID: id})
	}
	a.mu.Unlock()
	err := journal.AppendSync(ctx, s.binds, bdel...)
	if err == nil && len(mdel) > 0 {
		err = journal.AppendSync(ctx, s.msgs, mdel...)
	}
	if err != nil {
		s.mu.Unlock()
		s.storageError(err)
		return fmt.Errorf("server: delete address %q: %w", name, err)
	}
	delete(s.addresses, name)
	s.mu.Unlock()
	s.reapMu.Lock()
	delete(s.reapAddrs, a)
	s.reapMu.Unlock()
	s.log.Info("address deleted", "address", name)
	return s.confirmed(nil)
}

// queueNamed returns a queue that is not being deleted.
func (s *Server) queueNamed(name string) (*Queue, error) {
	s.mu.RLock()
	q := s.queues[name]
	s.mu.RUnlock()
	if q == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchQueue, name)
	}
	return q, nil
}

// PurgeQueue removes every message waiting in the queue (not those being
// delivered: they come back if their consumer does not ack them) and
// returns how many it removed. Their acks are durable before it returns.
func (s *Server) PurgeQueue(ctx context.Context, name string) (int, error) {
	if err := s.checkUsable(); err != nil {
		return 0, err
	}
	q, err := s.queueNamed(name)
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	if q.deleted || q.deleting {
		q.mu.Unlock()
		return 0, fmt.Errorf("%w: %q", ErrNoSuchQueue, name)
	}
	refs := make([]*ref, 0, q.msgs.len())
	for q.msgs.len() > 0 {
		refs = append(refs, q.msgs.popFront())
	}
	q.mu.Unlock()
	if err := s.ackDropped(ctx, refs); err != nil {
		return 0, fmt.Errorf("server: purge queue %q: %w", name, err)
	}
	q.acked.Add(uint64(len(refs)))
	n := len(refs)
	// Its paged messages: read into memory a read-ahead at a time, and
	// acked as those were.
	for pg := q.pg(); pg != nil && pg.pending.Load() > 0; {
		before := pg.pending.Load()
		pg.mu.Lock()
		var err error
		if !pg.dropped {
			_, err = s.depage(q, pg, s.readAhead()-pg.inMem.Load())
		}
		pg.mu.Unlock()
		if err != nil {
			return n, fmt.Errorf("server: purge queue %q: reading its paged messages: %w", name, err)
		}
		q.mu.Lock()
		refs = refs[:0]
		for q.msgs.len() > 0 {
			refs = append(refs, q.msgs.popFront())
		}
		q.mu.Unlock()
		if err := s.ackDropped(ctx, refs); err != nil {
			return n, fmt.Errorf("server: purge queue %q: %w", name, err)
		}
		q.acked.Add(uint64(len(refs)))
		n += len(refs)
		if pg.pending.Load() == before {
			break // a transaction still in flight holds the rest
		}
	}
	s.pager.want(q)
	s.log.Info("queue purged", "queue", name, "messages", n)
	return n, s.confirmed(nil)
}

// ackBatch is the most acks ackDropped appends at once.
const ackBatch = 4096

// ackDropped acks refs taken out of their queue, in synced appends of at
// most ackBatch records (each ack is one record: no append needs another).
func (s *Server) ackDropped(ctx context.Context, refs []*ref) error {
	for len(refs) > 0 {
		n := min(len(refs), ackBatch)
		if err := s.ackDroppedBatch(ctx, refs[:n]); err != nil {
			return err
		}
		refs = refs[n:]
	}
	return nil
}

func (s *Server) ackDroppedBatch(ctx context.Context, refs []*ref) error {
	s.storeMu.Lock()
	var entries []journal.Entry
	for _, r := range refs {
		if r.durable() {
			entries = append(entries, s.ackEntryLocked(r))
		}
		s.release(r)
	}
	if len(entries) == 0 {
		s.storeMu.Unlock()
		return nil
	}
	ch := make(chan error, 1)
	err := s.msgs.Append(entries, true, func(err error) { ch <- err })
	s.storeMu.Unlock()
	if err == nil {
		select {
		case err = <-ch:
			if err != nil {
				err = s.halt(err)
			}
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		s.storageError(err)
	}
	return err
}

// PauseQueue stops deliveries from the queue (sends still add to it) until
// ResumeQueue. A durable queue's pause is a record in the bindings journal
// (RecQueuePaused), durable before it returns: it survives a restart and a
// failover. Pausing a paused queue succeeds.
func (s *Server) PauseQueue(ctx context.Context, name string) error {
	return s.setPaused(ctx, name, true)
}

// ResumeQueue resumes deliveries from a paused queue (deleting its pause
// record). Resuming a queue that is not paused succeeds.
func (s *Server) ResumeQueue(ctx context.Context, name string) error {
	return s.setPaused(ctx, name, false)
}

func (s *Server) setPaused(ctx context.Context, name string, pause bool) error {
	if err := s.checkUsable(); err != nil {
		return err
	}
	// Under s.mu, as DeleteQueue decides: the queue is not deleted
	// meanwhile, so its pause record never outlives it.
	s.mu.Lock()
	q := s.queues[name]
	if q == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNoSuchQueue, name)
	}
	q.mu.Lock()
	gone, paused, rec := q.deleted || q.deleting, q.paused, q.pausedRec
	q.mu.Unlock()
	if gone {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNoSuchQueue, name)
	}
	if paused == pause {
		s.mu.Unlock()
		return s.confirmed(nil)
	}
	var newRec uint64
	if q.durable {
		var e journal.Entry
		if pause {
			newRec = s.nextID()
			e = journal.Entry{Kind: journal.KindAdd, ID: newRec, Type: RecQueuePaused, Data: encodeQueueID(q.id)}
		} else {
			e = journal.Entry{Kind: journal.KindDelete, ID: rec}
		}
		if err := journal.AppendSync(ctx, s.binds, e); err != nil {
			s.mu.Unlock()
			s.storageError(err)
			return fmt.Errorf("server: pause queue %q: %w", name, err)
		}
	}
	q.mu.Lock()
	q.paused, q.pausedRec = pause, newRec
	q.mu.Unlock()
	s.mu.Unlock()
	if !pause {
		q.wake()
	}
	s.log.Info("queue paused or resumed", "queue", name, "paused", pause)
	return s.confirmed(nil)
}

// BrowsedMessage is a message as browsing shows it: headers, properties
// and the start of the body, without consuming it.
type BrowsedMessage struct {
	ID          uint64         `json:"id"`
	Address     string         `json:"address"`
	Durable     bool           `json:"durable"`
	DuplicateID string         `json:"duplicate_id,omitempty"`
	Timestamp   string         `json:"timestamp,omitempty"` // RFC 3339, the sender's
	Deliveries  uint32         `json:"delivery_count"`
	Size        int            `json:"body_size"`
	Properties  map[string]any `json:"properties"`
	Body        string         `json:"body_preview"`
	BodyText    bool           `json:"body_text"` // false: Body is hex
}

// BrowseOptions select the messages Browse shows.
type BrowseOptions struct {
	Offset int // messages to skip from the head
	Limit  int // at most this many (0: 20, at most 1000)
	// Preview is how many body bytes to show (0: 256, at most 4096).
	Preview int
}

// Browse returns the messages waiting in the queue from opts.Offset, in
// delivery order, without consuming them (messages being delivered are
// not shown), and how many wait in all.
func (s *Server) Browse(name string, opts BrowseOptions) ([]BrowsedMessage, int, error) {
	q, err := s.queueNamed(name)
	if err != nil {
		return nil, 0, err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, 1000)
	preview := opts.Preview
	if preview <= 0 {
		preview = 256
	}
	preview = min(preview, 4096)
	type item struct {
		m *Message
		n uint32
	}
	var items []item
	q.mu.Lock()
	total := q.msgs.len()
	for i := max(opts.Offset, 0); i < total && len(items) < limit; i++ {
		r := q.msgs.at(i)
		items = append(items, item{r.msg, r.deliveries})
	}
	q.mu.Unlock()
	out := make([]BrowsedMessage, 0, len(items))
	for _, it := range items {
		m := it.m
		bm := BrowsedMessage{ID: m.ID, Address: m.Address, Durable: m.Durable, DuplicateID: m.DuplicateID,
			Deliveries: it.n, Size: len(m.Body), Properties: map[string]any{}}
		if m.Timestamp != 0 {
			bm.Timestamp = time.Unix(0, m.Timestamp).UTC().Format(time.RFC3339Nano)
		}
		for _, p := range m.Properties {
			bm.Properties[p.Key] = propertyValue(p)
		}
		bm.Body, bm.BodyText = preview1(m.Body, preview)
		out = append(out, bm)
	}
	return out, total, nil
}

// propertyValue is a property as JSON shows it (bytes as hex).
func propertyValue(p Property) any {
	if p.Kind == wire.KindBytes {
		return fmt.Sprintf("%x", p.Bytes)
	}
	return p.Value()
}

// preview1 returns the first n bytes of b as text when they are UTF-8,
// else as hex.
func preview1(b []byte, n int) (string, bool) {
	if len(b) > n {
		b = b[:n]
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1] // a rune cut at the end
		}
	}
	if utf8.Valid(b) {
		return string(b), true
	}
	return fmt.Sprintf("%x", b), false
}

// MoveResult is what MoveMessages did.
type MoveResult struct {
	Moved int `json:"moved"`
	// Skipped counts messages left in place because the target queue
	// already holds them (a message sent to a topic sits in several).
	Skipped int `json:"skipped"`
}

// moveBatch is how many messages MoveMessages moves per journal append
// (each message's references change within one append).
const moveBatch = 1000

// MoveMessages moves up to limit (0: all) messages waiting in queue from
// to queue to, in order, at the tail of to. Between durable queues each
// message gets its new reference and loses its old one in one atomic
// append; into a non-durable queue it is acked on from (it lives on in
// memory only). Moving from a non-durable queue into a durable one is
// refused: those messages have no journal record to reference. Messages
// the target already holds (a topic's message sits in several queues)
// stay where they are; they are out of from's order until the move ends.
func (s *Server) MoveMessages(ctx context.Context, from, to string, limit int) (MoveResult, error) {
	var res MoveResult
	if err := s.checkUsable(); err != nil {
		return res, err
	}
	if from == to {
		return res, fmt.Errorf("%w: moving messages from %q to itself", ErrInvalid, from)
	}
	src, err := s.queueNamed(from)
	if err != nil {
		return res, err
	}
	dst, err := s.queueNamed(to)
	if err != nil {
		return res, err
	}
	if !src.durable && dst.durable {
		return res, fmt.Errorf("%w: queue %q is not durable and %q is: its messages have no journal record to move", ErrInvalid, from, to)
	}
	dst.mu.Lock()
	held := dst.heldLocked()
	dst.mu.Unlock()
	var kept []*ref
	for limit <= 0 || res.Moved < limit {
		n := moveBatch
		if limit > 0 {
			n = min(n, limit-res.Moved)
		}
		moved, skipped, err := s.moveSome(src, dst, n, held)
		kept = append(kept, skipped...)
		res.Moved += moved
		if err != nil {
			s.putBack(src, kept)
			return res, fmt.Errorf("server: move from %q to %q: %w", from, to, err)
		}
		if moved == 0 && len(skipped) == 0 {
			break
		}
	}
	res.Skipped = len(kept)
	if err := s.putBack(src, kept); err != nil {
		return res, fmt.Errorf("server: move from %q to %q: %w", from, to, err)
	}
	dst.wake()
	s.log.Info("messages moved", "from", from, "to", to, "moved", res.Moved, "skipped", res.Skipped)
	return res, s.confirmed(nil)
}

// moveSome moves up to n messages from src to dst in one append; it
// returns how many it moved and the references it left aside (dst holds
// their message).
func (s *Server) moveSome(src, dst *Queue, n int, held map[*Message]struct{}) (moved int, skipped []*ref, err error) {
	a := dst.addr
	a.mu.Lock() // as a send to dst: DeleteQueue and auto-delete wait for it
	dst.mu.Lock()
	gone := a.deleted || dst.deleted || dst.deleting
	dst.mu.Unlock()
	if gone {
		a.mu.Unlock()
		return 0, nil, fmt.Errorf("%w: %q", ErrNoSuchQueue, dst.name)
	}
	src.mu.Lock()
	if src.deleted || src.deleting {
		src.mu.Unlock()
		a.mu.Unlock()
		return 0, nil, fmt.Errorf("%w: %q", ErrNoSuchQueue, src.name)
	}
	var moving []*ref
	for src.msgs.len() > 0 && len(moving) < n {
		r := src.msgs.popFront()
		if _, ok := held[r.msg]; ok || r.pt != nil { // a depaged message has no record to move
			skipped = append(skipped, r)
			continue
		}
		moving = append(moving, r)
	}
	src.mu.Unlock()
	refs := make([]ref, len(moving))
	for i, r := range moving {
		refs[i] = ref{msg: r.msg, q: dst, deliveries: r.deliveries}
	}
	routed(qsOf(refs))
	s.storeMu.Lock()
	var entries []journal.Entry
	acked := 0
	for _, r := range moving {
		switch {
		case r.durable() && dst.durable:
			entries = append(entries,
				journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecAddRef, Data: dst.refData},
				journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecAckRef, Data: src.refData})
			if r.deliveries > 0 {
				entries = append(entries, journal.Entry{Kind: journal.KindUpdate, ID: r.msg.ID, Type: RecDeliveryCount,
					Data: encodeDeliveryCount(dst.id, r.deliveries)})
			}
		case r.durable():
			entries = append(entries, s.ackEntryLocked(r))
			acked++
		}
	}
	ch := make(chan error, 1)
	if len(entries) > 0 {
		err = s.msgs.Append(entries, true, func(err error) { ch <- err })
	} else {
		ch <- nil
	}
	if err != nil {
		for _, r := range moving {
			if r.durable() && !dst.durable {
				r.msg.durableRefs++ // the ack was not appended
			}
		}
	}
	s.storeMu.Unlock()
	a.mu.Unlock()
	if err != nil { // refused: nothing was appended
		unroute(refs)
		s.storageError(err)
		return 0, append(moving, skipped...), err
	}
	if err = <-ch; err != nil { // no ctx: the references must land in dst whatever happens
		unroute(refs)
		return 0, skipped, s.halt(err)
	}
	src.acked.Add(uint64(len(moving)))
	for i := range refs {
		dst.push(&refs[i])
	}
	return len(moving), skipped, nil
}

// qsOf returns the queues of refs.
func qsOf(refs []ref) []*Queue {
	qs := make([]*Queue, len(refs))
	for i := range refs {
		qs[i] = refs[i].q
	}
	return qs
}

// putBack returns references taken out of q to its head, in order; when q
// was deleted meanwhile they are acked instead (as Server.cancel does).
func (s *Server) putBack(q *Queue, refs []*ref) error {
	if len(refs) == 0 {
		return nil
	}
	slices.SortFunc(refs, func(a, b *ref) int { return cmpU64(a.seq, b.seq) })
	q.mu.Lock()
	if !q.deleted {
		for i := len(refs) - 1; i >= 0; i-- {
			q.msgs.pushFront(refs[i])
		}
		q.mu.Unlock()
		q.wake()
		return nil
	}
	q.mu.Unlock()
	return s.ackDropped(context.Background(), refs)
}

// deleteEntries are the bindings records deleting a durable queue: its
// own and its pause record's. The caller keeps q from being paused or
// resumed meanwhile (holds s.mu, as setPaused does).
func (q *Queue) deleteEntries() []journal.Entry {
	q.mu.Lock()
	rec := q.pausedRec
	q.mu.Unlock()
	e := []journal.Entry{{Kind: journal.KindDelete, ID: q.id}}
	if rec != 0 {
		e = append(e, journal.Entry{Kind: journal.KindDelete, ID: rec})
	}
	return e
}

// heldLocked returns the messages q holds, waiting or being delivered.
// Caller holds q.mu.
func (q *Queue) heldLocked() map[*Message]struct{} {
	held := make(map[*Message]struct{}, q.msgs.len())
	for i := range q.msgs.len() {
		held[q.msgs.at(i).msg] = struct{}{}
	}
	for _, c := range q.consumers {
		c.mu.Lock()
		for _, r := range c.delivered {
			held[r.msg] = struct{}{}
		}
		c.mu.Unlock()
	}
	return held
}

// ConsumerInfo describes a consumer for management.
type ConsumerInfo struct {
	Queue      string `json:"queue"`
	Address    string `json:"address"`
	ID         uint64 `json:"id"`         // within its session
	Connection uint64 `json:"connection"` // 0 when not a core connection's
	Credit     int64  `json:"credit"`     // -1: unlimited
	Delivering int    `json:"delivering"` // delivered, not acked
}

// Consumers describes every consumer, by queue.
func (s *Server) Consumers() []ConsumerInfo {
	s.mu.RLock()
	qs := make([]*Queue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.mu.RUnlock()
	slices.SortFunc(qs, compareQueues)
	out := []ConsumerInfo{}
	for _, q := range qs {
		q.mu.Lock()
		for _, c := range q.consumers {
			ci := ConsumerInfo{Queue: q.name, Address: q.addr.name, ID: c.id, Connection: c.sess.owner.Load(), Credit: c.credit}
			if c.credit > 1<<62 {
				ci.Credit = -1
			}
			c.mu.Lock()
			ci.Delivering = len(c.delivered)
			c.mu.Unlock()
			out = append(out, ci)
		}
		q.mu.Unlock()
	}
	return out
}

// SetOwner records the connection a session belongs to, for Consumers.
func (ss *Session) SetOwner(connID uint64) { ss.owner.Store(connID) }

// ConnectionInfo describes a client connection for management.
type ConnectionInfo struct {
	ID       uint64 `json:"id"`
	Remote   string `json:"remote"`
	Acceptor string `json:"acceptor"`
	Protocol string `json:"protocol"` // "core", or the handler's name (stomp, amqp)
	User     string `json:"user,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Since    string `json:"since"` // RFC 3339
}

// Connections describes the open connections of every acceptor of the
// server, by ID.
func (s *Server) Connections() []ConnectionInfo {
	s.accMu.Lock()
	accs := slices.Clone(s.accs)
	s.accMu.Unlock()
	out := []ConnectionInfo{}
	for _, a := range accs {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			continue
		}
		addr := a.ln.Addr().String()
		for c := range a.conns {
			m := c.meta()
			out = append(out, ConnectionInfo{ID: c.id, Remote: c.nc.RemoteAddr().String(), Acceptor: addr,
				Protocol: m.protocol, User: m.user, ClientID: m.clientID, Since: c.since.UTC().Format(time.RFC3339)})
		}
		a.mu.Unlock()
	}
	slices.SortFunc(out, func(x, y ConnectionInfo) int { return cmpU64(x.ID, y.ID) })
	return out
}

// trackAcceptor remembers a for Connections and Security; closed acceptors
// are dropped when the next one comes.
func (s *Server) trackAcceptor(a *Acceptor) {
	s.accMu.Lock()
	defer s.accMu.Unlock()
	s.accs = slices.DeleteFunc(s.accs, func(x *Acceptor) bool { return x.stopping.Load() })
	s.accs = append(s.accs, a)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// connMeta is what a connection says of itself once known.
type connMeta struct {
	protocol, user, clientID string
}

// meta returns c's description (core until told otherwise).
func (c *conn) meta() connMeta {
	if m := c.metaP.Load(); m != nil {
		return *m
	}
	return connMeta{protocol: "core"}
}

// setMeta records what the handshake or protocol detection learnt.
func (c *conn) setMeta(m connMeta) { c.metaP.Store(&m) }

// recIDs returns the journal record IDs of the cache's persisted entries.
func (c *dupCache) recIDs() []uint64 {
	var ids []uint64
	for _, sl := range c.ring {
		if sl.e != nil && sl.e.recID != 0 {
			ids = append(ids, sl.e.recID)
		}
	}
	return ids
}

// at returns the i-th reference from the front (0 <= i < len).
func (d *refDeque) at(i int) *ref { return d.buf[(d.head+i)%len(d.buf)] }
