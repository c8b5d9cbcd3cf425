package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// Errors of queue management.
var (
	ErrQueueExists  = errors.New("server: queue exists")
	ErrQueueInUse   = errors.New("server: queue has consumers")
	ErrWrongRouting = errors.New("server: wrong routing type for the queue")
)

// QueueConfig describes a queue to create.
type QueueConfig struct {
	Address   string // "" = Name
	Name      string
	Routing   Routing
	Durable   bool
	Temporary bool
	// Filter is the queue's filter (a selector): only matching messages
	// are routed to it. "" is none.
	Filter string
}

// CreateQueue creates a queue bound to an address (creating the address).
// Creating a queue that exists with the same routing succeeds. Like every
// answer a client takes as done, success is checked against
// Options.CanAck: without it the error is ErrNotActive (the outcome is
// unknown to the client) and the queue, which may exist, is returned too.
func (s *Server) CreateQueue(ctx context.Context, qc QueueConfig) (*Queue, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	addr := qc.Address
	if addr == "" {
		addr = qc.Name
	}
	if err := authorize(ctx, queuePermission(qc.Durable && !qc.Temporary, true), addr); err != nil {
		return nil, err
	}
	q, err := s.createQueueAnswer(ctx, qc)
	return q, s.confirmed(err)
}

func (s *Server) createQueueAnswer(ctx context.Context, qc QueueConfig) (*Queue, error) {
	if qc.Address == "" {
		qc.Address = qc.Name
	}
	if qc.Name == "" {
		return nil, errors.New("server: queue name is empty")
	}
	if qc.Routing != Anycast && qc.Routing != Multicast {
		qc.Routing = Anycast
	}
	filter, err := parseSelector(qc.Filter)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	q := s.queues[qc.Name]
	s.mu.RUnlock()
	if q != nil {
		if q.routing != qc.Routing || q.addr.name != qc.Address {
			return nil, fmt.Errorf("%w: %q is bound to %q with %s routing", ErrQueueExists, qc.Name, q.addr.name, q.routing)
		}
		return q, nil
	}
	return s.createQueue(ctx, qc.Address, qc.Name, qc.Routing, qc.Durable && !qc.Temporary, qc.Temporary, false, filter)
}

// DeleteQueue deletes a queue without consumers and its messages (acked
// on that queue in the journal). A durable queue's delete is durable
// before its name is free, as with an auto-delete: a queue of that name
// created next (a client's send may auto-create it at once) never
// precedes it in the bindings journal, where a restart would find the
// name defined twice. It then waits for the sends and commits already
// routed to the queue whatever ctx says: they complete once the journal
// has taken them, or fails or closes, and leaving them would leave their
// messages live with no queue. ctx bounds only the wait for the messages'
// acks; the queue is deleted even when that wait ends early. Success is
// checked against Options.CanAck like CreateQueue's.
func (s *Server) DeleteQueue(ctx context.Context, name string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	s.mu.RLock()
	q := s.queues[name]
	s.mu.RUnlock()
	if q != nil {
		if err := authorize(ctx, queuePermission(q.durable, false), q.addr.name); err != nil {
			return err
		}
	}
	return s.confirmed(s.deleteQueueNamed(ctx, name))
}

// consumeAddress is the address whose consume permission a consumer on
// dest needs: an existing anycast queue's own address, else dest's.
func (s *Server) consumeAddress(dest Destination) string {
	if dest.Routing == Anycast {
		s.mu.RLock()
		q := s.queues[dest.Name]
		s.mu.RUnlock()
		if q != nil {
			return q.addr.name
		}
	}
	return dest.Name
}

func (s *Server) deleteQueueNamed(ctx context.Context, name string) error {
	s.mu.Lock()
	q := s.queues[name]
	if q == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNoSuchQueue, name)
	}
	q.mu.Lock()
	switch {
	case q.deleting || q.deleted:
		q.mu.Unlock()
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNoSuchQueue, name)
	case len(q.consumers) > 0:
		q.mu.Unlock()
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrQueueInUse, name)
	}
	q.deleting = true // no consumer attaches, no auto-delete, from now on
	q.mu.Unlock()
	a, empty := s.unbindQueueLocked(q)
	if q.durable {
		// Under s.mu: no lookup or creation of the name until it is
		// durable. A replay drops the references to a deleted queue, so
		// the acks below only reclaim the messages' records.
		if err := journal.AppendSync(context.Background(), s.binds, q.deleteEntries()...); err != nil {
			s.mu.Unlock()
			s.storageError(err)
			return fmt.Errorf("server: delete queue %q: %w", name, err)
		}
	}
	s.mu.Unlock()
	if q.durable {
		// A send or commit routed to q before unbindQueueLocked took the
		// address mutex has made its append already: an empty append
		// after it completes once their callbacks have put their
		// references in q, to be deleted with the others below. Without
		// it such a reference met a deleted queue and was dropped with
		// its message's durable count held: a live record, pinning its
		// segment, until a restart.
		ch := make(chan error, 1)
		if err := s.msgs.Append(nil, false, func(err error) { ch <- err }); err != nil {
			s.storageError(err)
			return fmt.Errorf("server: delete queue %q: %w", name, err)
		}
		if err := <-ch; err != nil {
			return fmt.Errorf("server: delete queue %q: %w", name, s.halt(err))
		}
	}
	q.shutdown()
	q.mu.Lock()
	var refs []*ref
	for q.msgs.len() > 0 {
		refs = append(refs, q.msgs.popFront())
	}
	q.mu.Unlock()
	if empty {
		defer s.addressIdle(a, true)
	}
	s.releaseAll(refs)
	if !q.durable {
		s.dropPageState(q)
		return nil
	}
	pdel := s.pageRecordsOf(q)
	s.storeMu.Lock()
	var entries []journal.Entry
	for _, r := range refs {
		if r.durable() && r.pt == nil { // the paged ones go with the queue's page records
			entries = append(entries, s.ackEntryLocked(r))
		}
	}
	entries = append(entries, pdel...)
	ch := make(chan error, 1)
	var err error
	if len(entries) > 0 {
		err = s.msgs.Append(entries, true, func(err error) { ch <- err })
	} else {
		ch <- nil
	}
	s.storeMu.Unlock()
	if err == nil {
		select {
		case err = <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		s.storageError(err)
		return fmt.Errorf("server: delete queue %q: %w", name, err)
	}
	return nil
}

// defaultRouting resolves wire.RoutingDefault for a send: the address's
// routing when it exists with only one, else its
// default-address-routing-type, else anycast.
func (s *Server) defaultRouting(addr string, r wire.RoutingType) Routing {
	return s.resolveRouting(addr, r, func(p config.AddressPolicy) string { return p.DefaultAddressRoutingType })
}

// defaultQueueRouting is defaultRouting for a consumer, whose queue a
// missing address gets: default-queue-routing-type decides.
func (s *Server) defaultQueueRouting(addr string, r wire.RoutingType) Routing {
	return s.resolveRouting(addr, r, func(p config.AddressPolicy) string { return p.DefaultQueueRoutingType })
}

func (s *Server) resolveRouting(addr string, r wire.RoutingType, setting func(config.AddressPolicy) string) Routing {
	switch r {
	case wire.RoutingAnycast:
		return Anycast
	case wire.RoutingMulticast:
		return Multicast
	}
	if a := s.lookupAddress(addr); a != nil {
		if a.multicast && !a.anycast {
			return Multicast
		}
		if a.anycast || a.multicast {
			return Anycast
		}
	}
	if setting(s.opts.AddressSettings.For(addr)) == config.RoutingMulticast {
		return Multicast
	}
	return Anycast
}
