package stomp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

type ackMode uint8

const (
	ackAuto ackMode = iota
	ackClient
	ackIndividual
)

func parseAckMode(v string) (ackMode, bool) {
	switch v {
	case "", "auto":
		return ackAuto, true
	case "client":
		return ackClient, true
	case "client-individual":
		return ackIndividual, true
	}
	return 0, false
}

// subscription is one SUBSCRIBE: a server consumer, its ack mode and its
// window (credit granted as messages come back: written for ack:auto,
// acknowledged or nacked otherwise).
type subscription struct {
	c       *conn
	id      string // the client's
	idx     uint64 // the connection's, in ack IDs
	dest    string // the destination header as subscribed
	mode    ackMode
	cons    *server.Consumer
	durable string // the durable subscription's queue, for UNSUBSCRIBE

	mu      sync.Mutex
	granted int            // credit given to the consumer, not yet used
	out     int            // delivered, not yet back
	avg     float64        // average body size (bytes), 0 before the first
	held    map[uint64]int // ack:client*: unacknowledged message IDs and sizes
	order   []uint64       // ack:client: the same IDs in delivery order
}

// ackID is what MESSAGE's ack (and message-id) header carries.
func (s *subscription) ackID(msgID uint64) string {
	return strconv.FormatUint(s.idx, 10) + "-" + strconv.FormatUint(msgID, 10)
}

func parseAckID(v string) (idx, msgID uint64, ok bool) {
	a, b, found := strings.Cut(v, "-")
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return x, y, err1 == nil && err2 == nil
}

// topUpLocked returns the credit to grant so that out+granted reaches the
// window (Window messages, fewer for large ones: WindowBytes / average).
func (s *subscription) topUpLocked() int {
	o := s.c.h.opts
	target := min(o.Window, 8) // until the first message tells the size
	if s.avg > 0 {
		target = max(1, min(o.Window, int(float64(o.WindowBytes)/max(s.avg, 1))))
	}
	k := target - s.out - s.granted
	if k <= 0 {
		return 0
	}
	s.granted += k
	return k
}

// back returns n messages' credit and grants what the window allows.
func (s *subscription) back(n int) {
	s.mu.Lock()
	s.out -= n
	k := s.topUpLocked()
	s.mu.Unlock()
	if k > 0 {
		s.cons.Credit(k)
	}
}

// deliver is the consumer's handler (a broker goroutine): it encodes the
// MESSAGE into the writer, never blocking.
func (s *subscription) deliver(d server.Delivery) {
	m := d.Message
	size := len(m.Body)
	if m.IsLarge() {
		size = int(min(m.LargeSize(), 1<<40))
	}
	s.mu.Lock()
	s.granted--
	s.out++
	if s.avg == 0 {
		s.avg = float64(size + 1)
	} else {
		s.avg += (float64(size+1) - s.avg) / 16
	}
	if s.mode != ackAuto {
		if s.held == nil {
			s.held = map[uint64]int{}
		}
		s.held[m.ID] = size
		if s.mode == ackClient {
			s.order = append(s.order, m.ID)
		}
	}
	k := s.topUpLocked() // the average size may allow a larger window
	s.mu.Unlock()
	if k > 0 {
		s.cons.Credit(k)
	}
	var after *written
	if s.mode == ackAuto {
		after = &written{sub: s, msgID: m.ID, size: size}
	}
	esc := s.c.escape
	if m.IsLarge() {
		// Streamed: its chunks are read as the writer sends them
		// (docs/large-messages.md).
		srv := s.c.s
		s.c.out.frameStreamed(func(b []byte) []byte { return s.appendHead(b, d, esc, m.LargeSize()) }, m.LargeChunks(),
			func(i int) ([]byte, error) { return srv.ReadLargeChunk(m, i) }, after)
		return
	}
	s.c.out.frame(func(b []byte) []byte { return s.appendMessage(b, d, esc) }, after)
}

// appendMessage encodes a delivery as a MESSAGE frame (see docs/protocols.md
// for the mapping).
func (s *subscription) appendMessage(b []byte, d server.Delivery, esc bool) []byte {
	b = s.appendHead(b, d, esc, int64(len(d.Message.Body)))
	b = append(b, d.Message.Body...)
	return append(b, 0)
}

// appendHead encodes a MESSAGE frame up to its body, which has n bytes.
func (s *subscription) appendHead(b []byte, d server.Delivery, esc bool, n int64) []byte {
	m := d.Message
	id := s.ackID(m.ID)
	b = append(b, "MESSAGE\nsubscription:"...)
	b = appendValue(b, s.id, esc)
	b = append(b, "\nmessage-id:"...)
	b = append(b, id...)
	if s.mode != ackAuto {
		b = append(b, "\nack:"...)
		b = append(b, id...)
	}
	b = append(b, "\ndestination:"...)
	b = appendValue(b, s.dest, esc)
	if m.Durable {
		b = append(b, "\npersistent:true"...)
	}
	if d.DeliveryCount > 1 {
		b = append(b, "\nredelivered:true"...)
	}
	if m.DuplicateID != "" {
		b = append(b, "\n"+dupHeader+":"...)
		b = appendValue(b, m.DuplicateID, esc)
	}
	if m.Timestamp != 0 {
		b = append(b, "\ntimestamp:"...)
		b = strconv.AppendInt(b, m.Timestamp/1e6, 10)
	}
	if m.Expiration != 0 {
		b = append(b, "\nexpires:"...)
		b = strconv.AppendInt(b, m.Expiration/1e6, 10)
	}
	for i := range m.Properties {
		p := &m.Properties[i]
		if reserved[p.Key] || p.Key == "" {
			continue
		}
		switch p.Kind {
		case wire.KindString:
			b = append(b, '\n')
			b = appendValue(b, p.Key, esc)
			b = append(b, ':')
			b = appendValue(b, p.Str, esc)
		case wire.KindInt64:
			b = append(b, '\n')
			b = appendValue(b, p.Key, esc)
			b = append(b, ':')
			b = strconv.AppendInt(b, p.Int, 10)
		case wire.KindBool:
			b = append(b, '\n')
			b = appendValue(b, p.Key, esc)
			b = append(b, ':')
			b = strconv.AppendBool(b, p.Int != 0)
		}
	}
	b = append(b, "\ncontent-length:"...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, '\n', '\n')
}

// written runs on the writer goroutine after a write: the ack:auto
// deliveries it carried are acknowledged (one journal append per
// subscription) and their credit returned.
func (c *conn) written(ws []written) {
	for len(ws) > 0 {
		s := ws[0].sub
		ids := make([]uint64, 0, len(ws))
		rest := ws[:0]
		for _, w := range ws {
			if w.sub == s {
				ids = append(ids, w.msgID)
			} else {
				rest = append(rest, w)
			}
		}
		ws = rest
		if len(ids) == 1 {
			c.sess.Ack(s.cons.ID(), ids[0], func(error) {})
		} else {
			c.sess.AckMany(s.cons.ID(), ids, func([]uint64, error) {})
		}
		s.back(len(ids))
	}
}

func (c *conn) handleSubscribe(f *Frame) error {
	id, ok := f.Get("id")
	if !ok {
		if c.version != "1.0" {
			return errorf(f, "missing id header", "SUBSCRIBE needs an id header")
		}
		id = f.Value("destination")
	}
	if _, dup := c.subs[id]; dup {
		return errorf(f, "duplicate subscription id", "subscription %q exists on this connection", id)
	}
	mode, ok := parseAckMode(f.Value("ack"))
	if !ok {
		return errorf(f, "bad ack header", "ack %q: want auto, client or client-individual", f.Value("ack"))
	}
	dest, err := c.resolve(f, "subscription-type")
	if err != nil {
		return err
	}
	opts := server.ConsumerOptions{Selector: f.Value("selector")}
	durName := durableName(f)
	if durName != "" && dest.Routing == server.Multicast {
		if c.clientID == "" {
			return errorf(f, "durable subscription without client-id", "durable subscription %q needs a client-id header on CONNECT", durName)
		}
		opts.Subscription = c.clientID + "." + durName
	}
	c.nextIdx++
	s := &subscription{c: c, id: id, idx: c.nextIdx, dest: f.Value("destination"), mode: mode, durable: opts.Subscription}
	cons, err := c.sess.CreateConsumer(c.ctx, dest, opts, s.deliver)
	if err != nil {
		return errorf(f, "subscribe failed", "%s: %v", f.Value("destination"), err)
	}
	s.cons = cons
	c.subs[id], c.byIdx[s.idx] = s, s
	c.receipt(f.Value("receipt"))
	s.back(0) // the first credit
	return nil
}

// durableName is a SUBSCRIBE's durable subscription name, under any of
// the names Artemis accepts (in its order of precedence).
func durableName(f *Frame) string {
	for _, k := range []string{"durable-subscriber-name", "durable-subscription-name", "activemq.subscriptionName"} {
		if v := f.Value(k); v != "" {
			return v
		}
	}
	return ""
}

func (c *conn) handleUnsubscribe(f *Frame) error {
	id, ok := f.Get("id")
	if !ok && c.version == "1.0" {
		id, ok = f.Get("destination")
	}
	if !ok {
		return errorf(f, "missing id header", "UNSUBSCRIBE needs an id header")
	}
	s, ok := c.subs[id]
	if !ok {
		return errorf(f, "no such subscription", "UNSUBSCRIBE of %q, which is not subscribed on this connection", id)
	}
	delete(c.subs, id)
	delete(c.byIdx, s.idx)
	if err := c.sess.CloseConsumer(s.cons.ID()); err != nil {
		return errorf(f, "unsubscribe failed", "%v", err)
	}
	// Naming the durable subscription again deletes it (Artemis's rule).
	if s.durable != "" && durableName(f) != "" {
		if err := c.s.DeleteQueue(c.ctx, s.durable); err != nil && !errors.Is(err, server.ErrNoSuchQueue) {
			return errorf(f, "unsubscribe failed", "deleting durable subscription %q: %v", s.durable, err)
		}
	}
	c.receipt(f.Value("receipt"))
	return nil
}

// take removes the messages an ACK or NACK of msgID covers: msgID alone
// (client-individual) or every message delivered up to it (client).
func (s *subscription) take(msgID uint64) ([]uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.held[msgID]; !ok {
		return nil, false
	}
	if s.mode == ackIndividual {
		delete(s.held, msgID)
		return []uint64{msgID}, true
	}
	i := 0
	for s.order[i] != msgID {
		i++
	}
	ids := append([]uint64(nil), s.order[:i+1]...)
	s.order = append(s.order[:0], s.order[i+1:]...)
	for _, id := range ids {
		delete(s.held, id)
	}
	return ids, true
}

func (c *conn) handleAck(f *Frame) error {
	v, ok := f.Get("id")
	if !ok || c.version != "1.2" {
		if mid, found := f.Get("message-id"); found {
			v, ok = mid, true
		}
	}
	if !ok {
		return errorf(f, "missing id header", "%s needs the id header of the MESSAGE's ack header", f.Command)
	}
	idx, msgID, ok := parseAckID(v)
	s := c.byIdx[idx]
	if !ok || s == nil {
		return errorf(f, "unknown ack id", "%s of %q: no such message on this connection's subscriptions", f.Command, v)
	}
	receipt := f.Value("receipt")
	if s.mode == ackAuto {
		c.receipt(receipt) // acknowledged when written
		return nil
	}
	ids, ok := s.take(msgID)
	if !ok {
		return errorf(f, "unknown ack id", "%s of %q: the message is not held unacknowledged (acknowledged already?)", f.Command, v)
	}
	consID := s.cons.ID()
	if f.Command == "NACK" {
		for _, id := range ids {
			if err := c.sess.Release(consID, id); err != nil {
				return errorf(f, "nack failed", "%v", err)
			}
		}
		s.back(len(ids))
		c.receipt(receipt)
		return nil
	}
	if tx := f.Value("transaction"); tx != "" {
		ss, ok := c.txs[tx]
		if !ok {
			return errorf(f, "no such transaction", "ACK in transaction %q, which was not begun (or already ended)", tx)
		}
		for _, id := range ids {
			if err := c.sess.AckInto(ss, consID, id); err != nil {
				return errorf(f, "ack failed", "%v", err)
			}
		}
		s.back(len(ids))
		c.receipt(receipt)
		return nil
	}
	if err := c.ops.acquire(c.ctx, c.failed, 0); err != nil {
		return err
	}
	done := func(failed []uint64, err error) {
		c.ops.release(0)
		s.back(len(ids))
		switch {
		case err != nil:
			c.fail(&protocolError{msg: "ack failed", receipt: receipt, detail: err.Error()})
		case len(failed) > 0:
			c.fail(&protocolError{msg: "ack failed", receipt: receipt, detail: fmt.Sprintf("messages %v are no longer held by the subscription", failed)})
		default:
			c.receipt(receipt)
		}
	}
	if len(ids) == 1 {
		c.sess.Ack(consID, ids[0], func(err error) { done(nil, err) })
	} else {
		c.sess.AckMany(consID, ids, done)
	}
	return nil
}

// budget bounds the operations (and their bytes) a connection has
// waiting for the journal; the reader waits for room, which stops
// reading from a client that outruns the journal.
type budget struct {
	mu           sync.Mutex
	ops, bytes   int
	maxOps, maxB int
	room         chan struct{} // cap 1: something was released
}

func newBudget(maxOps, maxBytes int) *budget {
	return &budget{maxOps: maxOps, maxB: maxBytes, room: make(chan struct{}, 1)}
}

func (b *budget) acquire(ctx context.Context, failed <-chan struct{}, n int) error {
	for {
		b.mu.Lock()
		if b.ops < b.maxOps && (b.bytes == 0 || b.bytes+n <= b.maxB) {
			b.ops++
			b.bytes += n
			b.mu.Unlock()
			return nil
		}
		b.mu.Unlock()
		select {
		case <-b.room:
		case <-failed:
			return errDisconnected
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *budget) release(n int) {
	b.mu.Lock()
	b.ops--
	b.bytes -= n
	b.mu.Unlock()
	select {
	case b.room <- struct{}{}:
	default:
	}
}

// waitIdle waits until nothing is in flight.
func (b *budget) waitIdle(ctx context.Context, failed <-chan struct{}) error {
	for {
		b.mu.Lock()
		idle := b.ops == 0
		b.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-b.room:
		case <-failed:
			return errDisconnected
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
