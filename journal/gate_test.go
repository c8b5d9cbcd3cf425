package journal_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
)

func openGated(t *testing.T) (*journal.FileJournal, *journal.Subscription, *journal.Gate) {
	t.Helper()
	j, err := journal.Open(journal.Options{Dir: t.TempDir(), FS: aio.OS(aio.NIO, aio.DefaultOptions()), SegmentSize: 64 << 10, Logger: quiet, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	sub, err := j.SubscribeReplica(journal.Position{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return j, sub, j.AttachGate(journal.Position{})
}

// outcome records a done callback's result.
type outcome chan error

func (o outcome) done(err error) { o <- err }

func (o outcome) pending(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-o:
		t.Fatalf("%s completed (%v) before the replica confirmed it", what, err)
	default:
	}
}

func (o outcome) wait(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-o:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s never completed", what)
		return nil
	}
}

// nextEnd reads the stream until it has passed every durable byte so far
// and returns the position after them.
func nextEnd(t *testing.T, sub *journal.Subscription) journal.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b.End()
}

// TestGateHoldsUntilAck: a synced append completes only once the replica
// acknowledged a position at or past its durable end; acknowledging less
// keeps it held; appends complete in order behind a held one.
func TestGateHoldsUntilAck(t *testing.T) {
	j, sub, g := openGated(t)
	first := make(outcome, 1)
	if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 1, Type: 1, Data: []byte("a")}}, true, first.done); err != nil {
		t.Fatal(err)
	}
	end1 := nextEnd(t, sub) // durable on the primary now
	first.pending(t, "the first append")
	if n, since := g.Held(); n != 1 || since.IsZero() {
		t.Fatalf("Held() = %d, %v; want 1 batch", n, since)
	}
	// A second, unsynced append and a third synced one: the flusher may
	// take them in one batch or two; either way they complete after the
	// first and in order.
	var order []int
	seen := make(chan int, 2)
	if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 2, Type: 1}}, false, func(err error) {
		if err == nil {
			seen <- 2
		}
	}); err != nil {
		t.Fatal(err)
	}
	third := make(outcome, 1)
	if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 3, Type: 1}}, true, func(err error) {
		seen <- 3
		third.done(err)
	}); err != nil {
		t.Fatal(err)
	}
	end3 := nextEnd(t, sub)
	if !end1.Less(end3) {
		t.Fatalf("stream end %v not after %v", end3, end1)
	}
	g.Ack(journal.Position{Seq: end1.Seq, Offset: end1.Offset - 1})
	first.pending(t, "the first append after a partial ack")
	g.Ack(end1)
	if err := first.wait(t, "the first append"); err != nil {
		t.Fatal(err)
	}
	third.pending(t, "the third append")
	g.Ack(end3)
	if err := third.wait(t, "the third append"); err != nil {
		t.Fatal(err)
	}
	for len(order) < 2 {
		select {
		case n := <-seen:
			order = append(order, n)
		case <-time.After(20 * time.Second):
			t.Fatalf("completions seen: %v", order)
		}
	}
	if order[0] != 2 || order[1] != 3 {
		t.Fatalf("completion order %v, want [2 3]", order)
	}
	if g.Acked() != end3 {
		t.Fatalf("Acked() = %v, want %v", g.Acked(), end3)
	}
}

// TestGateReleaseAndFail: Release completes what is held with success and
// detaches (later appends complete at once); Fail and Close complete it
// with an error (outcome unknown), never with success.
func TestGateReleaseAndFail(t *testing.T) {
	t.Run("release", func(t *testing.T) {
		j, sub, g := openGated(t)
		o := make(outcome, 1)
		if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 1, Type: 1}}, true, o.done); err != nil {
			t.Fatal(err)
		}
		nextEnd(t, sub)
		o.pending(t, "the append")
		g.Release()
		if err := o.wait(t, "the released append"); err != nil {
			t.Fatal(err)
		}
		if err := journal.AppendSync(context.Background(), j, journal.Entry{Kind: journal.KindAdd, ID: 2, Type: 1}); err != nil {
			t.Fatalf("append after Release: %v", err)
		}
	})
	t.Run("fail", func(t *testing.T) {
		j, sub, g := openGated(t)
		o := make(outcome, 1)
		if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 1, Type: 1}}, true, o.done); err != nil {
			t.Fatal(err)
		}
		nextEnd(t, sub)
		g.Fail(nil)
		if err := o.wait(t, "the failed append"); !errors.Is(err, journal.ErrNotReplicated) {
			t.Fatalf("outcome %v, want ErrNotReplicated", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		j, sub, _ := openGated(t)
		o := make(outcome, 1)
		if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: 1, Type: 1}}, true, o.done); err != nil {
			t.Fatal(err)
		}
		nextEnd(t, sub)
		sub.Close()
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if err := o.wait(t, "the append held at close"); !errors.Is(err, journal.ErrNotReplicated) {
			t.Fatalf("outcome %v, want ErrNotReplicated", err)
		}
	})
}

// TestCompactWaitsForReplica: while a replica subscriber is attached,
// compaction rewrites nothing (the replica's byte copies must stay equal
// to the primary's segments).
func TestCompactWaitsForReplica(t *testing.T) {
	j, _, g := openGated(t)
	g.Release()
	res, err := j.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.NewSegs != 0 || res.Skipped != "a replica is attached" {
		t.Fatalf("Compact with a replica attached: %+v", res)
	}
}
