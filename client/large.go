package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// Large messages (issue 18; wire/large.go). A body larger than the URL's
// minLargeMessageSize (default 100 KiB) goes as a header and chunks of
// 1 MiB; the broker streams it to its large-messages journal and confirms
// the send once the body and the message are durable. SendStream sends a
// body read from an io.Reader without holding it whole. A received large
// message is assembled in memory (Message.Body) before Receive returns it.

// largeChunk is the size of the chunks a large body goes in.
const largeChunk = wire.MaxBodySize

// largeOutRoom is how much of a large body may wait in the connection's
// buffer before SendStream waits for the socket.
const largeOutRoom = 4 << 20

// SendStream sends a message whose body, of size bytes, is read from body
// (m.Body is ignored), a chunk at a time: neither side holds it whole.
// It returns once the broker stored it (durable). When the connection is
// lost before the answer the outcome is unknown (ErrUnknownOutcome): the
// body cannot be read again, so it is not resent.
func (p *Producer) SendStream(ctx context.Context, m *Message, body io.Reader, size int64) error {
	if size <= 0 {
		return fmt.Errorf("client: send: a large message needs a size > 0 (%d)", size)
	}
	return p.sendLarge(ctx, m, func() io.Reader { return body }, size, false)
}

// sendLarge sends m with a body of size bytes that open returns; with
// resendable, a connection lost before the answer makes it go again on the
// next one (same duplicate ID).
func (p *Producer) sendLarge(ctx context.Context, m *Message, open func() io.Reader, size int64, resendable bool) error {
	if p.closed.Load() {
		return ErrClosed
	}
	c := p.s.c
	dup := m.DuplicateID
	if dup == "" && p.durable {
		dup = p.NextDuplicateID()
	}
	ts := m.Timestamp
	if ts == 0 {
		ts = timeNow()
	}
	exp := m.Expiration
	if exp == 0 && p.ttl > 0 {
		exp = ts + int64(p.ttl)
	}
	hdr := wire.Message{Address: p.dest.Name, Routing: p.dest.Routing, Durable: p.durable, DuplicateID: dup,
		Timestamp: ts, Expiration: exp, Properties: m.Properties}
	unknown := false // an attempt's outcome is unknown: so is the send's, unless a later one succeeds
	for {
		t, err := c.transportFor(ctx)
		if err != nil {
			if unknown {
				return fmt.Errorf("client: send: %w (%w)", ErrUnknownOutcome, err)
			}
			return fmt.Errorf("client: send: %w", err)
		}
		err = p.streamOn(ctx, t, hdr, open(), size)
		if err == nil {
			return nil
		}
		unknown = unknown || errors.Is(err, ErrUnknownOutcome)
		if !resendable || p.s.transacted || ctx.Err() != nil || !errors.Is(err, ErrUnknownOutcome) && !errors.Is(err, errTransportDead) {
			if unknown && !errors.Is(err, ErrUnknownOutcome) {
				return fmt.Errorf("client: send: %w (%w)", ErrUnknownOutcome, err)
			}
			return err
		}
		c.awaitReplacement(ctx, t)
	}
}

// streamOn sends the header and the chunks on t and waits for the answer.
func (p *Producer) streamOn(ctx context.Context, t *transport, hdr wire.Message, body io.Reader, size int64) error {
	c := p.s.c
	stream := c.nextID()
	if err := t.send(0, &wire.SendLarge{Session: p.s.id, Stream: stream, Size: uint64(size), Message: hdr}, nil); err != nil {
		return fmt.Errorf("client: send: %w", err)
	}
	buf := make([]byte, min(int64(largeChunk), size))
	var sent int64
	for {
		n, rerr := io.ReadFull(body, buf[:min(int64(len(buf)), size-sent)])
		sent += int64(n)
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			// End the stream: the broker refuses a short body.
			t.send(0, &wire.LargeChunk{Stream: stream, Last: true}, nil)
			return fmt.Errorf("client: send: reading the body: %w", rerr)
		}
		if sent == size || rerr != nil {
			resp, err := c.requestVia(ctx, t, "send", &wire.LargeChunk{Stream: stream, Last: true, Data: buf[:n]}, lostUnknown)
			if err != nil {
				return err
			}
			if sent != size {
				return fmt.Errorf("client: send: the body ended after %d of %d bytes", sent, size)
			}
			r := resp.(*wire.Result)
			return serverError("send", r.Code, r.Message)
		}
		if err := t.send(0, &wire.LargeChunk{Stream: stream, Data: buf[:n]}, nil); err != nil {
			return fmt.Errorf("client: send: %w (%w)", ErrUnknownOutcome, err)
		}
		if err := t.waitWritten(ctx, largeOutRoom); err != nil {
			return fmt.Errorf("client: send: %w (%w)", ErrUnknownOutcome, err)
		}
	}
}

// waitWritten waits until less than limit bytes wait to be written.
func (t *transport) waitWritten(ctx context.Context, limit int) error {
	for {
		t.wmu.Lock()
		n, werr := t.enc.Len(), t.werr
		t.wmu.Unlock()
		if werr != nil {
			return errTransportDead
		}
		if n < limit {
			return nil
		}
		select {
		case <-t.written:
		case <-t.dead:
			return errTransportDead
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// isLarge reports whether a body goes as a large message.
func (p *Producer) isLarge(m *Message) bool {
	return len(m.Body) > p.s.c.url.MinLargeMessageSize
}

// sendLargeBody is Send of a large in-memory body (resent on failover).
func (p *Producer) sendLargeBody(ctx context.Context, m *Message) error {
	return p.sendLarge(ctx, m, func() io.Reader { return bytes.NewReader(m.Body) }, int64(len(m.Body)), true)
}

// onLarge takes a DeliverLarge or DeliverChunk frame: the body is
// assembled, and the message handed to its consumer after the last
// chunk.
func (t *transport) onLarge(h wire.Header) error {
	if h.Type == wire.TypeDeliverLarge {
		f := new(wire.DeliverLarge)
		if err := t.dec.Unmarshal(f); err != nil {
			return err
		}
		if t.largeIn == nil {
			t.largeIn = map[uint64]*Message{}
		}
		m := &Message{
			Body:          make([]byte, 0, min(f.Size, 64<<20)),
			Properties:    cloneProps(f.Properties),
			DuplicateID:   f.DuplicateID,
			Timestamp:     f.Timestamp,
			Expiration:    f.Expiration,
			Address:       f.Address,
			Durable:       f.Durable,
			ID:            f.MessageID,
			DeliveryCount: f.DeliveryCount,
			gen:           t.gen,
			largeSize:     int64(f.Size),
		}
		t.largeIn[f.Consumer] = m
		return nil
	}
	f := new(wire.DeliverChunk)
	if err := t.dec.Unmarshal(f); err != nil {
		return err
	}
	m := t.largeIn[f.Consumer]
	if m == nil || m.ID != f.MessageID {
		return fmt.Errorf("a chunk of message %d for consumer %d, which is not receiving it", f.MessageID, f.Consumer)
	}
	m.Body = append(m.Body, f.Data...)
	if int64(len(m.Body)) > m.largeSize {
		return fmt.Errorf("message %d: %d bytes, more than its %d", m.ID, len(m.Body), m.largeSize)
	}
	if !f.Last {
		return nil
	}
	delete(t.largeIn, f.Consumer)
	if int64(len(m.Body)) != m.largeSize {
		return fmt.Errorf("message %d: %d bytes, not its %d", m.ID, len(m.Body), m.largeSize)
	}
	c := t.c.consumer(f.Consumer)
	if c == nil {
		return nil // closed meanwhile; the broker redelivers
	}
	m.consumer = c
	c.push(m)
	return nil
}

func cloneProps(ps []Property) []Property {
	out := make([]Property, len(ps))
	copy(out, ps)
	for i := range out {
		if out[i].Bytes != nil {
			out[i].Bytes = append([]byte(nil), out[i].Bytes...)
		}
	}
	return out
}

// timeNow is the send timestamp (Unix ns).
func timeNow() int64 { return time.Now().UnixNano() }
