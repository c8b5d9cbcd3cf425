package server

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/wire"
)

// CoreProtocol is the name of Tandem's own protocol on an acceptor's
// protocols= list (Artemis calls its own protocol CORE).
const CoreProtocol = "CORE"

// ProtocolHandler serves one protocol on the broker's acceptors. Handlers
// live in their own packages (stomp, amqp) and are registered on the
// Server with RegisterProtocol before Listen; Tandem's own protocol needs
// no handler.
type ProtocolHandler interface {
	// Name is the protocol's name as acceptor URLs list it: "AMQP",
	// "STOMP" (Tandem's own is "CORE").
	Name() string
	// Detect reports whether the first bytes of a connection (at most
	// 8; fewer only when the client sent fewer before pausing) belong to
	// this protocol.
	Detect(prefix []byte) bool
	// Serve runs one connection until it ends. c.Reader holds the bytes
	// already read (the prefix included). The handler owns c.Conn until
	// Serve returns (the acceptor closes it after). ctx ends when the
	// acceptor closes (broker stopping or failing over): the handler then
	// closes the connection with the protocol's own "going away" signal.
	Serve(ctx context.Context, c ProtocolConn)
}

// ProtocolRefuser is implemented by a handler that can refuse a
// connection the way its protocol does (a STOMP ERROR frame, an AMQP
// close with amqp:connection:forced): a broker that is not live (an HA
// backup holding its acceptor ports) refuses every client with it, so the
// client's own address list moves on to the live broker.
type ProtocolRefuser interface {
	// Refuse reads what it needs of the client's opening (from r, which
	// holds the prefix), answers with reason and returns; the caller
	// closes nc. It must not block longer than nc's deadline allows.
	Refuse(nc net.Conn, r *bufio.Reader, reason string)
}

// ProtocolConn is one connection handed to a ProtocolHandler.
type ProtocolConn struct {
	// Conn is the client's connection; the handler writes to it directly.
	Conn net.Conn
	// Reader reads from Conn and holds the bytes the acceptor already
	// read to detect the protocol.
	Reader *bufio.Reader
	// Server is the broker the connection works on.
	Server *Server
	// Login checks a user and password (both empty: anonymous, or the
	// client's verified TLS certificate) through the acceptor's guard,
	// within the handshake timeout, and on success makes the subject the
	// connection's: the context Serve got authorizes as it from then on.
	// The error (an *auth.LoginError) is logged by the guard and says
	// what the client may be told.
	Login func(user, password string) (*auth.Subject, error)
	// AnonymousAllowed reports whether a client without credentials is
	// let in (AMQP offers SASL ANONYMOUS then).
	AnonymousAllowed func() bool
	// PeerCertificate is the client's TLS certificate, verified against
	// the acceptor's trust store (nil: none; AMQP offers SASL EXTERNAL
	// when set).
	PeerCertificate *x509.Certificate
	// Logger has the connection's ID and remote address on every line.
	Logger *slog.Logger
	// Params are the acceptor URL's parameters (anycastPrefix,
	// multicastPrefix, ...), read-only.
	Params map[string]string
	// DefaultTTL is the acceptor's connection TTL for a client that asks
	// for none; TTLOverride, when > 0, replaces any client's. TTLMax,
	// when > 0, caps a TTL the client chooses (connection-ttl-max).
	DefaultTTL, TTLOverride, TTLMax time.Duration
	// HandshakeTimeout bounds the wait for the protocol's opening frame.
	HandshakeTimeout time.Duration
}

// RegisterProtocol adds a protocol that every acceptor opened afterwards
// serves (unless its protocols= list leaves it out). Registering a name
// twice replaces the earlier handler.
func (s *Server) RegisterProtocol(h ProtocolHandler) {
	s.protoMu.Lock()
	defer s.protoMu.Unlock()
	name := strings.ToUpper(h.Name())
	for i, x := range s.protocols {
		if strings.ToUpper(x.Name()) == name {
			s.protocols[i] = h
			return
		}
	}
	s.protocols = append(s.protocols, h)
}

// ParseProtocols parses an acceptor's protocols= value (Artemis's syntax:
// names separated by commas, case-insensitive) against the names of the
// registered handlers: it returns the names this broker serves and, apart,
// the ones it does not know (Artemis's MQTT, OPENWIRE, HORNETQ), which
// the caller warns about. An empty value means every protocol (nil). The
// error says that the list names no protocol this broker serves.
func ParseProtocols(v string, known []string) (serve, unknown []string, err error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil, nil
	}
	for _, p := range strings.Split(v, ",") {
		p = strings.ToUpper(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		ok := p == CoreProtocol
		for _, k := range known {
			ok = ok || strings.ToUpper(k) == p
		}
		if ok {
			serve = append(serve, p)
		} else {
			unknown = append(unknown, p)
		}
	}
	if len(serve) == 0 {
		return nil, unknown, fmt.Errorf("protocols=%s names no protocol this broker serves (%s)", v, strings.Join(append([]string{CoreProtocol}, known...), ","))
	}
	return serve, unknown, nil
}

// acceptorProtocols returns the handlers acceptor opts serve and whether
// CORE is among them.
func (s *Server) acceptorProtocols(opts NetOptions) (hs []ProtocolHandler, core bool) {
	s.protoMu.Lock()
	all := append([]ProtocolHandler(nil), s.protocols...)
	s.protoMu.Unlock()
	if len(opts.Protocols) == 0 {
		return all, true
	}
	for _, p := range opts.Protocols {
		p = strings.ToUpper(p)
		if p == CoreProtocol {
			core = true
			continue
		}
		for _, h := range all {
			if strings.ToUpper(h.Name()) == p {
				hs = append(hs, h)
			}
		}
	}
	return hs, core
}

// DetectCore reports whether prefix starts a Tandem protocol connection:
// its frames begin with a 4-byte big-endian length below 16 MiB, so the
// first byte is 0, which no text protocol and no AMQP header starts with.
func DetectCore(prefix []byte) bool { return len(prefix) > 0 && prefix[0] == 0 }

// detectPrefix is how many bytes a handler's Detect gets at most.
const detectPrefix = 8

// detectBuf is the read buffer of a connection while its protocol is
// detected (bufio's smallest, more than the detectPrefix+1 Detect peeks);
// protocolReadBuf is the one a protocol handler's Reader gets (STOMP's
// decoder wants 4 KiB). Tandem's own protocol reads through its
// decoder's buffer, which grows with the traffic.
const (
	detectBuf       = 16
	protocolReadBuf = 4 << 10
)

// Detect reads the first bytes of a connection from br (with nc's read
// deadline as the caller set it) and returns the handler they belong to
// (nil with core true for Tandem's own protocol). It waits for up to
// detectPrefix bytes only while no candidate matches what arrived.
func Detect(br *bufio.Reader, hs []ProtocolHandler, core bool) (h ProtocolHandler, isCore bool, err error) {
	if _, err := br.Peek(1); err != nil {
		return nil, false, err
	}
	for {
		n := min(br.Buffered(), detectPrefix)
		prefix, _ := br.Peek(n)
		if core && DetectCore(prefix) {
			return nil, true, nil
		}
		for _, x := range hs {
			if x.Detect(prefix) {
				return x, false, nil
			}
		}
		if n >= detectPrefix {
			return nil, false, fmt.Errorf("unknown protocol (first bytes %q)", prefix)
		}
		if _, err := br.Peek(n + 1); err != nil {
			return nil, false, fmt.Errorf("unknown protocol (first bytes %q): %w", prefix, err)
		}
	}
}

// protoState is an acceptor's part for protocol handlers: the context
// their connections run under, cancelled by Close.
type protoState struct {
	once     sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	handlers []ProtocolHandler
	core     bool
}

func (a *Acceptor) protoInit() {
	a.proto.once.Do(func() {
		a.proto.ctx, a.proto.cancel = context.WithCancel(context.Background())
		a.proto.handlers, a.proto.core = a.s.acceptorProtocols(a.opts)
	})
}

// cancelProtocols ends every protocol handler's connection (Close).
func (a *Acceptor) cancelProtocols() {
	a.protoInit()
	a.proto.cancel()
}

// serveConn runs one accepted connection: Tandem's protocol directly when
// it is the only one the acceptor serves, else after detecting the
// protocol from the first bytes.
func (a *Acceptor) serveConn(c *conn) {
	a.protoInit()
	p := &a.proto
	if !a.startTLS(c) {
		c.nc.Close()
		a.forget(c)
		return
	}
	if len(p.handlers) == 0 && p.core {
		c.serve()
		return
	}
	// Detection reads through a minimal buffer: a connection that sends
	// nothing (or a few bytes) costs no read buffer until it is known.
	br := bufio.NewReaderSize(c.nc, detectBuf)
	c.nc.SetReadDeadline(time.Now().Add(a.opts.HandshakeTimeout))
	h, core, err := Detect(br, p.handlers, p.core)
	if err != nil {
		a.unknownProtocol(c, err)
		c.nc.Close()
		a.forget(c)
		return
	}
	if core {
		c.prefix, _ = br.Peek(br.Buffered())
		c.serve()
		return
	}
	c.nc.SetReadDeadline(time.Time{})
	c.setMeta(connMeta{protocol: strings.ToLower(h.Name())})
	log := c.log.With("protocol", h.Name())
	defer func() {
		if r := recover(); r != nil {
			// A handler bug must not take the broker down with every
			// other client: log it with the stack and drop the
			// connection.
			log.Error("protocol handler panicked; connection closed", "panic", r, "stack", string(debug.Stack()))
		}
		c.nc.Close()
		a.forget(c)
	}()
	ctx, slot := withSlot(p.ctx)
	proto := strings.ToLower(h.Name())
	login := func(user, password string) (*auth.Subject, error) {
		lctx, cancel := context.WithTimeout(ctx, a.opts.HandshakeTimeout)
		defer cancel()
		sub, err := a.login(lctx, c.nc, proto, user, password)
		if err == nil {
			slot.set(sub)
			c.setMeta(connMeta{protocol: proto, user: sub.User})
		}
		return sub, err
	}
	h.Serve(ctx, ProtocolConn{
		Conn: c.nc, Reader: bufio.NewReaderSize(br, protocolReadBuf), Server: a.s, Login: login,
		AnonymousAllowed: a.security().AnonymousAllowed, PeerCertificate: peerCertificate(c.nc), Logger: log,
		Params: a.opts.Params, DefaultTTL: a.opts.DefaultTTL, TTLOverride: a.opts.TTLOverride, TTLMax: a.opts.TTLMax,
		HandshakeTimeout: a.opts.HandshakeTimeout,
	})
}

// unknownProtocol logs a connection closed for its first bytes,
// rate-limited as other lines clients cause (a port scanner must not flood
// the log).
func (a *Acceptor) unknownProtocol(c *conn, err error) {
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.As(err, &ne) && ne.Timeout() && a.stopping.Load() {
		c.log.Debug("connection closed before sending anything", "reason", err)
		return
	}
	a.logs.log(c.log, slog.LevelWarn, "unknown-protocol", "connection closed before a protocol was recognised", "reason", err)
}

// DefaultRouting is how a send or consumer on addr routes when the client
// names no routing type: the address's routing when it exists with only
// one, else its default-address-routing-type, else anycast.
func (s *Server) DefaultRouting(addr string) Routing {
	return s.defaultRouting(addr, wire.RoutingDefault)
}

// AckInto moves the acknowledgement of message msgID, delivered to
// consumer consumerID of ss, into the transacted session tx: it is made
// durable by tx's Commit, atomically with tx's sends, and returned to its
// queue for redelivery by tx's Rollback or Close. A protocol whose
// transactions span consumers of another session (STOMP's BEGIN/ACK with
// a transaction header) uses it.
func (ss *Session) AckInto(tx *Session, consumerID, msgID uint64) error {
	if !tx.transacted {
		return ErrNotTransacted
	}
	ss.mu.Lock()
	c := ss.consumers[consumerID]
	if c == nil || ss.closed {
		ss.mu.Unlock()
		return fmt.Errorf("%w: no consumer %d", ErrUnknownDelivery, consumerID)
	}
	r, err := c.take(msgID)
	ss.mu.Unlock()
	if err != nil {
		return err
	}
	r.q.delivering.Add(1) // still being delivered until the commit
	tx.mu.Lock()
	if tx.closed {
		tx.mu.Unlock()
		ss.s.cancelAcks([]*ref{r})
		return ErrClosed
	}
	tx.txAcks = append(tx.txAcks, r)
	tx.mu.Unlock()
	return nil
}

// Release gives message msgID, delivered to consumer consumerID, back to
// its queue's head for redelivery (its delivery count kept, so the next
// delivery counts one more), as a consumer's close does for everything it
// holds: STOMP's NACK, AMQP's released and modified outcomes.
func (ss *Session) Release(consumerID, msgID uint64) error {
	ss.mu.Lock()
	c := ss.consumers[consumerID]
	if c == nil || ss.closed {
		ss.mu.Unlock()
		return fmt.Errorf("%w: no consumer %d", ErrUnknownDelivery, consumerID)
	}
	r, err := c.take(msgID)
	ss.mu.Unlock()
	if err != nil {
		return err
	}
	r.q.delivering.Add(1) // requeue counts it out again
	ss.s.cancelAcks([]*ref{r})
	return nil
}
