package stomp

import (
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/server"
)

// Large messages sent over STOMP (docs/large-messages.md). A SEND whose
// content-length is above the acceptor's stompMinLargeMessageSize
// (default 100 KiB, as Artemis) is a large message when the broker has a
// large-messages journal: the decoder hands the frame over without its
// body (Frame.Stream), and handleLargeSend copies the body from the
// socket to the journal a piece at a time (server.LargeUpload): the
// connection never holds it whole. Its RECEIPT comes once the body and
// the message are durable, as for any SEND. A connection lost in the
// middle of the body stores nothing (the chunks written are released).
// A body without a content-length is never streamed (it is limited to
// server.MaxBodySize, like every body on a broker without the journal).

// DefaultMinLargeMessageSize is stompMinLargeMessageSize's default
// (Artemis's).
const DefaultMinLargeMessageSize = 100 << 10

// largeReadPiece is how much of a streamed body is read at a time.
const largeReadPiece = 64 << 10

// connLimits are the decoder's limits for a connection: bodies above the
// acceptor's stompMinLargeMessageSize stream when the server has a
// large-messages journal (0 or less turns that off; at most
// server.MaxBodySize, so that every larger body streams).
func connLimits(pc server.ProtocolConn) Limits {
	l := limits
	if pc.Server == nil || !pc.Server.HasLargeStore() {
		return l
	}
	n := int64(DefaultMinLargeMessageSize)
	if v := pc.Params["stompMinLargeMessageSize"]; v != "" {
		if x, err := strconv.ParseInt(v, 10, 64); err == nil {
			n = x
		}
	}
	if n > 0 {
		l.StreamAbove = int(min(n, server.MaxBodySize))
	}
	return l
}

// handleLargeSend stores a SEND whose body streams (f.Stream bytes, not
// read yet): a refusal before the body is read ends the connection (its
// body is not read), as any refused SEND does.
func (c *conn) handleLargeSend(f *Frame, dest server.Destination, m *server.Message) error {
	if f.Value("transaction") != "" {
		return errorf(f, "large message in a transaction", "a SEND of %d bytes (above stompMinLargeMessageSize) cannot be part of a transaction", f.Stream)
	}
	// Checked before the body is stored (and again by the send): a
	// client that may not send there writes nothing to the journal.
	if err := server.Authorize(c.ctx, auth.Send, dest.Name); err != nil {
		return errorf(f, "send refused", "%v", err)
	}
	up, err := c.s.BeginLargeUpload()
	if err != nil {
		return errorf(f, "send failed", "%v", err)
	}
	if err := c.copyBody(up); err != nil {
		up.Abort() // nothing of it is stored
		var pe *protocolError
		if errors.As(err, &pe) {
			pe.receipt = f.Value("receipt")
			return pe
		}
		return err
	}
	receipt := f.Value("receipt")
	if err := c.ops.acquire(c.ctx, c.failed, 0); err != nil {
		up.Abort()
		return err
	}
	up.Send(c.ctx, c.sess, dest, m, func(err error) {
		c.ops.release(0)
		if err != nil {
			c.fail(&protocolError{msg: "send failed", receipt: receipt, detail: err.Error()})
			return
		}
		c.receipt(receipt)
	})
	return nil
}

// copyBody copies the streamed body into up, moving the read deadline
// on as bytes arrive (silence for the TTL still ends the connection).
func (c *conn) copyBody(up *server.LargeUpload) error {
	body := c.dec.Body()
	buf := make([]byte, largeReadPiece)
	var last time.Time
	for {
		if now := time.Now(); now.Sub(last) > c.ttl/8 {
			c.nc.SetReadDeadline(now.Add(c.ttl))
			last = now
		}
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := up.Write(buf[:n]); werr != nil {
				return &protocolError{msg: "send failed", detail: werr.Error()}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.readError(err)
		}
	}
}
