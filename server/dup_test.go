package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
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

// fileServer is a server on the file journal (NIO) in dir with 1 MiB
// segments, which refuse an append holding a MaxBodySize body
// (journal.ErrTooLarge). stop closes server and store.
func fileServer(t *testing.T, dir string, opts Options) (s *Server, stop func()) {
	t.Helper()
	cfg := config.Default()
	cfg.ApplyDataDir(dir)
	cfg.Journal.Type, cfg.Journal.Backend = "NIO", aio.NIO
	cfg.Journal.FileSize = 1 << 20
	opts.Logger = slog.New(slog.DiscardHandler)
	st, err := OpenStore(context.Background(), cfg, StoreOptions{Logger: opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	opts.Messages, opts.Bindings, opts.Store = st.Messages, st.Bindings, st.Kind
	s = New(opts)
	if err := s.Start(context.Background()); err != nil {
		st.Close()
		t.Fatal(err)
	}
	return s, func() { s.Close(); st.Close() }
}

// TestDuplicateRefusedAppend: a send (or a transaction of two) whose
// append the journal refuses, here for a body too large for a segment,
// leaves the duplicate ID cache exactly as it was. Its add had evicted the
// oldest ID, whose record stays because the eviction's delete was refused
// with it: that ID must still be detected, before and after a restart, and
// the next add evicts it as it would have before.
func TestDuplicateRefusedAppend(t *testing.T) {
	for _, transacted := range []bool{false, true} {
		t.Run(fmt.Sprintf("transacted=%v", transacted), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			s, stop := fileServer(t, dir, Options{IDCacheSize: 2})
			defer func() { stop() }()
			ss := s.NewSession(transacted)
			send := func(ms ...*Message) error {
				for _, m := range ms {
					if err := sendSync(t, ss, queueDest("q"), m); err != nil {
						return err
					}
				}
				if transacted {
					return commitSync(t, ss)
				}
				return nil
			}
			depth := func() int64 {
				qi, _ := s.Queue("q")
				return qi.Depth
			}
			for _, id := range []string{"a", "b"} {
				if err := send(dupMsg(id, id)); err != nil {
					t.Fatal(err)
				}
			}
			// The window is full (a, b): adding c evicts a.
			refused := []*Message{{Durable: true, DuplicateID: "c", Body: make([]byte, MaxBodySize)}}
			if transacted { // two adds, evicting a then b, undone together
				refused = append(refused, dupMsg("d", "d"))
			}
			if err := send(refused...); !errors.Is(err, journal.ErrTooLarge) {
				t.Fatalf("refused send: %v, want journal.ErrTooLarge", err)
			}
			for _, id := range []string{"a", "b"} {
				if err := send(dupMsg(id+" resent", id)); err != nil {
					t.Fatal(err)
				}
			}
			if d := depth(); d != 2 {
				t.Fatalf("depth %d after resending a and b, want 2: a refused add dropped an ID from the window", d)
			}
			// c now evicts a, as it would have before the refusal.
			if err := send(dupMsg("c", "c")); err != nil {
				t.Fatal(err)
			}
			if err := send(dupMsg("b resent", "b")); err != nil {
				t.Fatal(err)
			}
			if d := depth(); d != 3 {
				t.Fatalf("depth %d after c and a resend of b, want 3", d)
			}
			stop()
			s, stop = fileServer(t, dir, Options{IDCacheSize: 2})
			ss = s.NewSession(transacted)
			for _, id := range []string{"b", "c"} {
				if err := send(dupMsg(id+" after restart", id)); err != nil {
					t.Fatal(err)
				}
			}
			if d := depth(); d != 3 {
				t.Fatalf("depth %d after a restart and resends of b and c, want 3", d)
			}
			if err := send(dupMsg("a after restart", "a")); err != nil {
				t.Fatal(err)
			}
			if d := depth(); d != 4 {
				t.Fatalf("depth %d, want 4: a was evicted by c and is accepted again", d)
			}
		})
	}
}
