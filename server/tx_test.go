package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

func TestTransactionSends(t *testing.T) {
	b := newBroker(t, Options{})
	tx := b.s.NewSession(true)
	for i := 1; i <= 3; i++ {
		mustSend(t, tx, queueDest("q"), msg(fmt.Sprintf("m%d", i), true))
	}
	if qi, _ := b.s.Queue("q"); qi.Depth != 0 {
		t.Fatalf("uncommitted sends visible: depth %d", qi.Depth)
	}
	if err := commitSync(t, tx); err != nil {
		t.Fatal(err)
	}
	mustSend(t, tx, queueDest("q"), msg("rolled-back", true))
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := commitSync(t, tx); err != nil { // empty
		t.Fatal(err)
	}
	b.restart()
	ss := b.s.NewSession(false)
	col := newCollector()
	ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle)
	if got := bodies(col.wait(t, 3)); !slices.Equal(got, seqBodies("m", 1, 3)) {
		t.Fatalf("got %v", got)
	}
	if got := col.settle(); len(got) != 3 {
		t.Fatalf("rolled-back send delivered: %v", bodies(got))
	}
}

func TestTransactionAcks(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	for i := 1; i <= 4; i++ {
		mustSend(t, ss, queueDest("q"), msg(fmt.Sprintf("m%d", i), true))
	}
	tx := b.s.NewSession(true)
	col := newCollector()
	tx.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 2}, col.handle)
	ds := col.wait(t, 2)
	for _, d := range ds {
		if err := ackSync(t, tx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// m1 and m2 come back (credit 2 more) with delivery count 2.
	tx.Consumer(1).Credit(2)
	ds = col.wait(t, 4)[2:]
	if got := bodies(ds); !slices.Equal(got, []string{"m1", "m2"}) || ds[0].DeliveryCount != 2 {
		t.Fatalf("after rollback got %v (count %d)", got, ds[0].DeliveryCount)
	}
	for _, d := range ds {
		if err := ackSync(t, tx, d); err != nil {
			t.Fatal(err)
		}
	}
	// Commit the acks together with a send.
	mustSend(t, tx, queueDest("other"), msg("o1", true))
	if err := commitSync(t, tx); err != nil {
		t.Fatal(err)
	}
	b.restart()
	q, _ := b.s.Queue("q")
	o, _ := b.s.Queue("other")
	if q.Depth != 2 || o.Depth != 1 {
		t.Fatalf("after commit and restart: q depth %d (want 2), other depth %d (want 1)", q.Depth, o.Depth)
	}
}

func TestTransactionSessionCloseRedelivers(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("m1", true))
	tx := b.s.NewSession(true)
	col := newCollector()
	tx.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle)
	if err := ackSync(t, tx, col.wait(t, 1)[0]); err != nil {
		t.Fatal(err)
	}
	tx.Close() // the acked-but-uncommitted message goes back
	if qi, _ := b.s.Queue("q"); qi.Depth != 1 {
		t.Fatalf("depth after close %d", qi.Depth)
	}
}
