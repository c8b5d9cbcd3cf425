package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// TLS on an acceptor (NetOptions.TLS): each accepted connection is a
// *tls.Conn over a peekConn, so that serveConn can look at the first byte
// before the TLS server reads it: a TLS client starts with a handshake
// record (0x16); anything else is a client speaking in plain text, which
// is told, in its own protocol where possible, that the acceptor requires
// TLS. The handshake then runs within the handshake timeout, and the
// protocol is detected inside TLS.

// tlsRecordHandshake is the first byte of a TLS connection.
const tlsRecordHandshake = 0x16

// ErrTLSRequired is the reason given to a plain-text client of a TLS
// acceptor.
var ErrTLSRequired = errors.New("this acceptor requires TLS: connect with sslEnabled=true (and trustStorePath to trust the broker's certificate)")

// peekConn is a raw connection read through a small buffer.
type peekConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekConn) Read(b []byte) (int, error) { return p.r.Read(b) }

func newTLSConn(raw net.Conn, cfg *tls.Config) net.Conn {
	return tls.Server(&peekConn{Conn: raw, r: bufio.NewReaderSize(raw, detectBuf)}, cfg)
}

// startTLS runs the TLS handshake of c (a no-op without TLS) and reports
// whether the connection goes on.
func (a *Acceptor) startTLS(c *conn) bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	pc := tc.NetConn().(*peekConn)
	c.nc.SetReadDeadline(time.Now().Add(a.opts.HandshakeTimeout))
	first, err := pc.r.Peek(1)
	if err != nil {
		c.log.Debug("connection closed before sending anything", "reason", err)
		return false
	}
	if first[0] != tlsRecordHandshake {
		a.plainOnTLS(c, pc)
		return false
	}
	ctx, cancel := context.WithTimeout(a.proto.ctx, a.opts.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		a.stats.tlsErrors.Add(1)
		if !errors.Is(err, io.EOF) && !a.stopping.Load() {
			a.logs.log(c.log, slog.LevelWarn, "tls-handshake", "TLS handshake failed; connection closed", "reason", err)
		}
		return false
	}
	return true
}

// plainOnTLS answers a client that started in plain text on a TLS
// acceptor: Tandem's protocol gets an Error frame, STOMP an ERROR frame,
// AMQP its refusal; then the connection closes.
func (a *Acceptor) plainOnTLS(c *conn, pc *peekConn) {
	a.stats.tlsErrors.Add(1)
	a.logs.log(c.log, slog.LevelWarn, "tls-plain", "plain-text client on a TLS acceptor; connection closed")
	br := bufio.NewReaderSize(pc, detectBuf)
	h, core, err := Detect(br, a.proto.handlers, true)
	if err != nil {
		return
	}
	pc.SetWriteDeadline(time.Now().Add(time.Second))
	if core {
		b, _ := wire.AppendFrame(nil, 0, &wire.Error{Code: wire.CodeProtocol, Message: ErrTLSRequired.Error()})
		pc.Write(b)
		return
	}
	if rf, ok := h.(ProtocolRefuser); ok {
		pc.SetReadDeadline(time.Now().Add(time.Second))
		rf.Refuse(pc, bufio.NewReaderSize(br, protocolReadBuf), ErrTLSRequired.Error())
	}
}
