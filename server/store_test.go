package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/config"
)

// TestFileStoreRestore runs the broker on the real file journal (NIO), stops
// it and loads the same directories again.
func TestFileStoreRestore(t *testing.T) {
	cfg := config.Default()
	cfg.ApplyDataDir(filepath.Join(t.TempDir(), "data"))
	cfg.Journal.Type, cfg.Journal.Backend = "NIO", aio.NIO
	cfg.Journal.FileSize = 1 << 20
	log := slog.New(slog.DiscardHandler)
	open := func() (*Store, *Server) {
		st, err := OpenStore(context.Background(), cfg, StoreOptions{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if st.Kind != "file" {
			t.Fatalf("store kind %q", st.Kind)
		}
		s := New(Options{Messages: st.Messages, Bindings: st.Bindings, Store: st.Kind, Logger: log})
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st, s
	}
	st, s := open()
	node := s.NodeID()
	ss := s.NewSession(false)
	for i := 1; i <= 300; i++ { // several segments' worth of 4 KiB bodies
		m := &Message{Durable: true, DuplicateID: fmt.Sprint("d", i), Body: make([]byte, 4096)}
		copy(m.Body, fmt.Sprint("m", i))
		mustSend(t, ss, queueDest("q"), m)
	}
	col := newCollector()
	c, _ := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 100}, col.handle)
	for _, d := range col.wait(t, 100) {
		if err := ackSync(t, ss, d); err != nil {
			t.Fatal(err)
		}
	}
	ss.CloseConsumer(c.ID())
	s.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, s = open()
	defer func() { s.Close(); st.Close() }()
	rec := httptest.NewRecorder()
	MetricsHandler(MetricsOptions{Server: func() *Server { return s }}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, name := range []string{`tandem_journal_syncs_total{journal="messages"}`, `tandem_journal_segments{journal="messages"}`} {
		if !strings.Contains(rec.Body.String(), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if s.NodeID() != node {
		t.Fatalf("node ID %s, want %s", s.NodeID(), node)
	}
	ss = s.NewSession(false)
	mustSend(t, ss, queueDest("q"), &Message{Durable: true, DuplicateID: "d150", Body: []byte("dup")})
	col = newCollector()
	ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle)
	ds := col.wait(t, 200)
	got := make([]string, 0, len(ds))
	for _, d := range ds {
		got = append(got, string(d.Message.Body[:len(fmt.Sprint("m", 101+len(got)))]))
	}
	if !slices.Equal(got, seqBodies("m", 101, 300)) {
		t.Fatalf("restored %v...", got[:5])
	}
	if extra := col.settle(); len(extra) != 200 {
		t.Fatalf("%d deliveries, want 200 (the duplicate must be dropped)", len(extra))
	}
}

// TestMemoryStoreKeepsNothing: persistence-enabled=false serves from a
// journal that keeps nothing, confirms in order, and starts empty again.
func TestMemoryStoreKeepsNothing(t *testing.T) {
	cfg := config.Default()
	cfg.PersistenceEnabled = false
	log := slog.New(slog.DiscardHandler)
	for round := 0; round < 2; round++ {
		st, err := OpenStore(context.Background(), cfg, StoreOptions{Logger: log})
		if err != nil || st.Kind != "memory" {
			t.Fatalf("store %v %v", st, err)
		}
		s := New(Options{Messages: st.Messages, Bindings: st.Bindings, Store: st.Kind, Logger: log})
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if qs := s.Queues(); len(qs) != 0 {
			t.Fatalf("round %d starts with queues %v", round, qs)
		}
		ss := s.NewSession(false)
		var order []int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := 0; i < 100; i++ {
			wg.Add(1)
			ss.Send(context.Background(), queueDest("q"), &Message{Durable: true, DuplicateID: fmt.Sprint(i), Body: []byte("x")}, func(err error) {
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				wg.Done()
			})
		}
		wg.Wait()
		if !slices.IsSorted(order) {
			t.Fatalf("confirmations out of order: %v", order)
		}
		if qi, _ := s.Queue("q"); qi.Depth != 100 {
			t.Fatalf("depth %d", qi.Depth)
		}
		s.Close()
		st.Close()
	}
}
