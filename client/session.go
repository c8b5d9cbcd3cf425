package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tandemmq/tandem/wire"
)

// SessionOption configures CreateSession.
type SessionOption func(*Session)

// Transacted makes the session transacted: its sends and acks form a local
// transaction that Commit makes durable and Rollback discards.
func Transacted() SessionOption { return func(s *Session) { s.transacted = true } }

// SessionName names the session in the broker's logs.
func SessionName(name string) SessionOption { return func(s *Session) { s.name = name } }

// Session is a unit of work on a Conn: it owns producers and consumers and,
// when transacted, one open transaction at a time. The Conn keeps its
// definition so failover can re-create it on another broker.
type Session struct {
	c          *Conn
	id         uint64
	name       string
	transacted bool

	mu        sync.Mutex
	consumers map[uint64]*Consumer
	closed    bool
	// The open transaction (transacted sessions only; see "Transactions
	// across a connection loss" below): txOn is the connection all its
	// work (sends and acks) was handed to, nil while it has none; txOps
	// counts that work; rollbackOnly says it must not commit.
	txOn         *transport
	txOps        int
	rollbackOnly bool
}

// Transactions across a connection loss
//
// The broker keeps a session's transaction in the session of one
// connection and discards it when that connection ends (server: the
// connection's shutdown closes its sessions, which rolls them back). A
// failover re-creates the session on the next connection, empty. So a
// transaction is bound to the connection (transport) its work went to:
//
//   - At most one transport of a Conn is alive at a time, the newest: the
//     next is dialled only after the current one failed, and a restore
//     attempt that fails is failed before the next is tried. A transport
//     that is no longer current is dead (isDead).
//   - txOn is the transport that holds the open transaction's work:
//     bindWork records it before a send or ack frame is handed to a
//     transport. Work for another transport than txOn means txOn's work
//     was lost with its connection: the session becomes rollback-only; a
//     send is then refused (ErrTransactionRolledBack, never sent: it
//     would only start a fresh transaction on the next broker), an ack
//     is let through and txOn moves with it (so the rollback that ends
//     the transaction returns that message to its queue, as for any ack
//     in a rolled back transaction).
//   - Commit and Rollback are sent on txOn only (requestVia), never moved
//     to another connection, and answered only by txOn's reader. Once txOn
//     is dead nothing of the transaction can commit any more: Commit
//     returns ErrTransactionRolledBack without sending anything, Rollback
//     returns nil (it is rolled back). A rollback-only transaction on a
//     live txOn is rolled back there by Commit (which then returns
//     ErrTransactionRolledBack) or Rollback.
//
// The interleavings of Commit with a loss and the failover (F) that
// follows, and what Commit returns:
//
//  1. The loss is noticed (txOn failed) before Commit reads the state,
//     e.g. Commit after EventFailingOver: ErrTransactionRolledBack at
//     once; F's new broker never sees the commit. (Before this rule, the
//     commit waited for F, was sent on the new connection after the
//     restore, and its fresh session answered OK: issue 21.)
//  2. txOn is alive when read; Commit waits for the current transport t:
//     a. t is txOn: the commit goes on t only. t's answer is the outcome;
//     t lost with the commit in flight: ErrUnknownOutcome, reported when
//     the loss is noticed (F's settle; the commit is never resent); t
//     failed before the frame was queued: ErrTransactionRolledBack (not
//     sent).
//     b. t is not txOn: txOn was replaced, so it is dead: as 1.
//     c. no transport (ctx ended, or the Conn closed while failing over):
//     not sent, ErrTransactionRolledBack. If txOn is a connection still
//     being restored (acks of its deliveries, 3), the session becomes
//     rollback-only so that work is rolled back, never committed later.
//  3. Work done during F's restore: the new connection delivers before
//     it is installed, so an ack binds to it. With no earlier work that
//     starts the transaction there, and Commit waits for that connection
//     and commits on it. With earlier work (on the lost connection) the
//     session is rollback-only: 2a's Commit rolls back on the new
//     connection (the acked message is redelivered) and returns
//     ErrTransactionRolledBack.
//  4. A transacted send in flight when the connection is lost: F
//     completes it with ErrTransactionRolledBack when it notices the loss
//     (never resent, unlike a non-transacted durable send, whose duplicate
//     ID makes a resend safe); txOn is dead: as 1.
//  5. A transacted send that finds its transport dead before its frame
//     was queued was not sent: if it is the transaction's first work it
//     waits for the next connection and starts the transaction there;
//     otherwise it fails with ErrTransactionRolledBack.
//  6. A transacted send made while failing over or afterwards when the
//     transaction has work on the lost connection: refused as above.
//  7. The commit is answered "unavailable" (an HA live that lost its
//     lease, or a stopping one): ErrUnknownOutcome.
//  8. ctx ends with the commit in flight: ErrUnknownOutcome; the broker
//     still decides, and the transaction ends either way.
//
// Rollback follows the same paths; as both its answer and the loss of its
// connection roll the transaction back, it returns nil for 1, 2a and 2b;
// when it cannot be done on a live txOn the session stays rollback-only.
//
// Non-transacted acks are bound the same way, to the delivery's
// connection (Message.gen): an ack made while failing over, or whose
// connection fails before its frame is written, is reported
// ErrStaleDelivery at once (never sent; the broker redelivers the
// message); one in flight when the loss is noticed, ErrUnknownOutcome. It
// never waits for, nor goes to, the next connection.

// CreateSession opens a session.
func (c *Conn) CreateSession(ctx context.Context, opts ...SessionOption) (*Session, error) {
	s := &Session{c: c, id: c.nextID(), consumers: map[uint64]*Consumer{}}
	for _, o := range opts {
		o(s)
	}
	c.mu.Lock()
	if c.closed {
		err := c.closeErr
		c.mu.Unlock()
		return nil, err
	}
	c.sessions[s.id] = s // registered first: a failover meanwhile re-creates it
	c.mu.Unlock()
	resp, err := c.request(ctx, "create session", &wire.CreateSession{Session: s.id, Transacted: s.transacted, Name: s.name}, lostRetry)
	if err == nil {
		err = result("create session", resp)
	}
	var se *ServerError
	if errors.As(err, &se) && se.Code == wire.CodeExists {
		err = nil // a failover meanwhile re-created it (IDs are never reused)
	}
	if err != nil {
		c.mu.Lock()
		delete(c.sessions, s.id)
		c.mu.Unlock()
		return nil, err
	}
	return s, nil
}

// Transacted reports whether the session is transacted.
func (s *Session) Transacted() bool { return s.transacted }

// bindWork records that the open transaction gets work on t (an ack when
// ack is set, else a send); call it before the frame is handed to t. Work
// for another transport than the one holding the transaction's earlier
// work makes the session rollback-only, and a send is then refused with
// ErrTransactionRolledBack (see "Transactions across a connection loss").
// first says t got the transaction's first work.
func (s *Session) bindWork(t *transport, ack bool) (first bool, err error) {
	if !s.transacted {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.txOn {
	case nil:
		s.txOn, s.txOps = t, 1
		return true, nil
	case t:
		s.txOps++
		return false, nil
	}
	s.rollbackOnly = true
	if !ack {
		return false, errWorkLost
	}
	s.txOn, s.txOps = t, 1
	return false, nil
}

// errWorkLost refuses a transacted send whose transaction lost work.
var errWorkLost = fmt.Errorf("%w: its earlier work was lost with its connection (end it with Commit or Rollback, then redo it)", ErrTransactionRolledBack)

// unbindFirst undoes the bindWork of a transaction's first work that was
// not sent because t had failed, so it may start the transaction on the
// next connection. It reports false when other work was bound to t
// meanwhile (that work is lost: the send must fail too).
func (s *Session) unbindFirst(t *transport) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.txOn != t || s.txOps != 1 {
		return false
	}
	s.txOn, s.txOps = nil, 0
	return true
}

func (s *Session) markRollbackOnly() {
	s.mu.Lock()
	s.rollbackOnly = true
	s.mu.Unlock()
}

// endTxLocked forgets the open transaction (it committed, rolled back, or
// ended with an unknown outcome).
func (s *Session) endTxLocked() {
	s.txOn, s.txOps, s.rollbackOnly = nil, 0, false
}

// abandon is called when a Commit or Rollback could not be sent: work on
// a live transport (one being restored) must not commit later, so the
// session becomes rollback-only; work on a dead one is gone.
func (s *Session) abandon() {
	s.mu.Lock()
	if s.txOn != nil && !s.txOn.isDead() {
		s.rollbackOnly = true
	} else {
		s.endTxLocked()
	}
	s.mu.Unlock()
}

// txLost ends the transaction if its work is on a dead transport (it
// was rolled back with its connection) and reports whether it did.
func (s *Session) txLost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.txOn != nil && s.txOn.isDead() {
		s.endTxLocked()
		return true
	}
	return false
}

// Commit commits the session's transaction. It returns nil only when the
// broker that holds the transaction's work, on the connection it was done
// on, answered that it is durable. It returns ErrTransactionRolledBack
// when nothing of the transaction committed: the broker rolled it back,
// or the connection holding its work was lost (also while the Conn fails
// over: it is never sent to the next broker); redo the whole transaction.
// It returns ErrUnknownOutcome when the connection was lost (or ctx ended)
// while the commit was in flight: it may or may not have committed.
// Either way the transaction has ended. See docs/client-failover.md.
func (s *Session) Commit(ctx context.Context) error {
	if !s.transacted {
		return errors.New("client: commit: session is not transacted")
	}
	ctx, cancel := withTimeout(ctx, s.c.url.CallTimeout)
	defer cancel()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if s.txLost() {
		return fmt.Errorf("client: commit: %w (its connection was lost)", ErrTransactionRolledBack)
	}
	t, err := s.c.transportFor(ctx)
	if err != nil {
		s.abandon()
		return fmt.Errorf("client: commit: %w (not sent: %w)", ErrTransactionRolledBack, err)
	}
	s.mu.Lock()
	lost := s.rollbackOnly || (s.txOn != nil && s.txOn != t)
	onT := s.txOn == t
	if lost && !onT {
		s.endTxLocked() // its work is on a dead transport
	}
	s.mu.Unlock()
	if lost {
		if onT {
			// the transaction lost work and has more on t: discard that
			// too, so the application redoes all of it
			if err := s.rollbackOn(ctx, t); err != nil {
				s.c.log.Debug("rollback of a transaction that lost work failed; the session stays rollback-only", "err", err)
			}
		}
		return fmt.Errorf("client: commit: %w (the session failed over)", ErrTransactionRolledBack)
	}
	resp, err := s.c.requestVia(ctx, t, "commit", &wire.Commit{Session: s.id}, lostUnknown)
	s.mu.Lock()
	s.endTxLocked() // ended, one way or the other
	s.mu.Unlock()
	if errors.Is(err, errTransportDead) {
		return fmt.Errorf("client: commit: %w (not sent: the connection was lost)", ErrTransactionRolledBack)
	}
	if err == nil {
		err = result("commit", resp)
	}
	if se := (*ServerError)(nil); errors.As(err, &se) && unavailable(se.Code) {
		// not confirmed by a broker that may have committed it (an HA
		// live that lost its lease, or a stopping one)
		err = fmt.Errorf("client: commit: %w (%w)", ErrUnknownOutcome, err)
	}
	return err
}

// rollbackOn rolls back the transaction's work on t, which holds it, and
// reports the error. The transaction ends unless the rollback failed while
// t lives (the session stays rollback-only then).
func (s *Session) rollbackOn(ctx context.Context, t *transport) error {
	resp, err := s.c.requestVia(ctx, t, "rollback", &wire.Rollback{Session: s.id}, lostOK)
	if errors.Is(err, errTransportDead) {
		err = nil // t's session, and its transaction, ended with t
	}
	if err == nil {
		err = result("rollback", resp) // nil frame: lost in flight, rolled back either way
	}
	s.mu.Lock()
	if err != nil && s.txOn == t && !t.isDead() {
		s.rollbackOnly = true
	} else {
		s.endTxLocked()
	}
	s.mu.Unlock()
	return err
}

// Rollback discards the session's transaction; its acknowledged messages
// are redelivered. A transaction whose connection was lost is already
// rolled back (the broker discards it with the connection): Rollback then
// returns nil without waiting for the failover.
func (s *Session) Rollback(ctx context.Context) error {
	if !s.transacted {
		return errors.New("client: rollback: session is not transacted")
	}
	ctx, cancel := withTimeout(ctx, s.c.url.CallTimeout)
	defer cancel()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if s.txLost() {
		return nil
	}
	t, err := s.c.transportFor(ctx)
	if err != nil {
		s.abandon()
		return fmt.Errorf("client: rollback: %w", err)
	}
	return s.rollbackOn(ctx, t)
}

// Close closes the session and its consumers (their unacknowledged
// messages are redelivered) and rolls back an open transaction.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ks := make([]*Consumer, 0, len(s.consumers))
	for _, k := range s.consumers {
		ks = append(ks, k)
	}
	s.mu.Unlock()
	s.c.mu.Lock()
	delete(s.c.sessions, s.id)
	s.c.mu.Unlock()
	for _, k := range ks {
		k.unregister()
		k.closeWith(ErrClosed)
	}
	resp, err := s.c.request(ctx, "close session", &wire.CloseSession{Session: s.id}, lostOK)
	if err == nil {
		err = result("close session", resp)
	}
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}
