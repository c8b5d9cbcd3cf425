package server

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/wire"
)

// Large messages on Tandem's protocol (large.go, wire/large.go): uploads
// arrive as SendLarge and LargeChunk frames on the connection's reader;
// deliveries go out as DeliverLarge and DeliverChunk frames, a chunk at a
// time, read from the large-messages journal as the socket drains.

// Bounds of a connection's uploads (docs/limits.md): what a client that
// starts large sends and never finishes them can hold.
const (
	// maxUploads is how many large sends may be in progress on one
	// connection; one more is refused (CodeLimit on its last chunk, its
	// chunks read and dropped).
	maxUploads = 16
	// maxStreams is how many streams (refused ones included) may be open
	// on one connection: past it the connection is closed (a protocol
	// error; the client never has that many sends in flight).
	maxStreams = 1024
	// maxMemUploads bounds the memory of the bodies a connection uploads
	// into memory (a broker without a large-messages journal takes large
	// sends of at most MaxBodySize that way): a chunk that would take the
	// connection past it refuses its upload (CodeLimit).
	maxMemUploads = 4 << 20
)

// largeConn is a connection's large message state.
type largeConn struct {
	// uploads are the large sends in progress, by stream (reader-owned);
	// active counts those not refused (at most maxUploads).
	uploads map[uint64]*upload
	active  int
	// memBytes is the memory the bodies of uploads into memory hold:
	// it grows with the bytes that arrive, never to the size a SendLarge
	// announces (written by the reader).
	memBytes atomic.Int64

	// Deliveries go through the streamer goroutine while it has a large
	// one to send: deliveries to a consumer keep their order.
	mu        sync.Mutex
	queue     []queuedDelivery
	streaming bool
	wg        sync.WaitGroup
}

type queuedDelivery struct {
	wid uint64
	fl  *flow
	d   Delivery
}

// upload is one large send in progress.
type upload struct {
	ss     *Session
	dest   Destination
	m      *Message
	lb     *largeBody
	err    error // refused: its chunks are read and dropped, the last answered with it
	closed bool
	active bool // counted in largeConn.active (reader-owned)
	// mem: a broker without a large-messages journal takes a body of at
	// most MaxBodySize in memory (body, of size bytes once complete), as
	// an ordinary message.
	mem  bool
	size int
	body []byte
}

// handleSendLarge begins a large send.
func (c *conn) handleSendLarge(f *wire.SendLarge) error {
	if c.lg.uploads == nil {
		c.lg.uploads = map[uint64]*upload{}
	}
	if _, dup := c.lg.uploads[f.Stream]; dup {
		return c.protocolError(fmt.Errorf("SendLarge: stream %d is in progress", f.Stream))
	}
	if len(c.lg.uploads) >= maxStreams {
		return c.protocolError(fmt.Errorf("SendLarge: %d large messages in progress on the connection", len(c.lg.uploads)))
	}
	u := &upload{}
	c.lg.uploads[f.Stream] = u
	wm := &f.Message
	u.dest = Destination{Name: wm.Address, Routing: c.s.defaultRouting(wm.Address, wm.Routing)}
	ss, ok := c.sessions[f.Session]
	switch {
	case !ok:
		u.err = fmt.Errorf("%w: no session %d", ErrNoSuchQueue, f.Session)
	case f.Size == 0 || f.Size > 1<<50:
		u.err = fmt.Errorf("%w: large message of %d bytes", ErrMessageTooLarge, f.Size)
	case c.lg.active >= maxUploads:
		u.err = fmt.Errorf("%w: %d large messages in progress on this connection, the most it may have", ErrLimit, c.lg.active)
	default:
		// Checked before any chunk is stored (and again by the send):
		// a client that may not send there writes nothing to the
		// large-messages journal.
		u.err = authorize(c.ctx, auth.Send, u.dest.Name)
	}
	if u.err != nil {
		return nil
	}
	u.m = &Message{Durable: wm.Durable, DuplicateID: wm.DuplicateID, Timestamp: wm.Timestamp, Expiration: wm.Expiration}
	if len(wm.Properties) > 0 {
		u.m.Properties = make([]Property, len(wm.Properties))
		copy(u.m.Properties, wm.Properties)
		for i := range u.m.Properties {
			if b := u.m.Properties[i].Bytes; b != nil {
				u.m.Properties[i].Bytes = append([]byte(nil), b...)
			}
		}
	}
	u.ss = ss
	if c.s.large == nil && f.Size <= MaxBodySize {
		u.mem, u.size = true, int(f.Size)
		u.active = true
		c.lg.active++
		return nil
	}
	id, err := c.s.beginLarge()
	if err != nil {
		u.err = err
		return nil
	}
	u.lb = &largeBody{id: id, size: int64(f.Size)}
	u.active = true
	c.lg.active++
	return nil
}

// settled ends an upload's count on the connection (reader): its last
// chunk came, it was refused, or the connection ends. A body in memory is
// the message's from now on (or dropped).
func (c *conn) settled(u *upload) {
	if u.active {
		u.active = false
		c.lg.active--
	}
	if u.mem {
		c.lg.memBytes.Add(-int64(cap(u.body)))
		u.mem = false
	}
}

// handleLargeChunk appends a chunk; the last one (with corr) is answered
// with a Result once the message is stored.
func (c *conn) handleLargeChunk(corr uint64, f *wire.LargeChunk) error {
	u, ok := c.lg.uploads[f.Stream]
	if !ok {
		return c.protocolError(fmt.Errorf("LargeChunk: no stream %d", f.Stream))
	}
	if f.Last {
		delete(c.lg.uploads, f.Stream)
	}
	if u.mem {
		return c.memChunk(corr, u, f)
	}
	var got int64
	if u.lb != nil {
		got = u.lb.received
	}
	if u.err == nil && got+int64(len(f.Data)) > u.lb.size {
		u.err = fmt.Errorf("%w: chunks beyond the announced %d bytes", ErrMessageTooLarge, u.lb.size)
	}
	if u.err == nil && f.Last && got+int64(len(f.Data)) != u.lb.size {
		u.err = fmt.Errorf("%w: %d bytes of the announced %d", ErrInvalid, got+int64(len(f.Data)), u.lb.size)
	}
	if u.err != nil {
		// Refused: what it stored is garbage from now on.
		c.settled(u)
		c.endUpload(u)
		if f.Last {
			c.out.resultFrame(corr, codeOf(u.err), u.err.Error())
		}
		return nil
	}
	if f.Last {
		c.settled(u)
	}
	if len(f.Data) > 0 || f.Last {
		var done func(error)
		// The last chunk's completion may run before AppendPos returned
		// its position: it waits for the chunk list to be complete.
		ready := make(chan struct{})
		if f.Last {
			out := c.out
			c.begin()
			done = func(err error) {
				<-ready
				if err != nil {
					c.endUpload(u)
					c.end()
					out.resultFrame(corr, codeOf(err), err.Error())
					return
				}
				// Every chunk is durable: store the message.
				u.m.large = u.lb
				u.ss.Send(c.ctx, u.dest, u.m, func(err error) {
					c.endUpload(u)
					c.end()
					out.resultFrame(corr, codeOf(err), errText(err))
				})
			}
		}
		pos, err := c.s.appendLargeChunk(u.lb.id, f.Data, f.Last, done)
		if err != nil {
			u.err = err
			close(ready)
			c.settled(u)
			c.endUpload(u)
			if f.Last {
				c.end()
				c.out.resultFrame(corr, codeOf(err), err.Error())
			}
			return nil
		}
		u.lb.chunks = append(u.lb.chunks, pos)
		u.lb.received += int64(len(f.Data))
		close(ready)
	}
	return nil
}

// memChunk takes a chunk of an upload kept in memory (no large-messages
// journal, a body of at most MaxBodySize): the last one sends it as an
// ordinary message. The body grows with the bytes that arrive, within
// the connection's maxMemUploads.
func (c *conn) memChunk(corr uint64, u *upload, f *wire.LargeChunk) error {
	need := len(u.body) + len(f.Data)
	if u.err == nil && need > u.size {
		u.err = fmt.Errorf("%w: chunks beyond the announced %d bytes", ErrMessageTooLarge, u.size)
	}
	if u.err == nil && need > cap(u.body) {
		grow := min(max(2*cap(u.body), need, 4<<10), u.size)
		if c.lg.memBytes.Load()+int64(grow-cap(u.body)) > maxMemUploads {
			u.err = fmt.Errorf("%w: the large messages this connection uploads into memory would take more than %d bytes", ErrLimit, maxMemUploads)
		} else {
			c.lg.memBytes.Add(int64(grow - cap(u.body)))
			u.body = append(make([]byte, 0, grow), u.body...)
		}
	}
	if u.err != nil {
		c.settled(u) // its body is dropped
		u.body = nil
		if f.Last {
			c.out.resultFrame(corr, codeOf(u.err), u.err.Error())
		}
		return nil
	}
	u.body = append(u.body, f.Data...)
	if !f.Last {
		return nil
	}
	c.settled(u)
	if len(u.body) != u.size {
		err := fmt.Errorf("%w: %d bytes of the announced %d", ErrInvalid, len(u.body), u.size)
		c.out.resultFrame(corr, codeOf(err), err.Error())
		return nil
	}
	u.m.Body = u.body
	out := c.out
	c.begin()
	u.ss.Send(c.ctx, u.dest, u.m, func(err error) {
		c.end()
		out.resultFrame(corr, codeOf(err), errText(err))
	})
	return nil
}

// endUpload releases an upload's hold on the large-messages journal.
func (c *conn) endUpload(u *upload) {
	if u.lb != nil && !u.closed {
		u.closed = true
		c.s.endLarge(u.lb.id)
	}
}

// deliver hands d to consumer wid of the connection (fl: its credit
// window): directly, or through the streamer while a large delivery is in
// progress (or d is one).
func (c *conn) deliver(wid uint64, fl *flow, d Delivery) {
	c.lg.mu.Lock()
	if !c.lg.streaming && !d.Message.IsLarge() {
		c.lg.mu.Unlock()
		fl.delivered(c.out.deliverFrame(wid, d))
		return
	}
	c.lg.queue = append(c.lg.queue, queuedDelivery{wid, fl, d})
	if !c.lg.streaming {
		c.lg.streaming = true
		c.lg.wg.Add(1)
		go c.stream()
	}
	c.lg.mu.Unlock()
}

// stream sends the queued deliveries in order, then exits.
func (c *conn) stream() {
	defer c.lg.wg.Done()
	for {
		c.lg.mu.Lock()
		if len(c.lg.queue) == 0 {
			c.lg.streaming = false
			c.lg.queue = nil
			c.lg.mu.Unlock()
			return
		}
		q := c.lg.queue[0]
		c.lg.queue[0] = queuedDelivery{}
		c.lg.queue = c.lg.queue[1:]
		c.lg.mu.Unlock()
		if !q.d.Message.IsLarge() {
			q.fl.delivered(c.out.deliverFrame(q.wid, q.d))
			continue
		}
		size, err := c.deliverLarge(q.wid, q.d)
		if err != nil {
			if c.ctx.Err() == nil && !errors.Is(err, errOutqStopped) {
				c.log.Error("large delivery failed: closing the connection (the message is redelivered)", "message", q.d.Message.ID, "err", err)
				c.nc.Close()
			}
			// The rest is not delivered: the connection ends, the
			// deliveries go back to their queues.
			c.lg.mu.Lock()
			c.lg.queue, c.lg.streaming = nil, false
			c.lg.mu.Unlock()
			return
		}
		// Only now does the consumer's window move on: a consumer of
		// large messages has one at a time on its way (its window
		// shrinks to one message, as for any delivery of 1 MiB or more).
		q.fl.delivered(size)
	}
}

// deliverPiece is the most of a chunk one DeliverChunk frame carries: the
// span between the connection's water marks (at least 16 KiB), so that
// a large delivery, queued only while the output is at or below its low
// mark, never takes it past its high mark by itself. The output's bounds
// then hold for large deliveries as for any other frame: at most the high
// mark queued per connection, and the reader is not paused for a large
// delivery going out at the speed the client reads it.
func (o *outq) deliverPiece() int {
	return min(max(o.high-o.low, 16<<10), wire.MaxBodySize)
}

// deliverLarge sends a large message's header and its body, read from the
// journal a chunk at a time and queued a piece at a time as the output
// drains to its low mark. It returns the bytes it counts against the
// consumer's window.
func (c *conn) deliverLarge(wid uint64, d Delivery) (int, error) {
	m := d.Message
	lb := m.large
	c.out.frame(0, &wire.DeliverLarge{Consumer: wid, MessageID: m.ID, DeliveryCount: d.DeliveryCount, Size: uint64(lb.size),
		Message: wire.Message{Address: m.Address, Routing: wire.RoutingType(m.Routing), Durable: m.Durable,
			DuplicateID: m.DuplicateID, Timestamp: m.Timestamp, Expiration: m.Expiration, Properties: m.Properties}})
	piece := c.out.deliverPiece()
	for i := range lb.chunks {
		data, err := c.s.readLargeChunk(lb, i)
		if err != nil {
			return 0, err
		}
		for first := true; first || len(data) > 0; first = false { // an empty last chunk is sent too
			if err := c.out.waitRoom(c.ctx, c.out.low); err != nil {
				return 0, err
			}
			n := min(len(data), piece)
			last := i == len(lb.chunks)-1 && n == len(data)
			c.out.frame(0, &wire.DeliverChunk{Consumer: wid, MessageID: m.ID, Last: last, Data: data[:n]})
			data = data[n:]
		}
	}
	return int(min(lb.size, consumerWindowBytes)), nil
}

// closeLarge ends the connection's uploads (their chunks are garbage) and
// waits for its streamer.
func (c *conn) closeLarge() {
	for s, u := range c.lg.uploads {
		c.settled(u)
		c.endUpload(u)
		delete(c.lg.uploads, s)
	}
	c.lg.wg.Wait()
}
