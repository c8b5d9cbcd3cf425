package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tandemmq/tandem/journal"
)

// Freezing (issue 19): a live-only broker that scales down on a graceful
// stop first freezes, so that what it moves is all there is: no client
// operation changes its queues any more, and every one that did has
// completed. Client connections stay open meanwhile (the broker tells
// them where to go only once the target holds their messages).
//
// Every operation a client or management can start that changes queues
// (a send, an ack, a commit, a consumer, a queue or address created or
// deleted, purge, pause, move) passes a gate: it counts itself active
// while it runs up to the point where it has handed its records to the
// journal. Freeze closes the gate and waits until nothing is active;
// operations that come later park until Release, which fails them with
// the error it is given (an unknown outcome to the client, which resends
// elsewhere). Freeze then closes every session (their unacked deliveries
// and the acks of open transactions go back to their queues, with their
// delivery counts) and waits for the journal's completions (an empty
// append), so every message is in a queue.

// ErrFrozen is what an operation parked by Freeze fails with when Release
// is given no error of its own.
var ErrFrozen = errors.New("server: frozen (scaling down): outcome unknown, reconnect")

// gate is the freeze state. The counter and the flag are atomics so the
// hot path pays two atomic adds and a load.
type gate struct {
	active  atomic.Int64
	frozen  atomic.Bool
	drained chan struct{} // 1-buffered: an exit that brought active to 0 while frozen

	mu       sync.Mutex
	released chan struct{} // closed by Release
	err      error         // what parked operations fail with
	sessions map[*Session]struct{}
}

func (g *gate) init() {
	g.drained = make(chan struct{}, 1)
	g.released = make(chan struct{})
	g.sessions = make(map[*Session]struct{})
}

// enter admits an operation; the caller calls exit once its records are
// handed to the journal. While frozen it parks until Release and returns
// Release's error (the operation must not run).
func (s *Server) enter() error {
	g := &s.gate
	g.active.Add(1)
	if !g.frozen.Load() {
		return nil
	}
	s.exit()
	<-g.released
	g.mu.Lock()
	err := g.err
	g.mu.Unlock()
	return err
}

// tryEnter admits an operation that gives up instead of parking while
// frozen (the auto-delete scan).
func (s *Server) tryEnter() bool {
	g := &s.gate
	g.active.Add(1)
	if !g.frozen.Load() {
		return true
	}
	s.exit()
	return false
}

// exit ends an operation enter admitted.
func (s *Server) exit() {
	g := &s.gate
	if g.active.Add(-1) == 0 && g.frozen.Load() {
		select {
		case g.drained <- struct{}{}:
		default:
		}
	}
}

// Frozen reports whether Freeze has begun.
func (s *Server) Frozen() bool { return s.gate.frozen.Load() }

// Freeze stops client work for a scale-down: it closes the gate, waits
// for the operations in progress to hand their records to the journal,
// closes every session (their deliveries and transactions' acks go back
// to the queues) and waits for the journal to complete what it was
// given. When it returns every message is waiting in a queue and nothing
// but the caller changes the queues. ctx bounds the waits; on error the
// server stays frozen (Release, then stop it).
func (s *Server) Freeze(ctx context.Context) error {
	g := &s.gate
	g.frozen.Store(true)
	for g.active.Load() != 0 {
		select {
		case <-g.drained:
		case <-ctx.Done():
			return fmt.Errorf("server: freeze: %d operations still running: %w", g.active.Load(), ctx.Err())
		}
	}
	// Sends held by address-full-policy BLOCK were neither stored nor
	// answered: they fail now (the client resends them elsewhere) instead
	// of going in once the export frees memory.
	s.failParked(fmt.Errorf("%w: its address was full", ErrFrozen))
	if err := s.barrier(ctx); err != nil {
		return err
	}
	g.mu.Lock()
	ss := make([]*Session, 0, len(g.sessions))
	for x := range g.sessions {
		ss = append(ss, x)
	}
	g.mu.Unlock()
	for _, x := range ss {
		x.Close()
	}
	// Closing wrote the delivery counts unsynced: a synced barrier makes
	// them durable before anything moves.
	return s.barrier(ctx)
}

// barrier waits until every append made so far is complete and durable:
// in the large-messages and paging journals (whose completions may append
// to the messages journal), then in the messages journal.
func (s *Server) barrier(ctx context.Context) error {
	if err := s.checkUsable(); err != nil {
		return err
	}
	if s.large != nil {
		if err := s.barrierOn(ctx, s.large); err != nil {
			return err
		}
	}
	if s.pages != nil {
		if err := s.barrierOn(ctx, s.pages); err != nil {
			return err
		}
	}
	return s.barrierOn(ctx, s.msgs)
}

// barrierOn waits until every append made so far to j is complete and
// durable.
func (s *Server) barrierOn(ctx context.Context, j journal.Journal) error {
	ch := make(chan error, 1)
	if err := j.Append(nil, true, func(err error) { ch <- err }); err != nil {
		s.storageError(err)
		return fmt.Errorf("server: freeze: %w", err)
	}
	select {
	case err := <-ch:
		if err != nil {
			return fmt.Errorf("server: freeze: %w", s.halt(err))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("server: freeze: waiting for the journal: %w", ctx.Err())
	}
}

// Release lets the operations parked by Freeze (and every later one) fail
// with err (ErrFrozen when nil). The server stays frozen.
func (s *Server) Release(err error) {
	g := &s.gate
	if err == nil {
		err = ErrFrozen
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.released:
		return
	default:
	}
	g.err = err
	close(g.released)
}

// trackSession registers a session for Freeze; untrack removes it.
func (s *Server) trackSession(ss *Session) {
	g := &s.gate
	g.mu.Lock()
	g.sessions[ss] = struct{}{}
	g.mu.Unlock()
}

func (s *Server) untrackSession(ss *Session) {
	g := &s.gate
	g.mu.Lock()
	delete(g.sessions, ss)
	g.mu.Unlock()
}
