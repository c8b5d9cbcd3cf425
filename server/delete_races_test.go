package server

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
)

// recordJournal wraps a bindings journal and keeps a copy of every entry
// appended, in order. When an append adds a queue record for name with an
// ID other than skip, it keeps the log up to and including that append in
// snapshot and closes created: the journal as a crash right after that
// append would leave it.
type recordJournal struct {
	journal.Journal

	mu       sync.Mutex
	log      []journal.Entry
	name     string
	skip     uint64
	snapshot []journal.Entry
	created  chan struct{}
}

func (r *recordJournal) Append(entries []journal.Entry, sync bool, done func(error)) error {
	r.mu.Lock()
	for _, e := range entries {
		e.Data = slices.Clone(e.Data)
		r.log = append(r.log, e)
		if r.created != nil && r.snapshot == nil && e.Kind == journal.KindAdd && e.Type == RecQueue && e.ID != r.skip {
			if qr, err := decodeQueue(e.Data); err == nil && qr.Name == r.name {
				r.snapshot = slices.Clone(r.log)
				close(r.created)
			}
		}
	}
	r.mu.Unlock()
	return r.Journal.Append(entries, sync, done)
}

// watch arms the snapshot for the next queue record named name whose ID
// is not skip.
func (r *recordJournal) watch(name string, skip uint64) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.name, r.skip, r.created = name, skip, make(chan struct{})
	return r.created
}

// TestDeleteQueueThenAutoCreate: a durable queue is deleted while a send
// routed to it is in flight (DeleteQueue waits in its barrier), and a
// client's send auto-creates a durable queue of the same name meanwhile.
// The new queue's record must not precede the old one's delete in the
// bindings journal: a crash right after the new record would leave both
// live, and the broker would refuse to start ("queue defined twice").
// DeleteQueue freed the name before its bindings delete, which came after
// the barrier and the acks; auto-delete already made its delete durable
// first.
func TestDeleteQueueThenAutoCreate(t *testing.T) {
	ctx := context.Background()
	ms, bs := journal.NewMemoryStore(), journal.NewMemoryStore()
	mj, bj := ms.Open(), bs.Open()
	hj := newHoldJournal(mj)
	rj := &recordJournal{Journal: bj}
	s := New(Options{Messages: hj, Bindings: rj, Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close(); mj.Close(); bj.Close() }()
	old, err := s.CreateQueue(ctx, QueueConfig{Name: "q", Routing: Anycast, Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	created := rj.watch("q", old.id)
	ss := s.NewSession(false)
	hj.arm()
	sent := make(chan error, 2)
	ss.Send(ctx, queueDest("q"), msg("in flight", true), func(err error) { sent <- err })
	<-hj.held
	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteQueue(ctx, "q") }()
	select {
	case <-hj.later: // DeleteQueue unbound q and waits in its barrier
	case err := <-deleted:
		t.Fatalf("DeleteQueue returned (%v) while a send routed to the queue is in flight", err)
	}
	// A client's send finds the name free and auto-creates the queue.
	ss.Send(ctx, queueDest("q"), msg("to the new queue", true), func(err error) { sent <- err })
	select {
	case <-created:
	case <-time.After(10 * time.Second):
		t.Fatal("the send did not auto-create a new queue q")
	}
	close(hj.release)
	for range 2 {
		if err := <-sent; err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	if err := <-deleted; err != nil {
		t.Fatalf("DeleteQueue: %v", err)
	}
	if qi, ok := s.Queue("q"); !ok || qi.Depth != 1 {
		t.Fatalf("the new queue q: %+v %v, want 1 message", qi, ok)
	}

	// A broker restarted on the bindings journal as a crash right after
	// the new queue's record leaves it.
	rs := journal.NewMemoryStore()
	j := rs.Open()
	if _, err := j.Load(ctx); err != nil {
		t.Fatal(err)
	}
	rj.mu.Lock()
	snapshot := rj.snapshot
	rj.mu.Unlock()
	if err := journal.AppendSync(ctx, j, snapshot...); err != nil {
		t.Fatal(err)
	}
	j.Close()
	rb, rm := rs.Open(), journal.NewMemory()
	defer rb.Close()
	defer rm.Close()
	s2 := New(Options{Messages: rm, Bindings: rb, Logger: slog.New(slog.DiscardHandler)})
	if err := s2.Start(ctx); err != nil {
		t.Fatalf("restart after a crash right after the new queue's record: %v", err)
	}
	defer s2.Close()
	if _, ok := s2.Queue("q"); !ok {
		t.Fatal("queue q missing after the restart")
	}
}

// TestAutoDeleteWithAckInFlight: an auto-created durable queue whose
// settings delete it whatever it holds (auto-delete-queues-message-count
// -1) goes when its last consumer closes, while that consumer's message
// is acked in an open transaction. When the transaction rolls back, the
// message comes back to the deleted queue: it goes with it, its record
// deleted, not left live (pinning its segment) until a restart.
func TestAutoDeleteWithAckInFlight(t *testing.T) {
	b := newBroker(t, Options{AddressSettings: config.AddressSettings{
		{Match: "#", AutoDeleteQueuesMessageCount: ptr(int64(-1))},
	}})
	ctx := context.Background()
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
	if qi, ok := b.s.Queue("q"); ok {
		t.Fatalf("queue q kept after its last consumer left: %+v", qi)
	}
	if err := ss.Rollback(); err != nil {
		t.Fatal(err)
	}
	if ids := liveRecords(t, b, RecMessage); len(ids) != 0 {
		t.Fatalf("message records %v still live after their queue was auto-deleted", ids)
	}
}

// TestAutoDeleteDuringDeleteQueue: an auto-created durable queue waits
// for its auto-delete delay (in the reaper's set) when management deletes
// it while a send routed to it is in flight. A scan while DeleteQueue
// waits in its barrier leaves the queue to DeleteQueue: one delete of its
// record (a second would be refused by the journal), the in-flight
// message deleted with the queue, and a new queue of that name, created
// meanwhile, left alone.
func TestAutoDeleteDuringDeleteQueue(t *testing.T) {
	ctx := context.Background()
	ms, bs := journal.NewMemoryStore(), journal.NewMemoryStore()
	mj, bj := ms.Open(), bs.Open()
	hj := newHoldJournal(mj)
	rj := &recordJournal{Journal: bj}
	s := New(Options{Messages: hj, Bindings: rj, Logger: slog.New(slog.DiscardHandler),
		AddressQueueScanPeriod: time.Hour, // the test scans itself
		AddressSettings: config.AddressSettings{
			{Match: "#", AutoDeleteQueuesDelay: ptr(time.Minute), AutoDeleteQueuesMessageCount: ptr(int64(-1))},
		}})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ss := s.NewSession(false)
	c, _ := consume(t, ss, queueDest("q"), ConsumerOptions{})
	if err := ss.CloseConsumer(c.ID()); err != nil {
		t.Fatal(err)
	}
	s.mu.RLock()
	old := s.queues["q"]
	s.mu.RUnlock()
	s.reapMu.Lock()
	_, waiting := s.reapQueues[old]
	s.reapMu.Unlock()
	if !waiting {
		t.Fatal("the idle auto-created queue is not waiting for its delay")
	}
	hj.arm()
	sent := make(chan error, 2)
	ss.Send(ctx, queueDest("q"), msg("in flight", true), func(err error) { sent <- err })
	<-hj.held
	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteQueue(ctx, "q") }()
	select {
	case <-hj.later:
	case err := <-deleted:
		t.Fatalf("DeleteQueue returned (%v) while a send routed to the queue is in flight", err)
	}
	created := rj.watch("q", old.id)
	ss.Send(ctx, queueDest("q"), msg("to the new queue", true), func(err error) { sent <- err })
	<-created
	s.reap(time.Now().Add(2 * time.Minute)) // past the delay of both
	close(hj.release)
	for range 2 {
		if err := <-sent; err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	if err := <-deleted; err != nil {
		t.Fatalf("DeleteQueue: %v", err)
	}
	if qi, ok := s.Queue("q"); !ok || qi.Depth != 1 {
		t.Fatalf("the new queue q: %+v %v, want 1 message (it has no consumer yet, and was never idle)", qi, ok)
	}
	rj.mu.Lock()
	deletes := 0
	for _, e := range rj.log {
		if e.Kind == journal.KindDelete && e.ID == old.id {
			deletes++
		}
	}
	rj.mu.Unlock()
	if deletes != 1 {
		t.Fatalf("the deleted queue's record was deleted %d times, want 1", deletes)
	}
	s.Close()
	mj.Close()
	bj.Close()
	j := ms.Open()
	res, err := j.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	var live []uint64
	for _, r := range res.Records {
		if r.Type == RecMessage {
			live = append(live, r.ID)
		}
	}
	if len(live) != 1 {
		t.Fatalf("live message records %v, want only the new queue's message", live)
	}
}
