package amqp

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/server"
)

// Large messages sent over AMQP (docs/large-messages.md). A multi-frame
// transfer whose bytes so far pass the acceptor's amqpMinLargeMessageSize
// (default 100 KiB) becomes an upload into the large-messages journal as
// soon as the sections before its body have arrived: those sections
// (header, annotations, properties, application-properties) are decoded
// as for any message and kept; the body's bytes, those received so far
// and each later frame's, go to the journal as they come (server
// LargeUpload), never whole in memory. The message is stored once its
// last frame is durable, and only then settled.
//
// What is stored as the body is what a small message stores: the bytes
// of a single data section, or of an amqp-value holding a binary or a
// string (its kind kept in SectionsProperty), so AMQP, STOMP and Tandem
// consumers get a large message as they would a small one. The body must
// be encoded with a 32-bit length (vbin32 or str32, as every client does
// for bodies this size); a body of several data sections, an
// amqp-sequence or another amqp-value is not streamed (refused above the
// message limit, as before).

// DefaultMinLargeMessageSize is amqpMinLargeMessageSize's default
// (Artemis's).
const DefaultMinLargeMessageSize = 100 << 10

// maxLargeTail bounds what may follow a large message's body (a footer).
const maxLargeTail = 64 << 10

// maxLargeUploads is how many large messages one connection may be
// streaming at a time (on different links), as on Tandem's protocol; past
// it a message is not streamed (held in memory up to the message limit).
const maxLargeUploads = 16

// parseMinLarge reads the acceptor's amqpMinLargeMessageSize: 0 or less
// turns streaming off (bodies over the message limit are refused); at
// most server.MaxBodySize, so that every larger body streams.
func parseMinLarge(v string) int {
	if v == "" {
		return DefaultMinLargeMessageSize
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return DefaultMinLargeMessageSize // the config parser refuses such a value
	}
	return int(min(n, server.MaxBodySize))
}

// largeIn is a large message being received on a link (reader-owned).
type largeIn struct {
	c    *conn
	up   *server.LargeUpload // nil once refused or sent
	in   *inMessage
	left uint64 // body bytes still to come
	tail []byte // what follows the body (a footer)
	// err refuses the message: the rest of its frames are dropped and it
	// is rejected with cond at its end (cond "": an unknown outcome, the
	// connection ends).
	err  error
	cond Symbol
}

// largeSplit is where a large message's body starts in its first bytes.
type largeSplit struct {
	bodyStart    int    // its section's descriptor
	contentStart int    // its bytes (after the vbin32 or str32 header)
	bodyLen      uint64 // its bytes' length
	kind         byte   // bodyData, bodyValueBinary or bodyValueString
}

// splitLarge finds the body of a message's first bytes b: ok when every
// section before it and its header are in b; why, when the message cannot
// be streamed (its body is not one data section or amqp-value binary or
// string of a 32-bit length).
func splitLarge(b []byte) (sp largeSplit, ok bool, why string) {
	d := newDecoder(b)
	for d.more() {
		start := d.off
		code, known := d.descriptor()
		if d.err != nil {
			return sp, false, "" // not all of it yet (or malformed: found at its end)
		}
		if !known || code < descHeader || code > descFooter {
			return sp, false, fmt.Sprintf("unexpected section descriptor 0x%x", code)
		}
		switch code {
		case descData, descAMQPValue:
			c := d.byte()
			switch {
			case d.err != nil:
				return sp, false, ""
			case code == descData && c == codeVbin32:
				sp.kind = bodyData
			case code == descAMQPValue && c == codeVbin32:
				sp.kind = bodyValueBinary
			case code == descAMQPValue && c == codeStr32:
				sp.kind = bodyValueString
			default:
				return sp, false, fmt.Sprintf("a large message's body must be one data section or an amqp-value binary or string, not section 0x%x of type code 0x%02x", code, c)
			}
			n := d.u32()
			if d.err != nil {
				return sp, false, ""
			}
			sp.bodyStart, sp.contentStart, sp.bodyLen = start, d.off, uint64(n)
			return sp, true, ""
		case descAMQPSequence, descFooter:
			return sp, false, "a large message's body must be one data section or an amqp-value binary or string"
		}
		d.skip()
		if d.err != nil {
			return sp, false, ""
		}
	}
	return sp, false, ""
}

// maybeLarge turns the delivery being received on l into an upload once
// its bytes so far pass the acceptor's threshold and its body started.
func (l *link) maybeLarge() {
	c := l.s.c
	if l.coordinator || c.cfg.minLarge <= 0 || len(l.partial) <= c.cfg.minLarge || l.notLarge != "" || !c.srv.HasLargeStore() {
		return
	}
	if c.largeUploads >= maxLargeUploads {
		l.notLarge = fmt.Sprintf("%d large messages in progress on the connection, the most it may stream", c.largeUploads)
		return
	}
	sp, ok, why := splitLarge(l.partial)
	if !ok {
		l.notLarge = why
		return
	}
	lg := &largeIn{c: c, left: sp.bodyLen}
	l.large = lg
	rest := l.partial[sp.contentStart:]
	defer func() { l.partial = nil }()
	var err error
	if lg.in, err = decodeSections(l.partial[:sp.bodyStart], false, int(sp.kind)); err != nil {
		lg.refuse(ErrDecode, err)
		return
	}
	if l.partialT.State.Kind == descTransactionalState {
		lg.refuse(ErrNotImplemented, errors.New("a large message (above amqpMinLargeMessageSize) cannot be sent in a transaction"))
		return
	}
	dest, cond, err := l.destination(lg.in)
	if err != nil {
		lg.refuse(cond, err)
		return
	}
	// Checked before anything is stored (and again by the send): a client
	// that may not send there writes nothing to the journal.
	if err := server.Authorize(c.ctx, auth.Send, dest.Name); err != nil {
		lg.refuse(condition(err), err)
		return
	}
	if lg.up, err = c.srv.BeginLargeUpload(); err != nil {
		lg.refuse("", err)
		return
	}
	c.largeUploads++
	lg.feed(rest)
}

// refuse drops the upload: nothing of it is stored.
func (lg *largeIn) refuse(cond Symbol, err error) {
	if lg.err == nil {
		lg.err, lg.cond = err, cond
		if cond == "" && definite(err) {
			lg.cond = condition(err)
		}
	}
	lg.abort()
}

// unknown ends the connection when the upload failed without a definite
// outcome (the broker halting): the client resends elsewhere, without
// sending the rest of the body first.
func (lg *largeIn) unknown() error {
	if lg.err != nil && lg.cond == "" {
		return closeWith(ErrConnectionForced, "large message not stored: %v", lg.err)
	}
	return nil
}

func (lg *largeIn) abort() {
	if lg.up != nil {
		lg.up.Abort()
		lg.up = nil
		lg.c.largeUploads--
	}
}

// feed takes the next bytes of a large message: its body's to the
// journal, what follows into tail.
func (lg *largeIn) feed(p []byte) {
	if lg.err != nil {
		return
	}
	n := min(uint64(len(p)), lg.left)
	if n > 0 {
		if _, err := lg.up.Write(p[:n]); err != nil {
			lg.refuse("", err)
			return
		}
		lg.left -= n
	}
	if rest := p[n:]; len(rest) > 0 {
		if len(lg.tail)+len(rest) > maxLargeTail {
			lg.refuse(ErrDecode, fmt.Errorf("more than %d bytes after a large message's body (only a footer may follow it)", maxLargeTail))
			return
		}
		lg.tail = append(lg.tail, rest...)
	}
}

// finishLarge handles a large message's last frame: a complete one is
// stored (settled once durable), a refused one rejected.
func (l *link) finishLarge(t *Transfer, lg *largeIn) error {
	if lg.err == nil && lg.left > 0 {
		lg.refuse(ErrDecode, fmt.Errorf("the delivery ended %d bytes before the end of its body", lg.left))
	}
	if lg.err == nil {
		d := newDecoder(lg.tail)
		for d.more() {
			if code, _ := d.descriptor(); d.err == nil && code != descFooter {
				d.fail("section 0x%x after a large message's body (only a footer may follow it)", code)
			}
			d.skip()
		}
		if d.err != nil {
			lg.refuse(ErrDecode, d.err)
		}
	}
	if lg.err != nil {
		l.refill()
		settled := t.HasSettled && t.Settled
		switch {
		case lg.cond == "":
			return closeWith(ErrConnectionForced, "large message not stored: %v", lg.err)
		case settled:
			l.s.c.log.Info("dropping a refused pre-settled large message", "err", lg.err)
		default:
			l.dispose(t.DeliveryID, &DeliveryState{Kind: descRejected, Error: &Error{Condition: lg.cond, Description: lg.err.Error()}})
		}
		return nil
	}
	up := lg.up
	lg.up = nil
	lg.c.largeUploads--
	return l.send(t, lg.in, up)
}
