package server

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// storeRecords stops b, reads the records live in store, and starts b
// again.
func storeRecords(t *testing.T, b *broker, store *journal.MemoryStore) []journal.Record {
	t.Helper()
	b.stop()
	defer b.start()
	j := store.Open()
	defer j.Close()
	res, err := j.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res.Records
}

func mustQueue(t *testing.T, s *Server, qc QueueConfig) {
	t.Helper()
	if _, err := s.CreateQueue(context.Background(), qc); err != nil {
		t.Fatalf("create queue %q: %v", qc.Name, err)
	}
}

func queueInfo(t *testing.T, s *Server, name string) QueueInfo {
	t.Helper()
	qi, ok := s.Queue(name)
	if !ok {
		t.Fatalf("queue %q does not exist", name)
	}
	return qi
}

// TestPauseQueueJournaled: a paused queue delivers nothing, stays paused
// across a restart (its pause is a bindings record), and delivers once
// resumed; resuming removes the record, so the next restart finds it
// running.
func TestPauseQueueJournaled(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, Options{})
	mustQueue(t, b.s, QueueConfig{Name: "q", Routing: Anycast, Durable: true})
	if err := b.s.PauseQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("m1", true))
	b.restart()
	if qi := queueInfo(t, b.s, "q"); !qi.Paused || qi.Depth != 1 {
		t.Fatalf("after restart: paused %v depth %d, want paused with 1 message", qi.Paused, qi.Depth)
	}
	ss = b.s.NewSession(false)
	col := newCollector()
	if _, err := ss.CreateConsumer(ctx, queueDest("q"), ConsumerOptions{Credit: 10}, col.handle); err != nil {
		t.Fatal(err)
	}
	// A delivery would have been started by the consumer's arrival (wake
	// sets dispatching before CreateConsumer returns).
	q := b.s.queues["q"]
	q.mu.Lock()
	started, waiting := q.dispatching, q.msgs.len()
	q.mu.Unlock()
	if started || waiting != 1 || q.delivering.Load() != 0 {
		t.Fatalf("paused queue: dispatching %v, waiting %d, delivering %d", started, waiting, q.delivering.Load())
	}
	if err := b.s.ResumeQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if got := bodies(col.wait(t, 1)); !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("after resume: %v", got)
	}
	b.restart()
	if qi := queueInfo(t, b.s, "q"); qi.Paused {
		t.Fatal("resumed queue is paused again after a restart")
	}
	// A paused queue's delete takes its pause record with it.
	if err := b.s.PauseQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if err := b.s.DeleteQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	mustQueue(t, b.s, QueueConfig{Name: "q", Routing: Anycast, Durable: true})
	b.restart()
	if qi := queueInfo(t, b.s, "q"); qi.Paused {
		t.Fatal("a new queue of a deleted paused queue's name is paused")
	}
	recs := 0
	for _, r := range storeRecords(t, b, b.bs) {
		if r.Type == RecQueuePaused {
			recs++
		}
	}
	if recs != 0 {
		t.Fatalf("%d pause records left in the bindings journal", recs)
	}
}

// TestPurgeQueue: a purge removes the waiting messages for good (their
// acks are journaled) and leaves other queues alone.
func TestPurgeQueue(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	for _, body := range []string{"a1", "a2", "a3"} {
		mustSend(t, ss, queueDest("a"), msg(body, true))
	}
	mustSend(t, ss, queueDest("b"), msg("b1", true))
	n, err := b.s.PurgeQueue(ctx, "a")
	if err != nil || n != 3 {
		t.Fatalf("purge: %d, %v; want 3", n, err)
	}
	b.restart()
	if qi := queueInfo(t, b.s, "a"); qi.Depth != 0 {
		t.Fatalf("purged queue holds %d after restart", qi.Depth)
	}
	if qi := queueInfo(t, b.s, "b"); qi.Depth != 1 {
		t.Fatalf("other queue holds %d after restart, want 1", qi.Depth)
	}
	if _, err := b.s.PurgeQueue(ctx, "nope"); !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("purge of a missing queue: %v", err)
	}
}

// TestMoveMessages: messages move in order between durable queues and
// stay moved after a restart; a topic's message the target already holds
// stays put; a move into a non-durable queue acks them on the source.
func TestMoveMessages(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, Options{})
	mustQueue(t, b.s, QueueConfig{Name: "dst", Routing: Anycast, Durable: true})
	ss := b.s.NewSession(false)
	for _, body := range seqBodies("m", 1, 5) {
		mustSend(t, ss, queueDest("src"), msg(body, true))
	}
	res, err := b.s.MoveMessages(ctx, "src", "dst", 3)
	if err != nil || res.Moved != 3 || res.Skipped != 0 {
		t.Fatalf("move: %+v, %v", res, err)
	}
	b.restart()
	if s, d := queueInfo(t, b.s, "src").Depth, queueInfo(t, b.s, "dst").Depth; s != 2 || d != 3 {
		t.Fatalf("after restart: src %d dst %d, want 2 and 3", s, d)
	}
	ss = b.s.NewSession(false)
	col := newCollector()
	if _, err := ss.CreateConsumer(ctx, queueDest("dst"), ConsumerOptions{Credit: 10}, col.handle); err != nil {
		t.Fatal(err)
	}
	ds := col.wait(t, 3)
	if got := bodies(ds); !slices.Equal(got, seqBodies("m", 1, 3)) {
		t.Fatalf("dst delivers %v", got)
	}
	for _, d := range ds {
		if err := ackSync(t, ss, d); err != nil {
			t.Fatal(err)
		}
	}
	// Browse shows the rest of src without consuming it.
	ms, total, err := b.s.Browse("src", BrowseOptions{})
	if err != nil || total != 2 || len(ms) != 2 || ms[0].Body != "m4" || !ms[0].BodyText {
		t.Fatalf("browse src: %+v total %d, %v", ms, total, err)
	}

	// A topic: both subscriptions hold the message; moving s1 to s2
	// leaves it in s1.
	mustQueue(t, b.s, QueueConfig{Address: "t", Name: "s1", Routing: Multicast, Durable: true})
	mustQueue(t, b.s, QueueConfig{Address: "t", Name: "s2", Routing: Multicast, Durable: true})
	mustSend(t, ss, topicDest("t"), msg("tm", true))
	res, err = b.s.MoveMessages(ctx, "s1", "s2", 0)
	if err != nil || res.Moved != 0 || res.Skipped != 1 {
		t.Fatalf("move s1 to s2: %+v, %v; want 1 skipped", res, err)
	}
	if d := queueInfo(t, b.s, "s1").Depth; d != 1 {
		t.Fatalf("s1 holds %d after a skipped move, want 1", d)
	}

	// Into a non-durable queue: acked on src, gone after a restart.
	mustQueue(t, b.s, QueueConfig{Name: "mem", Routing: Anycast, Durable: false})
	if res, err := b.s.MoveMessages(ctx, "src", "mem", 0); err != nil || res.Moved != 2 {
		t.Fatalf("move to a non-durable queue: %+v, %v", res, err)
	}
	if d := queueInfo(t, b.s, "mem").Depth; d != 2 {
		t.Fatalf("mem holds %d, want 2", d)
	}
	if _, err := b.s.MoveMessages(ctx, "mem", "dst", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("move from a non-durable queue to a durable one: %v, want ErrInvalid", err)
	}
	if _, err := b.s.MoveMessages(ctx, "dst", "dst", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("move to itself: %v, want ErrInvalid", err)
	}
	b.restart()
	if d := queueInfo(t, b.s, "src").Depth; d != 0 {
		t.Fatalf("src holds %d after restart, want 0", d)
	}
}

// TestAddressManagement: create, refuse to delete with queues, delete,
// and the deletion survives a restart with its duplicate IDs gone.
func TestAddressManagement(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, Options{})
	if err := b.s.CreateAddress(ctx, "orders", Multicast); err != nil {
		t.Fatal(err)
	}
	mustQueue(t, b.s, QueueConfig{Address: "orders", Name: "orders.audit", Routing: Multicast, Durable: true})
	ss := b.s.NewSession(false)
	mustSend(t, ss, topicDest("orders"), &Message{Durable: true, DuplicateID: "d1", Body: []byte("x")})
	if err := b.s.DeleteAddress(ctx, "orders"); !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("delete with a queue: %v, want ErrAddressInUse", err)
	}
	if err := b.s.DeleteQueue(ctx, "orders.audit"); err != nil {
		t.Fatal(err)
	}
	if err := b.s.DeleteAddress(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	b.restart()
	if ai, ok := b.s.Address("orders"); ok {
		t.Fatalf("deleted address is back after a restart: %+v", ai)
	}
	for _, r := range storeRecords(t, b, b.ms) {
		if r.Type == RecDuplicateID {
			t.Fatalf("duplicate ID record %d of a deleted address is live", r.ID)
		}
	}
	if err := b.s.DeleteAddress(ctx, "orders"); !errors.Is(err, ErrNoSuchAddress) {
		t.Fatalf("delete again: %v", err)
	}
}

// TestManageOps runs the operations through Manage as the API and the
// wire protocol do, with the codes they answer.
func TestManageOps(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t, Options{})
	f := false
	if _, err := b.s.Manage(ctx, "queue.create", ManageArgs{Name: "q", Durable: &f}); err != nil {
		t.Fatal(err)
	}
	res, err := b.s.Manage(ctx, "queue.stat", ManageArgs{Name: "q"})
	if qi, ok := res.(QueueInfo); err != nil || !ok || qi.Durable || qi.Routing != "anycast" {
		t.Fatalf("queue.stat: %+v, %v", res, err)
	}
	for _, tc := range []struct {
		op   string
		args ManageArgs
		code wire.Code
	}{
		{"queue.nope", ManageArgs{}, wire.CodeInvalid},
		{"queue.purge", ManageArgs{}, wire.CodeInvalid},
		{"queue.purge", ManageArgs{Name: "x"}, wire.CodeNotFound},
		{"queue.create", ManageArgs{Name: "q2", Routing: "broadcast"}, wire.CodeInvalid},
		{"queue.create", ManageArgs{Name: "q", Routing: "multicast"}, wire.CodeExists},
		{"address.show", ManageArgs{Name: "x"}, wire.CodeNotFound},
		{"address.delete", ManageArgs{Name: "q"}, wire.CodeInvalid},
		{"queue.move", ManageArgs{Name: "q"}, wire.CodeInvalid},
	} {
		_, err := b.s.Manage(ctx, tc.op, tc.args)
		if got := manageCode(err); got != tc.code {
			t.Errorf("%s %+v: %v (%v), want %v", tc.op, tc.args, got, err, tc.code)
		}
	}
}
