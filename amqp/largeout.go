package amqp

import (
	"encoding/binary"
	"math"

	"github.com/tandemmq/tandem/server"
)

// Large messages delivered to AMQP consumers (docs/large-messages.md). A
// large message's body lives in the large-messages journal; its delivery
// is not encoded whole (it may be larger than the connection's output
// limit, hardLimit) but streamed by a goroutine of its own, the link's
// streamer: the sections before the body and the body section's 32-bit
// header, then the body's chunk records as they are read, cut into
// transfers of the peer's max-frame-size with more=true until the last.
// Before each transfer the streamer waits until the connection's pending
// output is below softLimit and the session's remote incoming window has
// room, so a delivery holds about one frame and one chunk record of
// memory whatever its size. While it runs the link sends nothing else
// (a link's multi-transfer delivery may not be interleaved with another
// of the same link); other links and sessions go on.
//
// The delivery counts against link credit and the session window from
// its first transfer, and is unsettled from then (a detach, a session end
// or the connection's end before its last transfer leaves it unacked: the
// consumer's close gives the message back to its queue, to be delivered
// again in full).

// wakeStreamer tells the link's streamer that credit, the session window
// or the link changed (s.mu held; never blocks).
func (l *link) wakeStreamer() {
	if l.wake == nil {
		return
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// startStreamLocked starts streaming the large message at the head of
// l.pending (s.mu held, credit available).
func (l *link) startStreamLocked() {
	s, c := l.s, l.s.c
	if s.remoteIncomingWindow < 1 {
		return
	}
	d := l.pending[0]
	l.pending[0] = server.Delivery{}
	l.pending = l.pending[1:]
	if len(l.pending) == 0 {
		l.pending = nil
	}
	if size := d.Message.LargeSize(); size > math.MaxUint32 {
		// AMQP's binary and string lengths are 32 bits.
		c.log.Error("a large message is too big for an AMQP delivery: its consumer's connection is closed (consume it over Tandem's protocol or STOMP)",
			"message", d.Message.ID, "size", size)
		c.fail(closeWith(ErrResourceLimit, "message %d has a body of %d bytes, more than an AMQP delivery can carry (4 GiB)", d.Message.ID, size))
		return
	}
	id := s.nextDeliveryID
	s.nextDeliveryID++
	tag := binary.BigEndian.AppendUint64(nil, d.Message.ID)
	l.sendCredit--
	l.sendCount++
	if !l.presettled {
		s.unsettled[id] = &outDelivery{l: l, msgID: d.Message.ID}
		l.unsettledCount++
	}
	l.streaming = true
	if l.wake == nil {
		l.wake = make(chan struct{}, 1)
	}
	c.streams.Add(1)
	go l.stream(d, id, tag)
}

// stream is the streamer of one large delivery (owned by c.streams: the
// connection's finish waits for it).
func (l *link) stream(d server.Delivery, id uint32, tag []byte) {
	s, c := l.s, l.s.c
	defer c.streams.Done()
	sent := l.streamFrames(d, id, tag)
	s.mu.Lock()
	l.streaming = false
	live := !l.detached && !s.ended
	if sent && l.presettled {
		s.toAck = append(s.toAck, presettled{l.consumer.ID(), d.Message.ID})
	}
	n := 0
	if live {
		l.pumpLocked()
		n = l.topupLocked()
	}
	s.mu.Unlock()
	s.flushAcks()
	if n > 0 {
		l.consumer.Credit(n)
	}
}

// streamFrames writes d's transfers; it reports whether the last one was
// written.
func (l *link) streamFrames(d server.Delivery, id uint32, tag []byte) bool {
	s, c := l.s, l.s.c
	m := d.Message
	chunk := int(c.peerMaxFrame) - transferOverhead
	buf, kind := appendMessageHead(make([]byte, 0, 2*chunk), m, d.DeliveryCount)
	buf = appendBodyHead(buf, kind, uint32(m.LargeSize()))
	t := Transfer{Handle: l.handle, DeliveryID: id, HasDeliveryID: true, DeliveryTag: tag, Settled: l.presettled}
	next, chunks := 0, m.LargeChunks()
	for {
		for len(buf) < chunk && next < chunks {
			p, err := c.srv.ReadLargeChunk(m, next)
			if err != nil {
				c.log.Error("reading a large message's body for an AMQP delivery failed", "message", m.ID, "err", err)
				c.fail(closeWith(ErrInternal, "reading message %d's body: %v", m.ID, err))
				return false
			}
			buf = append(buf, p...)
			next++
		}
		k := min(len(buf), chunk)
		last := k == len(buf) && next == chunks
		if err := c.w.waitBelow(c.ctx, softLimit); err != nil {
			return false
		}
		for {
			s.mu.Lock()
			if l.detached || s.ended {
				s.mu.Unlock()
				return false
			}
			if s.remoteIncomingWindow > 0 {
				break
			}
			s.mu.Unlock()
			select {
			case <-l.wake:
			case <-c.ctx.Done():
				return false
			}
		}
		t.More = !last
		piece := buf[:k]
		ok := c.w.with(func(b []byte) []byte { return appendFrame(b, frameAMQP, s.channel, &t, piece) })
		s.nextOutgoingID++
		s.remoteIncomingWindow--
		s.mu.Unlock()
		if !ok || last {
			return ok
		}
		t.HasDeliveryID, t.DeliveryTag = false, nil
		buf = append(buf[:0], buf[k:]...)
	}
}
