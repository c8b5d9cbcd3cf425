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

	mu           sync.Mutex
	consumers    map[uint64]*Consumer
	closed       bool
	txWork       bool // the open transaction has sends or acks
	rollbackOnly bool // failover lost the open transaction
}

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

func (s *Session) markWork() {
	if s.transacted {
		s.mu.Lock()
		s.txWork = true
		s.mu.Unlock()
	}
}

func (s *Session) markRollbackOnly() {
	s.mu.Lock()
	s.rollbackOnly = true
	s.mu.Unlock()
}

// Commit commits the session's transaction. It returns
// ErrTransactionRolledBack when the broker rolled it back or a failover
// lost it, and ErrUnknownOutcome when the connection was lost while the
// commit was in flight (it may or may not have committed).
func (s *Session) Commit(ctx context.Context) error {
	if !s.transacted {
		return errors.New("client: commit: session is not transacted")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.rollbackOnly {
		s.rollbackOnly, s.txWork = false, false
		s.mu.Unlock()
		// the new broker's transaction is empty or holds only work done
		// after failover; discard it too so the application redoes all
		if _, err := s.c.request(ctx, "rollback", &wire.Rollback{Session: s.id}, lostOK); err != nil {
			s.c.log.Debug("rollback after failover failed", "err", err)
		}
		return fmt.Errorf("client: commit: %w (the session failed over)", ErrTransactionRolledBack)
	}
	s.mu.Unlock()
	resp, err := s.c.request(ctx, "commit", &wire.Commit{Session: s.id}, lostUnknown)
	if err == nil {
		err = result("commit", resp)
	}
	if se := (*ServerError)(nil); errors.As(err, &se) && unavailable(se.Code) {
		// not confirmed by a broker that may have committed it (an HA
		// live that lost its lease, or a stopping one)
		err = fmt.Errorf("client: commit: %w (%w)", ErrUnknownOutcome, err)
	}
	s.mu.Lock()
	s.txWork = false
	if errors.Is(err, ErrUnknownOutcome) {
		s.rollbackOnly = false // the transaction ended, one way or the other
	}
	s.mu.Unlock()
	return err
}

// Rollback discards the session's transaction; its acknowledged messages
// are redelivered.
func (s *Session) Rollback(ctx context.Context) error {
	if !s.transacted {
		return errors.New("client: rollback: session is not transacted")
	}
	s.mu.Lock()
	s.rollbackOnly, s.txWork = false, false
	s.mu.Unlock()
	resp, err := s.c.request(ctx, "rollback", &wire.Rollback{Session: s.id}, lostOK)
	if err == nil {
		err = result("rollback", resp)
	}
	return err
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
