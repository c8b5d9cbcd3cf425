package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync/atomic"

	"github.com/tandemmq/tandem/auth"
)

// Security (docs/security.md). Every acceptor has an auth.Guard
// (NetOptions.Security, or one built from NetOptions.Users). A connection
// logs in through it during its handshake (Tandem's Hello, STOMP's
// CONNECT, AMQP's SASL), and the auth.Subject it gets is put in the
// connection's context by the acceptor itself, before the protocol
// handler runs: every operation a client asks for (a send, a consumer, a
// queue created or deleted, an auto-create, a management operation) takes
// that context, and the server checks the subject's permission where the
// operation happens, whatever the protocol. A context without a subject is
// the broker's own work (auto-delete, recovery, a connection's cleanup of
// its temporary queues) and is not checked; a connection's context before
// its login allows nothing.

type subjectKey struct{}

// subjectSlot holds a connection's subject once it logged in.
type subjectSlot struct {
	sub atomic.Pointer[auth.Subject]
	in  atomic.Bool
}

func (s *subjectSlot) set(sub *auth.Subject) {
	s.sub.Store(sub)
	s.in.Store(true)
}

// withSlot returns ctx with an empty subject slot: nothing is allowed
// under it until the slot is set.
func withSlot(ctx context.Context) (context.Context, *subjectSlot) {
	s := &subjectSlot{}
	return context.WithValue(ctx, subjectKey{}, s), s
}

// WithSubject returns ctx under which operations are authorized as sub's
// (a management request over HTTP, a test). A nil sub may do everything.
func WithSubject(ctx context.Context, sub *auth.Subject) context.Context {
	ctx, s := withSlot(ctx)
	s.set(sub)
	return ctx
}

// asBroker returns ctx without its subject: what runs under it is the
// broker's own doing (the parts of a management operation already
// authorized as a whole).
func asBroker(ctx context.Context) context.Context {
	return context.WithValue(ctx, subjectKey{}, (*subjectSlot)(nil))
}

// SubjectOf returns the subject of ctx and whether ctx has one (false: the
// broker's own work).
func SubjectOf(ctx context.Context) (*auth.Subject, bool) {
	s, _ := ctx.Value(subjectKey{}).(*subjectSlot)
	if s == nil {
		return nil, false
	}
	return s.sub.Load(), true
}

// Authorize checks that the client of ctx may use p on address (nil, or
// an error satisfying errors.Is(err, auth.ErrDenied)); a protocol handler
// uses it to refuse early (an AMQP link's attach), the server checks every
// operation itself.
func Authorize(ctx context.Context, p auth.Permission, address string) error {
	return authorize(ctx, p, address)
}

// authorize checks that the client of ctx may use p on address.
func authorize(ctx context.Context, p auth.Permission, address string) error {
	s, _ := ctx.Value(subjectKey{}).(*subjectSlot)
	if s == nil {
		return nil
	}
	if !s.in.Load() {
		return &auth.DeniedError{Permission: p, Address: address, Why: "not logged in"}
	}
	return s.sub.Load().Authorize(p, address)
}

// queuePermission is the permission to create (or delete) a queue of that
// durability.
func queuePermission(durable, create bool) auth.Permission {
	switch {
	case durable && create:
		return auth.CreateDurableQueue
	case durable:
		return auth.DeleteDurableQueue
	case create:
		return auth.CreateNonDurableQueue
	}
	return auth.DeleteNonDurableQueue
}

// security returns the acceptor's guard.
func (a *Acceptor) security() *auth.Guard {
	if a.opts.Security == nil { // an Acceptor built by hand (tests)
		return openGuard
	}
	return a.opts.Security
}

// openGuard lets everyone in.
var openGuard = auth.NewStatic(nil)

// Security returns the guard of the server's acceptors (the management
// HTTP API authenticates against it when given none of its own); nil
// before any acceptor opened.
func (s *Server) Security() *auth.Guard {
	s.accMu.Lock()
	defer s.accMu.Unlock()
	for _, a := range s.accs {
		if a.opts.Security != nil {
			return a.opts.Security
		}
	}
	return nil
}

// peerCertificate returns a TLS connection's verified client certificate.
func peerCertificate(nc net.Conn) *x509.Certificate {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return nil
	}
	return st.PeerCertificates[0]
}

// login logs a connection's client in through the acceptor's guard, with
// its remote address and verified certificate, within ctx.
func (a *Acceptor) login(ctx context.Context, nc net.Conn, protocol, user, password string) (*auth.Subject, error) {
	return a.security().Login(ctx, auth.Credentials{User: user, Password: password, Remote: nc.RemoteAddr().String(),
		Cert: peerCertificate(nc), Protocol: protocol})
}
