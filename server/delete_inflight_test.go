package server

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// holdJournal wraps a journal for ordering tests. Once armed, the done
// callback of the next append holding a message record blocks until
// release is closed: it blocks the journal's callback goroutine, so every
// later callback waits behind it, as behind a slow fsync. held is closed
// when it blocks; later is closed at the first append made after that.
type holdJournal struct {
	journal.Journal

	mu      sync.Mutex
	armed   bool
	holding bool
	held    chan struct{}
	release chan struct{}
	later   chan struct{}
}

func newHoldJournal(j journal.Journal) *holdJournal {
	return &holdJournal{Journal: j, held: make(chan struct{}), release: make(chan struct{}), later: make(chan struct{})}
}

func (h *holdJournal) arm() {
	h.mu.Lock()
	h.armed = true
	h.mu.Unlock()
}

func (h *holdJournal) Append(entries []journal.Entry, sync bool, done func(error)) error {
	h.mu.Lock()
	switch {
	case h.holding:
		h.holding = false
		close(h.later)
	case h.armed && hasMessageRecord(entries):
		h.armed, h.holding = false, true
		inner := done
		done = func(err error) {
			close(h.held)
			<-h.release
			inner(err)
		}
	}
	h.mu.Unlock()
	return h.Journal.Append(entries, sync, done)
}

func hasMessageRecord(entries []journal.Entry) bool {
	for _, e := range entries {
		if e.Kind == journal.KindAdd && e.Type == RecMessage {
			return true
		}
	}
	return false
}

// TestDeleteQueueWithSendInFlight: a durable queue deleted while a
// persistent send (or a commit) routed to it waits for its journal
// callback. The message must go with the queue: its record deleted in the
// journal at once (reference count zero), not left live, pinning its
// segment, until a restart. The interleaving is ordered by holding the
// send's callback; the delete is let through once it has returned or made
// its next append on the messages journal (waiting for the send).
func TestDeleteQueueWithSendInFlight(t *testing.T) {
	for _, transacted := range []bool{false, true} {
		name := "send"
		if transacted {
			name = "commit"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ms, bs := journal.NewMemoryStore(), journal.NewMemoryStore()
			mj, bj := ms.Open(), bs.Open()
			hj := newHoldJournal(mj)
			s := New(Options{Messages: hj, Bindings: bj, Logger: slog.New(slog.DiscardHandler)})
			if err := s.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateQueue(ctx, QueueConfig{Name: "q", Routing: Anycast, Durable: true}); err != nil {
				t.Fatal(err)
			}
			ss := s.NewSession(transacted)
			hj.arm()
			sent := make(chan error, 1)
			if transacted {
				mustSend(t, ss, queueDest("q"), msg("in flight", true))
				ss.Commit(ctx, func(err error) { sent <- err })
			} else {
				ss.Send(ctx, queueDest("q"), msg("in flight", true), func(err error) { sent <- err })
			}
			<-hj.held
			deleted := make(chan error, 1)
			go func() { deleted <- s.DeleteQueue(ctx, "q") }()
			var delErr error
			delDone := false
			select {
			case delErr = <-deleted:
				delDone = true
			case <-hj.later:
			}
			close(hj.release)
			if err := <-sent; err != nil {
				t.Fatalf("send: %v", err)
			}
			if !delDone {
				select {
				case delErr = <-deleted:
				case <-time.After(10 * time.Second):
					t.Fatal("DeleteQueue: no outcome 10 s after the send completed")
				}
			}
			if delErr != nil {
				t.Fatalf("DeleteQueue: %v", delErr)
			}
			if _, ok := s.Queue("q"); ok {
				t.Fatal("queue q still exists")
			}
			s.Close()
			mj.Close()
			bj.Close()
			// The store as the broker left it, before any load cleans up.
			j := ms.Open()
			res, err := j.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			j.Close()
			for _, r := range res.Records {
				if r.Type == RecMessage {
					t.Fatalf("message record %d is still live after its only queue was deleted", r.ID)
				}
			}
		})
	}
}

// liveRecords returns the live records of type typ in b's messages store
// as the broker left them (b is stopped first, and restarted after).
func liveRecords(t *testing.T, b *broker, typ uint8) []uint64 {
	t.Helper()
	b.stop()
	defer b.start()
	j := b.ms.Open()
	defer j.Close()
	res, err := j.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, r := range res.Records {
		if r.Type == typ {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// TestDeleteQueueWithAckInFlight: a durable queue deleted while one of its
// messages is out of it, acked in an open transaction (or delivered to a
// consumer that is closing). When the transaction rolls back, the
// reference comes back to a deleted queue: the message goes with the
// queue, its record deleted, not left live until a restart.
func TestDeleteQueueWithAckInFlight(t *testing.T) {
	b := newBroker(t, Options{})
	ctx := context.Background()
	if _, err := b.s.CreateQueue(ctx, QueueConfig{Name: "q", Routing: Anycast, Durable: true}); err != nil {
		t.Fatal(err)
	}
	ss := b.s.NewSession(true)
	mustSend(t, ss, queueDest("q"), msg("m", true))
	if err := commitSync(t, ss); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	c, err := ss.CreateConsumer(ctx, queueDest("q"), ConsumerOptions{Credit: 1}, col.handle)
	if err != nil {
		t.Fatal(err)
	}
	d := col.wait(t, 1)[0]
	if err := ackSync(t, ss, d); err != nil { // held by the transaction
		t.Fatal(err)
	}
	if err := ss.CloseConsumer(c.ID()); err != nil {
		t.Fatal(err)
	}
	if err := b.s.DeleteQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if err := ss.Rollback(); err != nil {
		t.Fatal(err)
	}
	if ids := liveRecords(t, b, RecMessage); len(ids) != 0 {
		t.Fatalf("message records %v still live after their queue was deleted", ids)
	}
}
