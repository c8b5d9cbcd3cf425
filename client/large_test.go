package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// largeBroker is a broker whose paging and large-messages journals are
// real log-mode file journals (the others in memory), restartable.
type largeBroker struct {
	t          *testing.T
	ms, bs     *journal.MemoryStore
	mj, bj     *journal.Memory
	pj, lj     *journal.FileJournal
	pdir, ldir string
	s          *server.Server
	acc        *server.Acceptor
	addr       string
	opts       server.Options
}

func newLargeBroker(t *testing.T, opts server.Options) *largeBroker {
	t.Helper()
	b := &largeBroker{t: t, pdir: t.TempDir(), ldir: t.TempDir(), opts: opts}
	b.ms, b.bs = newStores()
	b.start("127.0.0.1:0")
	t.Cleanup(b.stop)
	return b
}

func (b *largeBroker) start(addr string) {
	b.t.Helper()
	open := func(dir, prefix, ext string, size int64) *journal.FileJournal {
		j, err := journal.Open(journal.Options{Dir: dir, Log: true, Prefix: prefix, Ext: ext, SegmentSize: size, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.t.Fatal(err)
		}
		return j
	}
	b.mj, b.bj = b.ms.Open(), b.bs.Open()
	b.pj = open(b.pdir, journal.PagePrefix, journal.PageExt, 1<<20)
	b.lj = open(b.ldir, journal.LargePrefix, journal.LargeExt, 4<<20)
	o := b.opts
	o.Messages, o.Bindings, o.Pages, o.Large = b.mj, b.bj, b.pj, b.lj
	o.Logger = slog.New(slog.DiscardHandler)
	b.s = server.New(o)
	if err := b.s.Start(context.Background()); err != nil {
		b.t.Fatalf("broker start: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.acc = b.s.Serve(ln, server.NetOptions{})
	b.addr = ln.Addr().String()
}

func (b *largeBroker) stop() {
	if b.s == nil {
		return
	}
	b.acc.Close(wire.CodeShuttingDown, "test stops the broker")
	b.s.Close()
	b.mj.Close()
	b.bj.Close()
	b.pj.Close()
	b.lj.Close()
	b.s = nil
}

func (b *largeBroker) restart() {
	b.stop()
	b.start(b.addr)
}

func (b *largeBroker) url() string { return "tcp://" + b.addr }

// randomBody is n pseudo-random bytes (seeded: the test can make it again).
func randomBody(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestLargeMessages: bodies above minLargeMessageSize go as large
// messages: stored in the large-messages journal, delivered whole and
// intact, kept across a restart until acknowledged, recognised as
// duplicates, and their segments reclaimed once acknowledged.
func TestLargeMessages(t *testing.T) {
	b := newLargeBroker(t, server.Options{})
	c := dial(t, b.url())
	s := session(t, c)
	p := s.CreateProducer(Queue("big"))
	bodies := [][]byte{randomBody(1, 5<<20+17), randomBody(2, 200<<10), randomBody(3, 50)}
	for i, body := range bodies {
		if err := p.Send(testCtx(t), &Message{Body: body, DuplicateID: fmt.Sprintf("big-%d", i),
			Properties: []Property{wire.StringProp("n", fmt.Sprint(i))}}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	// Sent again with the same duplicate ID: stored once.
	if err := p.Send(testCtx(t), &Message{Body: bodies[0], DuplicateID: "big-0"}); err != nil {
		t.Fatal(err)
	}
	if d := b.s.Stats().Duplicates; d != 1 {
		t.Fatalf("duplicates %d", d)
	}
	if b.lj.DurableEnd().Seq < 2 {
		t.Fatalf("the large journal holds %v", b.lj.DurableEnd())
	}
	c.Close()
	b.restart()
	c = dial(t, b.url())
	s = session(t, c)
	k := consumer(t, s, Queue("big"))
	for i, want := range bodies {
		m, err := k.Receive(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Body, want) {
			t.Fatalf("message %d: %d bytes, want %d (or different)", i, len(m.Body), len(want))
		}
		if pr, _ := m.Property("n"); pr.Str != fmt.Sprint(i) {
			t.Fatalf("message %d: property %+v", i, pr)
		}
		if err := k.Ack(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	// Acknowledged: nothing holds the large journal's segments any more.
	end := b.lj.DurableEnd().Seq
	deadline := testCtx(t)
	for b.lj.Oldest() < end {
		select {
		case <-deadline.Done():
			t.Fatalf("oldest large segment %d, end %d", b.lj.Oldest(), end)
		default:
		}
		mustSendSmall(t, s) // appends move reclaim along
	}
}

func mustSendSmall(t *testing.T, s *Session) {
	t.Helper()
	if err := s.CreateProducer(Queue("other")).Send(testCtx(t), &Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

// TestSendStream: a body read from an io.Reader is sent without being held
// whole and arrives intact.
func TestSendStream(t *testing.T) {
	b := newLargeBroker(t, server.Options{})
	c := dial(t, b.url())
	s := session(t, c)
	const size = 20<<20 + 3
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{9}), size), h)
	if err := s.CreateProducer(Queue("stream")).SendStream(testCtx(t), &Message{}, src, size); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)
	m, err := consumer(t, s, Queue("stream")).Receive(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(m.Body); len(m.Body) != size || !bytes.Equal(got[:], want) {
		t.Fatalf("received %d bytes, sha256 differs: %v", len(m.Body), !bytes.Equal(got[:], want))
	}
	// A short body is refused (nothing stored).
	err = s.CreateProducer(Queue("stream")).SendStream(testCtx(t), &Message{}, bytes.NewReader(make([]byte, 10)), 1<<20)
	if err == nil {
		t.Fatal("a body shorter than its size was stored")
	}
}

// TestLargePaged: a large message sent to an address that pages is paged
// (its reference; the body is in the large journal already) and comes
// back whole after a restart, in order with the others.
func TestLargePaged(t *testing.T) {
	max := int64(64 << 10)
	policy := config.FullPage
	b := newLargeBroker(t, server.Options{AddressSettings: config.AddressSettings{{Match: "#", MaxSizeBytes: &max, AddressFullPolicy: &policy}}})
	c := dial(t, b.url())
	s := session(t, c)
	p := s.CreateProducer(Queue("pq"))
	var sent [][]byte
	for i := 0; i < 300; i++ {
		body := randomBody(uint64(i), 1000)
		if i%50 == 25 {
			body = randomBody(uint64(i), 300<<10)
		}
		sent = append(sent, body)
		if err := p.Send(testCtx(t), &Message{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if b.s.Stats().Paged == 0 {
		t.Fatal("nothing paged")
	}
	c.Close()
	b.restart()
	c = dial(t, b.url())
	s = session(t, c)
	k := consumer(t, s, Queue("pq"))
	for i, want := range sent {
		m, err := k.Receive(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Body, want) {
			t.Fatalf("message %d: %d bytes, want %d", i, len(m.Body), len(want))
		}
		if err := k.Ack(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLargeWithoutLargeStore: a broker without a large-messages journal
// (memory or PostgreSQL store) takes a "large" body of at most 1 MiB as an
// ordinary message, and refuses a larger one as too large.
func TestLargeWithoutLargeStore(t *testing.T) {
	b := newTestBroker(t)
	c := dial(t, b.url())
	s := session(t, c)
	body := randomBody(4, 300<<10)
	p := s.CreateProducer(Queue("mem"))
	if err := p.Send(testCtx(t), &Message{Body: body}); err != nil {
		t.Fatal(err)
	}
	m, err := consumer(t, s, Queue("mem")).Receive(testCtx(t))
	if err != nil || !bytes.Equal(m.Body, body) {
		t.Fatalf("received %d bytes, %v", len(m.Body), err)
	}
	var se *ServerError
	if err := p.Send(testCtx(t), &Message{Body: make([]byte, 2<<20)}); !errors.As(err, &se) || se.Code != wire.CodeTooLarge {
		t.Fatalf("2 MiB on a memory broker: %v, want CodeTooLarge", err)
	}
}

// TestLargeExpired: a large message that expires moves to the expiry
// address with its body.
func TestLargeExpired(t *testing.T) {
	exp := "ExpiryQueue"
	b := newLargeBroker(t, server.Options{
		AddressSettings: config.AddressSettings{{Match: "#", ExpiryAddress: &exp}},
		Addresses:       []config.AddressDef{{Name: exp, Anycast: true, Queues: []config.QueueDef{{Name: exp, Routing: config.RoutingAnycast, Durable: true}}}},
	})
	c := dial(t, b.url())
	s := session(t, c)
	body := randomBody(8, 3<<20)
	if err := s.CreateProducer(Queue("short")).Send(testCtx(t), &Message{Body: body, Expiration: 1}); err != nil {
		t.Fatal(err)
	}
	consumer(t, s, Queue("short")) // dispatch meets it expired
	m, err := consumer(t, s, Queue(exp)).Receive(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Body, body) {
		t.Fatalf("expired copy has %d bytes, want %d", len(m.Body), len(body))
	}
}
