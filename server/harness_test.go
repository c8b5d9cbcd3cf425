package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// broker is a server on memory stores that a test can restart.
type broker struct {
	t      testing.TB
	ms, bs *journal.MemoryStore
	mj, bj *journal.Memory
	s      *Server
	opts   Options
	// pageDir, when set, holds a paging journal (log mode) opened at each
	// start (pageSeg: its segment size).
	pageDir string
	pageSeg int64
	pj      *journal.FileJournal
	// largeDir, when set, holds a large-messages journal (log mode)
	// opened at each start.
	largeDir string
	lj       *journal.FileJournal
}

// newLargeBroker is newPagingBroker with a large-messages journal too.
func newLargeBroker(t testing.TB, opts Options) *broker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &broker{t: t, ms: journal.NewMemoryStore(), bs: journal.NewMemoryStore(), opts: opts,
		pageDir: t.TempDir(), pageSeg: 1 << 20, largeDir: t.TempDir()}
	b.start()
	t.Cleanup(b.stop)
	return b
}

// newPagingBroker is newBroker with a paging journal in a directory of
// the test's.
func newPagingBroker(t testing.TB, opts Options, pageSeg int64) *broker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &broker{t: t, ms: journal.NewMemoryStore(), bs: journal.NewMemoryStore(), opts: opts, pageDir: t.TempDir(), pageSeg: pageSeg}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func newBroker(t testing.TB, opts Options) *broker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &broker{t: t, ms: journal.NewMemoryStore(), bs: journal.NewMemoryStore(), opts: opts}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) start() {
	b.t.Helper()
	b.mj, b.bj = b.ms.Open(), b.bs.Open()
	o := b.opts
	o.Messages, o.Bindings = b.mj, b.bj
	if b.pageDir != "" {
		pj, err := journal.Open(journal.Options{Dir: b.pageDir, Log: true, SegmentSize: b.pageSeg, Prefix: "tandem-page", Ext: "tjp", Logger: o.Logger})
		if err != nil {
			b.t.Fatal(err)
		}
		b.pj = pj
		o.Pages = pj
	}
	if b.largeDir != "" {
		lj, err := journal.Open(journal.Options{Dir: b.largeDir, Log: true, SegmentSize: 4 << 20, Prefix: journal.LargePrefix, Ext: journal.LargeExt, Logger: o.Logger})
		if err != nil {
			b.t.Fatal(err)
		}
		b.lj = lj
		o.Large = lj
	}
	b.s = New(o)
	if err := b.s.Start(context.Background()); err != nil {
		b.t.Fatalf("start: %v", err)
	}
}

func (b *broker) stop() {
	if b.s == nil {
		return
	}
	b.s.Close()
	b.mj.Close()
	b.bj.Close()
	if b.pj != nil {
		b.pj.Close()
		b.pj = nil
	}
	if b.lj != nil {
		b.lj.Close()
		b.lj = nil
	}
	b.s = nil
}

func (b *broker) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

// sendSync sends and waits for the outcome.
func sendSync(t *testing.T, ss *Session, dest Destination, m *Message) error {
	t.Helper()
	ch := make(chan error, 1)
	ss.Send(context.Background(), dest, m, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("send: no outcome after 10s")
		return nil
	}
}

func mustSend(t *testing.T, ss *Session, dest Destination, m *Message) {
	t.Helper()
	if err := sendSync(t, ss, dest, m); err != nil {
		t.Fatalf("send %q: %v", m.Body, err)
	}
}

func msg(body string, durable bool) *Message {
	return &Message{Durable: durable, Body: []byte(body)}
}

func queueDest(name string) Destination { return Destination{Name: name, Routing: Anycast} }
func topicDest(name string) Destination { return Destination{Name: name, Routing: Multicast} }

// collector gathers deliveries.
type collector struct {
	mu sync.Mutex
	ds []Delivery
	ch chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) handle(d Delivery) {
	c.mu.Lock()
	c.ds = append(c.ds, d)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

// wait waits until n deliveries arrived and returns them all.
func (c *collector) wait(t *testing.T, n int) []Delivery {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		if len(c.ds) >= n {
			ds := append([]Delivery(nil), c.ds...)
			c.mu.Unlock()
			return ds
		}
		got := len(c.ds)
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("got %d deliveries, want %d", got, n)
		}
	}
}

// settle returns the deliveries after a short quiet period (to check that
// nothing more arrives).
func (c *collector) settle() []Delivery {
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Delivery(nil), c.ds...)
}

func ackSync(t *testing.T, ss *Session, d Delivery) error {
	t.Helper()
	ch := make(chan error, 1)
	ss.Ack(d.ConsumerID, d.Message.ID, func(err error) { ch <- err })
	return <-ch
}

func commitSync(t *testing.T, ss *Session) error {
	t.Helper()
	ch := make(chan error, 1)
	ss.Commit(context.Background(), func(err error) { ch <- err })
	return <-ch
}

func bodies(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Message.Body)
	}
	return out
}

func seqBodies(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}
