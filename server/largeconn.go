package server

import (
	"fmt"
	"sync"

	"github.com/tandemmq/tandem/wire"
)

// Large messages on Tandem's protocol (large.go, wire/large.go): uploads
// arrive as SendLarge and LargeChunk frames on the connection's reader;
// deliveries go out as DeliverLarge and DeliverChunk frames, a chunk at a
// time, read from the large-messages journal as the socket drains.

// largeConn is a connection's large message state.
type largeConn struct {
	// uploads are the large sends in progress, by stream (reader-owned).
	uploads map[uint64]*upload

	// Deliveries go through the streamer goroutine while it has a large
	// one to send: deliveries to a consumer keep their order.
	mu        sync.Mutex
	queue     []queuedDelivery
	streaming bool
	wg        sync.WaitGroup
}

type queuedDelivery struct {
	wid uint64
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
	// mem: a broker without a large-messages journal takes a body of at
	// most MaxBodySize in memory (body), as an ordinary message.
	mem  bool
	body []byte
}

// outRoom is how much a large delivery lets wait in the connection's
// outgoing buffer before it waits for the socket.
const outRoom = 4 << 20

// handleSendLarge begins a large send.
func (c *conn) handleSendLarge(f *wire.SendLarge) error {
	if c.lg.uploads == nil {
		c.lg.uploads = map[uint64]*upload{}
	}
	if _, dup := c.lg.uploads[f.Stream]; dup {
		return c.protocolError(fmt.Errorf("SendLarge: stream %d is in progress", f.Stream))
	}
	u := &upload{}
	c.lg.uploads[f.Stream] = u
	wm := &f.Message
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
	u.dest = Destination{Name: wm.Address, Routing: c.s.defaultRouting(wm.Address, wm.Routing)}
	ss, ok := c.sessions[f.Session]
	switch {
	case !ok:
		u.err = fmt.Errorf("%w: no session %d", ErrNoSuchQueue, f.Session)
	case f.Size == 0 || f.Size > 1<<50:
		u.err = fmt.Errorf("%w: large message of %d bytes", ErrMessageTooLarge, f.Size)
	}
	u.ss = ss
	if u.err == nil && c.s.large == nil && f.Size <= MaxBodySize {
		u.mem, u.body = true, make([]byte, 0, f.Size)
		return nil
	}
	if u.err == nil {
		id, err := c.s.beginLarge()
		if err != nil {
			u.err = err
		} else {
			u.lb = &largeBody{id: id, size: int64(f.Size)}
		}
	}
	return nil
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
		if f.Last {
			c.endUpload(u)
			c.out.resultFrame(corr, codeOf(u.err), u.err.Error())
		}
		return nil
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
			if f.Last {
				c.endUpload(u)
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
// ordinary message.
func (c *conn) memChunk(corr uint64, u *upload, f *wire.LargeChunk) error {
	if len(u.body)+len(f.Data) > cap(u.body) {
		u.err = fmt.Errorf("%w: chunks beyond the announced %d bytes", ErrMessageTooLarge, cap(u.body))
	}
	if u.err == nil {
		u.body = append(u.body, f.Data...)
	}
	if !f.Last {
		return nil
	}
	if u.err == nil && len(u.body) != cap(u.body) {
		u.err = fmt.Errorf("%w: %d bytes of the announced %d", ErrInvalid, len(u.body), cap(u.body))
	}
	if u.err != nil {
		c.out.resultFrame(corr, codeOf(u.err), u.err.Error())
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

// deliver hands d to consumer wid of the connection: directly, or through
// the streamer while a large delivery is in progress (or d is one).
func (c *conn) deliver(wid uint64, d Delivery) {
	c.lg.mu.Lock()
	if !c.lg.streaming && !d.Message.IsLarge() {
		c.lg.mu.Unlock()
		c.out.deliverFrame(wid, d)
		return
	}
	c.lg.queue = append(c.lg.queue, queuedDelivery{wid, d})
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
			c.out.deliverFrame(q.wid, q.d)
			continue
		}
		if err := c.deliverLarge(q.wid, q.d); err != nil {
			if c.ctx.Err() == nil {
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
	}
}

// deliverLarge sends a large message's header and its chunks, each once
// the connection's buffer has room.
func (c *conn) deliverLarge(wid uint64, d Delivery) error {
	m := d.Message
	lb := m.large
	c.out.frame(0, &wire.DeliverLarge{Consumer: wid, MessageID: m.ID, DeliveryCount: d.DeliveryCount, Size: uint64(lb.size),
		Message: wire.Message{Address: m.Address, Routing: wire.RoutingType(m.Routing), Durable: m.Durable,
			DuplicateID: m.DuplicateID, Timestamp: m.Timestamp, Expiration: m.Expiration, Properties: m.Properties}})
	for i := range lb.chunks {
		if err := c.out.waitRoom(c, outRoom); err != nil {
			return err
		}
		data, err := c.s.readLargeChunk(lb, i)
		if err != nil {
			return err
		}
		c.out.frame(0, &wire.DeliverChunk{Consumer: wid, MessageID: m.ID, Last: i == len(lb.chunks)-1, Data: data})
	}
	return nil
}

// waitRoom waits until the connection's pending frames take less than
// limit bytes (or it is closing).
func (o *outq) waitRoom(c *conn, limit int) error {
	for {
		o.mu.Lock()
		n, closed := o.pending.Len(), o.closed
		o.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if n < limit {
			return nil
		}
		select {
		case <-o.drained:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	}
}

// closeLarge ends the connection's uploads (their chunks are garbage) and
// waits for its streamer.
func (c *conn) closeLarge() {
	for s, u := range c.lg.uploads {
		c.endUpload(u)
		delete(c.lg.uploads, s)
	}
	c.lg.wg.Wait()
}
