package server

import (
	"context"
	"fmt"
	"testing"
)

func dupMsg(body, id string) *Message {
	return &Message{Durable: true, Body: []byte(body), DuplicateID: id}
}

func countRecords(t *testing.T, b *broker, typ uint8) int {
	t.Helper()
	b.stop()
	j := b.ms.Open()
	res, err := j.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	n := 0
	for _, r := range res.Records {
		if r.Type == typ {
			n++
		}
	}
	b.start()
	return n
}

func TestDuplicateDetection(t *testing.T) {
	b := newBroker(t, Options{IDCacheSize: 3})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), dupMsg("a", "id-a"))
	mustSend(t, ss, queueDest("q"), dupMsg("a again", "id-a"))
	if qi, _ := b.s.Queue("q"); qi.Depth != 1 {
		t.Fatalf("depth %d after a duplicate", qi.Depth)
	}
	// The cache survives a restart.
	b.restart()
	ss = b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), dupMsg("a after restart", "id-a"))
	if qi, _ := b.s.Queue("q"); qi.Depth != 1 {
		t.Fatalf("depth %d after a duplicate sent after restart", qi.Depth)
	}
	// Another address has its own cache.
	mustSend(t, ss, queueDest("q2"), dupMsg("a on q2", "id-a"))
	if qi, _ := b.s.Queue("q2"); qi.Depth != 1 {
		t.Fatalf("q2 depth %d", qi.Depth)
	}
	// Three more IDs evict id-a (cache size 3), whose record is deleted.
	for _, id := range []string{"b", "c", "d"} {
		mustSend(t, ss, queueDest("q"), dupMsg(id, id))
	}
	if n := countRecords(t, b, RecDuplicateID); n != 4 { // b c d on q, id-a on q2
		t.Fatalf("%d duplicate ID records, want 4", n)
	}
	ss = b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), dupMsg("a evicted", "id-a"))
	if qi, _ := b.s.Queue("q"); qi.Depth != 5 {
		t.Fatalf("depth %d, want 5 (the evicted ID is accepted again)", qi.Depth)
	}
}

func TestDuplicateInTransaction(t *testing.T) {
	b := newBroker(t, Options{})
	tx := b.s.NewSession(true)
	mustSend(t, tx, queueDest("q"), dupMsg("x", "same"))
	mustSend(t, tx, queueDest("q"), dupMsg("x twice", "same"))
	mustSend(t, tx, queueDest("q"), dupMsg("y", "other"))
	if err := commitSync(t, tx); err != nil {
		t.Fatal(err)
	}
	mustSend(t, tx, queueDest("q"), dupMsg("y resent", "other"))
	if err := commitSync(t, tx); err != nil {
		t.Fatal(err)
	}
	if qi, _ := b.s.Queue("q"); qi.Depth != 2 {
		t.Fatalf("depth %d, want 2", qi.Depth)
	}
}

// Concurrent resends of one ID are stored once and all confirmed.
func TestDuplicateConcurrent(t *testing.T) {
	b := newBroker(t, Options{})
	const n = 50
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			ss := b.s.NewSession(false)
			ch := make(chan error, 1)
			ss.Send(context.Background(), queueDest("q"), dupMsg(fmt.Sprint(i), "one"), func(err error) { ch <- err })
			errs <- <-ch
		}(i)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if qi, _ := b.s.Queue("q"); qi.Depth != 1 {
		t.Fatalf("depth %d, want 1", qi.Depth)
	}
}
