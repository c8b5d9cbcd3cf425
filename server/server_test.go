package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/tandemmq/tandem/wire"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tandemmq/tandem/journal"
)

func TestAnycastSendReceiveAck(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	for i := 1; i <= 5; i++ {
		mustSend(t, ss, queueDest("orders"), msg(fmt.Sprintf("m%d", i), true))
	}
	qi, ok := b.s.Queue("orders")
	if !ok || qi.Depth != 5 || qi.Routing != "anycast" || !qi.Durable {
		t.Fatalf("queue after sends: %+v %v", qi, ok)
	}
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("orders"), ConsumerOptions{Credit: -1}, col.handle); err != nil {
		t.Fatal(err)
	}
	ds := col.wait(t, 5)
	if got, want := bodies(ds), seqBodies("m", 1, 5); !slices.Equal(got, want) {
		t.Fatalf("order: got %v want %v", got, want)
	}
	for _, d := range ds {
		if d.DeliveryCount != 1 {
			t.Fatalf("first delivery count %d", d.DeliveryCount)
		}
		if err := ackSync(t, ss, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := ackSync(t, ss, ds[0]); !errors.Is(err, ErrUnknownDelivery) {
		t.Fatalf("second ack: %v, want ErrUnknownDelivery", err)
	}
	if st := b.s.Stats(); st != (Stats{MessagesIn: 5, Deliveries: 5, Acks: 5}) {
		t.Fatalf("stats %+v", st)
	}
	if qi, _ := b.s.Queue("orders"); qi.Depth != 0 || qi.Consumers != 1 {
		t.Fatalf("queue after acks: %+v", qi)
	}
	b.restart()
	if qi, _ := b.s.Queue("orders"); qi.Depth != 0 {
		t.Fatalf("queue after restart: %+v", qi)
	}
}

func TestRestoreAfterRestart(t *testing.T) {
	b := newBroker(t, Options{})
	node := b.s.NodeID()
	ss := b.s.NewSession(false)
	for i := 1; i <= 10; i++ {
		m := msg(fmt.Sprintf("m%d", i), i%2 == 1) // odd ones persistent
		m.Properties = []Property{wire.StringProp("k", fmt.Sprint(i))}
		mustSend(t, ss, queueDest("q"), m)
	}
	col := newCollector()
	c, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 4}, col.handle)
	if err != nil {
		t.Fatal(err)
	}
	ds := col.wait(t, 4) // m1..m4
	if err := ackSync(t, ss, ds[0]); err != nil {
		t.Fatal(err)
	}
	// Close the consumer: m2..m4 go back with a delivery count of 1 stored.
	if err := ss.CloseConsumer(c.ID()); err != nil {
		t.Fatal(err)
	}
	b.restart()
	if b.s.NodeID() != node {
		t.Fatalf("node ID changed: %s -> %s", node, b.s.NodeID())
	}
	ss = b.s.NewSession(false)
	col = newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle); err != nil {
		t.Fatal(err)
	}
	ds = col.wait(t, 4)
	if got, want := bodies(ds), []string{"m3", "m5", "m7", "m9"}; !slices.Equal(got, want) {
		t.Fatalf("restored: got %v want %v", got, want)
	}
	if ds[0].DeliveryCount != 2 || ds[1].DeliveryCount != 1 {
		t.Fatalf("delivery counts: %d %d, want 2 1", ds[0].DeliveryCount, ds[1].DeliveryCount)
	}
	if p := ds[1].Message.Properties; len(p) != 1 || p[0].Str != "5" {
		t.Fatalf("properties: %+v", p)
	}
	if got := col.settle(); len(got) != 4 {
		t.Fatalf("extra deliveries: %v", bodies(got))
	}
}

func TestRedeliveryOnConsumerClose(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	for i := 1; i <= 6; i++ {
		mustSend(t, ss, queueDest("q"), msg(fmt.Sprintf("m%d", i), true))
	}
	col1 := newCollector()
	c1, _ := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 3}, col1.handle)
	ds := col1.wait(t, 3)
	if err := ackSync(t, ss, ds[1]); err != nil { // ack m2 only
		t.Fatal(err)
	}
	ss.CloseConsumer(c1.ID())
	ss2 := b.s.NewSession(false)
	col2 := newCollector()
	ss2.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col2.handle)
	ds = col2.wait(t, 5)
	if got, want := bodies(ds), []string{"m1", "m3", "m4", "m5", "m6"}; !slices.Equal(got, want) {
		t.Fatalf("after close: got %v want %v", got, want)
	}
	wantCounts := []uint32{2, 2, 1, 1, 1}
	for i, d := range ds {
		if d.DeliveryCount != wantCounts[i] {
			t.Fatalf("%s: delivery count %d want %d", d.Message.Body, d.DeliveryCount, wantCounts[i])
		}
	}
}

func TestCreditFlowControl(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	for i := 1; i <= 5; i++ {
		mustSend(t, ss, queueDest("q"), msg(fmt.Sprintf("m%d", i), false))
	}
	col := newCollector()
	c, _ := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 2}, col.handle)
	col.wait(t, 2)
	if got := col.settle(); len(got) != 2 {
		t.Fatalf("credit 2 gave %d deliveries", len(got))
	}
	c.Credit(2)
	col.wait(t, 4)
	if got := col.settle(); len(got) != 4 {
		t.Fatalf("credit 4 gave %d deliveries", len(got))
	}
}

func TestRoundRobinConsumers(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	col1, col2 := newCollector(), newCollector()
	ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col1.handle)
	ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col2.handle)
	for i := 1; i <= 10; i++ {
		mustSend(t, ss, queueDest("q"), msg(fmt.Sprint(i), false))
	}
	d1, d2 := col1.wait(t, 1), col2.wait(t, 1)
	all := append(col1.settle(), col2.settle()...)
	if len(all) != 10 || len(d1) == 0 || len(d2) == 0 {
		t.Fatalf("deliveries %d (%d, %d)", len(all), len(col1.settle()), len(col2.settle()))
	}
}

func TestMulticastSubscriptions(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	// No subscription yet: a topic send is dropped.
	mustSend(t, ss, topicDest("news"), msg("lost", true))
	temp, durable := newCollector(), newCollector()
	ct, err := ss.CreateConsumer(context.Background(), topicDest("news"), ConsumerOptions{Credit: -1}, temp.handle)
	if err != nil {
		t.Fatal(err)
	}
	cd, err := ss.CreateConsumer(context.Background(), topicDest("news"), ConsumerOptions{Credit: -1, Subscription: "sub1"}, durable.handle)
	if err != nil {
		t.Fatal(err)
	}
	mustSend(t, ss, topicDest("news"), msg("a", true))
	mustSend(t, ss, topicDest("news"), msg("b", true))
	for _, c := range []*collector{temp, durable} {
		if got := bodies(c.wait(t, 2)); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("subscription got %v", got)
		}
	}
	// Ack a on the durable subscription only; the message stays for the
	// temp one (which holds no durable reference).
	if err := ackSync(t, ss, durable.wait(t, 2)[0]); err != nil {
		t.Fatal(err)
	}
	tempQueue := ct.Queue()
	ss.CloseConsumer(ct.ID())
	if _, ok := b.s.Queue(tempQueue); ok {
		t.Fatalf("temporary subscription %q survived its consumer", tempQueue)
	}
	ss.CloseConsumer(cd.ID())
	b.restart()
	qs := b.s.Queues()
	if len(qs) != 1 || qs[0].Name != "sub1" || qs[0].Depth != 1 || qs[0].Routing != "multicast" {
		t.Fatalf("queues after restart: %+v", qs)
	}
}

func TestMulticastMessageDeletedAfterLastAck(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	c1, c2 := newCollector(), newCollector()
	ss.CreateConsumer(context.Background(), topicDest("t"), ConsumerOptions{Credit: -1, Subscription: "s1"}, c1.handle)
	ss.CreateConsumer(context.Background(), topicDest("t"), ConsumerOptions{Credit: -1, Subscription: "s2"}, c2.handle)
	mustSend(t, ss, topicDest("t"), msg("x", true))
	for _, c := range []*collector{c1, c2} {
		if err := ackSync(t, ss, c.wait(t, 1)[0]); err != nil {
			t.Fatal(err)
		}
	}
	b.restart()
	mr, err := b.ms.Open().Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mr.Records {
		if r.Type == RecMessage {
			t.Fatalf("message record %d still live after both acks", r.ID)
		}
	}
}

func TestNonPersistentNotRestored(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("np", false))
	mustSend(t, ss, queueDest("q"), msg("p", true))
	b.restart()
	if qi, _ := b.s.Queue("q"); qi.Depth != 1 {
		t.Fatalf("depth after restart %d, want 1", qi.Depth)
	}
}

func TestMessageTooLarge(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	tests := []struct {
		name string
		m    *Message
		ok   bool
	}{
		{"1 MiB body", &Message{Durable: true, Body: make([]byte, MaxBodySize)}, true},
		{"1 MiB + 1 body", &Message{Durable: true, Body: make([]byte, MaxBodySize+1)}, false},
		{"huge property", &Message{Properties: []Property{wire.StringProp("k", strings.Repeat("x", 70<<10))}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := sendSync(t, ss, queueDest("big"), tc.m)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errors.Is(err, ErrMessageTooLarge) {
				t.Fatalf("err %v, want ErrMessageTooLarge", err)
			}
		})
	}
}

func TestNoAutoCreate(t *testing.T) {
	b := newBroker(t, Options{NoAutoCreate: true})
	ss := b.s.NewSession(false)
	if err := sendSync(t, ss, queueDest("q"), msg("x", true)); !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("send: %v, want ErrNoSuchQueue", err)
	}
}

func TestHaltOnJournalFailure(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("before", true))
	col := newCollector()
	ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle)
	d := col.wait(t, 1)[0]
	b.mj.Fail(errors.New("injected EIO"))
	if err := sendSync(t, ss, queueDest("q"), msg("after", true)); err == nil {
		t.Fatal("send confirmed after the journal failed")
	}
	if err := ackSync(t, ss, d); err == nil {
		t.Fatal("ack confirmed after the journal failed")
	}
	if err := sendSync(t, ss, queueDest("q"), msg("np", false)); !errors.Is(err, ErrHalted) {
		t.Fatalf("non-persistent send after halt: %v, want ErrHalted", err)
	}
	if !errors.Is(b.s.Halted(), ErrHalted) {
		t.Fatalf("Halted() = %v", b.s.Halted())
	}
}

func TestIDsResumePastMaxID(t *testing.T) {
	b := newBroker(t, Options{})
	// Records written by someone else with large IDs.
	if err := journal.AppendSync(context.Background(), b.mj, journal.Entry{Kind: journal.KindAdd, ID: 1000, Type: RecDuplicateID, Data: encodeDuplicateID("q", "x")}); err != nil {
		t.Fatal(err)
	}
	b.restart()
	ss := b.s.NewSession(false)
	m := msg("m", true)
	mustSend(t, ss, queueDest("q"), m)
	if m.ID <= 1000 {
		t.Fatalf("new message ID %d not past 1000", m.ID)
	}
}

func TestCanAckGuardsConfirmations(t *testing.T) {
	var allow atomic.Bool
	allow.Store(true)
	b := newBroker(t, Options{CanAck: allow.Load})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("ok", true))
	col := newCollector()
	ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle)
	d := col.wait(t, 1)[0]
	allow.Store(false)
	if err := sendSync(t, ss, queueDest("q"), msg("no lease", true)); !errors.Is(err, ErrNotActive) {
		t.Fatalf("send without lease: %v, want ErrNotActive", err)
	}
	if err := ackSync(t, ss, d); !errors.Is(err, ErrNotActive) {
		t.Fatalf("ack without lease: %v, want ErrNotActive", err)
	}
	tx := b.s.NewSession(true)
	mustSend(t, tx, queueDest("q"), msg("tx", true))
	if err := commitSync(t, tx); !errors.Is(err, ErrNotActive) {
		t.Fatalf("commit without lease: %v, want ErrNotActive", err)
	}
}

// TestCanAckGuardsQueueManagement (issue 21 §5): creating and deleting a
// queue are answered like sends, acks and commits: a live that cannot
// acknowledge (its HA lease ran out) reports ErrNotActive (an unknown
// outcome to the client, which fails over), never success.
func TestCanAckGuardsQueueManagement(t *testing.T) {
	var allow atomic.Bool
	allow.Store(true)
	b := newBroker(t, Options{CanAck: allow.Load})
	ctx := context.Background()
	if _, err := b.s.CreateQueue(ctx, QueueConfig{Name: "kept", Durable: true}); err != nil {
		t.Fatal(err)
	}
	allow.Store(false)
	if _, err := b.s.CreateQueue(ctx, QueueConfig{Name: "new", Durable: true}); !errors.Is(err, ErrNotActive) {
		t.Fatalf("create without lease: %v, want ErrNotActive", err)
	}
	if _, err := b.s.CreateQueue(ctx, QueueConfig{Name: "kept", Durable: true}); !errors.Is(err, ErrNotActive) {
		t.Fatalf("create of an existing queue without lease: %v, want ErrNotActive", err)
	}
	if _, err := b.s.CreateQueue(ctx, QueueConfig{Name: "tmp", Temporary: true}); !errors.Is(err, ErrNotActive) {
		t.Fatalf("create of a temporary queue without lease: %v, want ErrNotActive", err)
	}
	if err := b.s.DeleteQueue(ctx, "kept"); !errors.Is(err, ErrNotActive) {
		t.Fatalf("delete without lease: %v, want ErrNotActive", err)
	}
	if err := b.s.DeleteQueue(ctx, "tmp"); !errors.Is(err, ErrNotActive) {
		t.Fatalf("delete of a non-durable queue without lease: %v, want ErrNotActive", err)
	}
	// Errors that are no confirmation stay what they are.
	if err := b.s.DeleteQueue(ctx, "missing"); !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("delete of a missing queue: %v, want ErrNoSuchQueue", err)
	}
	allow.Store(true)
	if _, err := b.s.CreateQueue(ctx, QueueConfig{Name: "later", Durable: true}); err != nil {
		t.Fatal(err)
	}
}

func TestAckMany(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	for i := 1; i <= 5; i++ {
		mustSend(t, ss, queueDest("q"), msg(fmt.Sprint(i), i != 3))
	}
	col := newCollector()
	c, _ := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle)
	ds := col.wait(t, 5)
	ids := []uint64{ds[0].Message.ID, ds[2].Message.ID, ds[3].Message.ID, 12345}
	ch := make(chan []uint64, 1)
	ss.AckMany(c.ID(), ids, func(failed []uint64, err error) {
		if err != nil {
			t.Error(err)
		}
		ch <- failed
	})
	if failed := <-ch; len(failed) != 1 || failed[0] != 12345 {
		t.Fatalf("failed %v", failed)
	}
	ss.CloseConsumer(c.ID())
	b.restart()
	if qi, _ := b.s.Queue("q"); qi.Depth != 2 { // 2 and 5 stay
		t.Fatalf("depth %d after acking 1, 3, 4 and restart", qi.Depth)
	}
}

func TestNonDurableNamedSubscription(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	opts := ConsumerOptions{Credit: -1, Subscription: "shared", NonDurable: true}
	c1, err := ss.CreateConsumer(context.Background(), topicDest("t"), opts, newCollector().handle)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ss.CreateConsumer(context.Background(), topicDest("t"), opts, newCollector().handle)
	if err != nil {
		t.Fatal(err)
	}
	if qi, ok := b.s.Queue("shared"); !ok || qi.Durable || qi.Consumers != 2 {
		t.Fatalf("shared subscription %+v %v", qi, ok)
	}
	ss.CloseConsumer(c1.ID())
	if _, ok := b.s.Queue("shared"); !ok {
		t.Fatal("subscription deleted while a consumer remains")
	}
	ss.CloseConsumer(c2.ID())
	if _, ok := b.s.Queue("shared"); ok {
		t.Fatal("non-durable subscription outlived its last consumer")
	}
	// A non-durable auto-created anycast queue does not survive a restart.
	if _, err := ss.CreateConsumer(context.Background(), queueDest("nd"), ConsumerOptions{NonDurable: true}, newCollector().handle); err != nil {
		t.Fatal(err)
	}
	b.restart()
	if _, ok := b.s.Queue("nd"); ok {
		t.Fatal("non-durable queue restored")
	}
}

func TestNodeIDAndEpochFromOptions(t *testing.T) {
	b := newBroker(t, Options{})
	stored := b.s.NodeID()
	b.stop()
	b.opts = Options{NodeID: "11111111-2222-4333-8444-555555555555", Epoch: 7, Logger: b.opts.Logger}
	b.start()
	if b.s.NodeID() != b.opts.NodeID || b.s.Epoch() != 7 {
		t.Fatalf("node %s epoch %d", b.s.NodeID(), b.s.Epoch())
	}
	if st := b.s.Status(); st.NodeID != b.opts.NodeID || st.Epoch != 7 || st.State != "active" {
		t.Fatalf("status %+v", st)
	}
	b.stop()
	b.opts = Options{Logger: b.opts.Logger}
	b.start()
	if b.s.NodeID() != stored {
		t.Fatalf("stored node ID %s replaced by %s", stored, b.s.NodeID())
	}
}
