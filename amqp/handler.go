package amqp

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"

	"github.com/tandemmq/tandem/server"
)

// Name is the protocol's name on an acceptor's protocols= list.
const Name = "AMQP"

// Handler serves AMQP 1.0 on the broker's acceptors (a
// server.ProtocolHandler and server.ProtocolRefuser).
type Handler struct{}

// New returns the AMQP protocol handler.
func New() *Handler { return &Handler{} }

// Name returns "AMQP".
func (h *Handler) Name() string { return Name }

// Detect reports whether prefix starts with an AMQP protocol header
// ("AMQP", of any protocol ID and version: a header the broker does not
// speak is answered with the one it does), or with the start of one when
// fewer bytes arrived.
func (h *Handler) Detect(prefix []byte) bool {
	n := min(len(prefix), 4)
	return n > 0 && string(prefix[:n]) == "AMQP"[:n]
}

// Serve runs one AMQP connection until it ends. The idle-time-out the
// broker announces is the acceptor's connection TTL (its TTL override when
// set); the acceptor's anycastPrefix and multicastPrefix parameters add to
// the queue:// and topic:// address prefixes.
func (h *Handler) Serve(ctx context.Context, pc server.ProtocolConn) {
	idle := pc.DefaultTTL
	if pc.TTLOverride > 0 {
		idle = pc.TTLOverride
	}
	login := func(user, password string) error {
		_, err := pc.Login(user, password)
		return err
	}
	serve(ctx, config{
		srv: pc.Server, login: login, anonymous: pc.AnonymousAllowed, external: pc.PeerCertificate != nil,
		log: pc.Logger, idleTimeout: idle,
		handshake: pc.HandshakeTimeout, anycastPrefix: pc.Params["anycastPrefix"], multicastPrefix: pc.Params["multicastPrefix"],
	}, pc.Conn, pc.Reader)
}

// Refuse answers a client of a broker that is not live: its SASL exchange
// succeeds (whatever the credentials) and the connection ends after the
// client's open, with no open of the broker's, so that the client's
// reconnect moves on to the next address of its list (docs/amqp.md,
// Failover). reason is logged by the caller.
func (h *Handler) Refuse(nc net.Conn, r *bufio.Reader, reason string) {
	serve(context.Background(), config{login: func(string, string) error { return errors.New(reason) },
		anonymous: func() bool { return false }, refuse: reason, log: nil}, nc, r)
}

// trimPrefix cuts from addr the first of the comma-separated prefixes ps
// it starts with.
func trimPrefix(addr, ps string) (string, bool) {
	for _, p := range strings.Split(ps, ",") {
		if p = strings.TrimSpace(p); p != "" && strings.HasPrefix(addr, p) {
			return addr[len(p):], true
		}
	}
	return addr, false
}
