package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/wire"
)

// ReplicaHandler takes over replication connections (issue 13): a Hello
// with wire.ReplicaClientID and the cluster credentials hands its
// connection to Serve, which then owns the conversation (package
// replication's live side). Serve runs on a goroutine of its own, outside
// the acceptor (closing the acceptor does not end it), and returns when
// the replication ends; the connection is closed after it.
type ReplicaHandler struct {
	// User and Password are the cluster credentials a replica must give.
	User, Password string
	// Serve runs the replication conversation. r holds what was read
	// after Hello; nothing has been written to nc yet: Serve answers the
	// Hello (corr) itself.
	Serve func(nc net.Conn, r *bufio.Reader, hello *wire.Hello, corr uint64)
}

// SetReplicaHandler installs h (nil: replication connections are refused
// with CodeUnavailable).
func (s *Server) SetReplicaHandler(h *ReplicaHandler) { s.replica.Store(h) }

// errHandedOff ends a connection whose replication conversation ended.
var errHandedOff = errors.New("replication connection ended")

// handOffReplica runs a replication connection: it checks the cluster
// credentials, stops the connection's writer and gives the socket to the
// handler.
func (c *conn) handOffReplica(h wire.Header, hello *wire.Hello) error {
	rh := c.s.replica.Load()
	if rh == nil {
		c.out.frame(0, &wire.Error{Code: wire.CodeUnavailable, Message: "this broker does not accept replicas now (not live, or not a replication primary)"})
		return errors.New("replication connection refused: no replica handler")
	}
	return c.handOff(h, hello, rh, "replication")
}

// SetQuorumHandler installs h for quorum vote connections (a Hello with
// wire.QuorumClientID and the cluster credentials, issue 14; nil: refused
// with CodeUnavailable). Serve answers one request and returns.
func (s *Server) SetQuorumHandler(h *ReplicaHandler) { s.quorum.Store(h) }

// handOffQuorum runs a quorum vote connection.
func (c *conn) handOffQuorum(h wire.Header, hello *wire.Hello) error {
	qh := c.s.quorum.Load()
	if qh == nil {
		c.out.frame(0, &wire.Error{Code: wire.CodeUnavailable, Message: "this broker takes no part in a quorum vote"})
		return errors.New("quorum vote connection refused: no quorum handler")
	}
	return c.handOff(h, hello, qh, "quorum vote")
}

// handOff checks the cluster credentials, stops the connection's writer
// and gives the socket to rh (what names the protocol in logs).
func (c *conn) handOff(h wire.Header, hello *wire.Hello, rh *ReplicaHandler, what string) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.acc.opts.HandshakeTimeout)
	err := c.acc.security().CheckCredentials(ctx, auth.Credentials{User: hello.User, Password: hello.Password,
		Remote: c.nc.RemoteAddr().String(), Protocol: what}, rh.User, rh.Password)
	cancel()
	if err != nil {
		c.out.frame(0, &wire.Error{Code: wire.CodeAuthFailed, Message: what + " needs the cluster user and password"})
		return loggedError{fmt.Errorf("%s connection refused: %w", what, err)}
	}
	c.out.close()
	if err := <-c.writerErr; err != nil {
		return err
	}
	c.writerErr <- nil // shutdown reads it once more
	// The handler sets its own deadlines (the writer's write timeout
	// may have left one).
	c.nc.SetDeadline(time.Time{})
	if what == "replication" {
		c.log.Info("replication connection", "user", clip(hello.User))
	}
	// The handler owns the socket from now on, beyond this acceptor: a
	// failback stops serving clients (closing the acceptors) and still
	// needs the replication connection for its handover. Its reader
	// starts with what the decoder received after Hello.
	unread := bytes.Clone(c.dec.Unread())
	nc, br, corr := c.nc, bufio.NewReaderSize(io.MultiReader(bytes.NewReader(unread), c.src), 64<<10), h.Corr
	go func() {
		defer nc.Close()
		rh.Serve(nc, br, hello, corr)
	}()
	return errHandedOff
}
