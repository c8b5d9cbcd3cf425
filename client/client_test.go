package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, url string, opts ...Option) *Conn {
	t.Helper()
	c, err := Dial(testCtx(t), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func session(t *testing.T, c *Conn, opts ...SessionOption) *Session {
	t.Helper()
	s, err := c.CreateSession(testCtx(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func consumer(t *testing.T, s *Session, d Destination, opts ...ConsumerOption) *Consumer {
	t.Helper()
	k, err := s.CreateConsumer(testCtx(t), d, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// receiveN receives and acks (confirmed) n messages, returning bodies.
func receiveN(t *testing.T, k *Consumer, n int) []string {
	t.Helper()
	ctx := testCtx(t)
	var out []string
	for len(out) < n {
		m, err := k.Receive(ctx)
		if err != nil {
			t.Fatalf("receive %d of %d: %v", len(out)+1, n, err)
		}
		if err := k.Ack(ctx, m); err != nil {
			t.Fatalf("ack: %v", err)
		}
		out = append(out, string(m.Body))
	}
	return out
}

func expectEmpty(t *testing.T, k *Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if m, err := k.Receive(ctx); err == nil {
		t.Fatalf("unexpected message %q", m.Body)
	}
}

func TestSendReceiveRoundTrip(t *testing.T) {
	b := newTestBroker(t)
	// 1 MiB bodies in one frame (the threshold of large messages at its
	// largest).
	c := dial(t, b.url()+"?minLargeMessageSize=1048576", WithClientID("rt"))
	if c.NodeID() == "" {
		t.Error("no node ID from Welcome")
	}
	s := session(t, c)
	p := s.CreateProducer(Queue("q1"))
	ctx := testCtx(t)
	props := []Property{wire.StringProp("s", "v"), wire.Int64Prop("i", 42), wire.BoolProp("b", true), wire.BytesProp("x", []byte{1, 2})}
	if err := p.Send(ctx, &Message{Body: []byte("hello"), Properties: props}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("z"), wire.MaxBodySize)
	if err := p.Send(ctx, &Message{Body: big}); err != nil {
		t.Fatalf("1 MiB body: %v", err)
	}
	// Larger: a large message, which a broker without a large-messages
	// journal (this one runs on memory) refuses.
	var se *ServerError
	if err := p.Send(ctx, &Message{Body: make([]byte, wire.MaxBodySize+1)}); !errors.As(err, &se) || se.Code != wire.CodeTooLarge {
		t.Fatalf("oversized body: %v, want CodeTooLarge", err)
	}
	k := consumer(t, s, Queue("q1"))
	m, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != "hello" || !m.Durable || m.DeliveryCount != 1 || m.Address != "q1" || m.DuplicateID == "" {
		t.Fatalf("got %+v", m)
	}
	for _, want := range props {
		got, ok := m.Property(want.Key)
		if !ok || fmt.Sprint(got.Value()) != fmt.Sprint(want.Value()) {
			t.Errorf("property %s = %v, want %v", want.Key, got.Value(), want.Value())
		}
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
	m, err = k.Receive(ctx)
	if err != nil || !bytes.Equal(m.Body, big) {
		t.Fatalf("1 MiB message: %v", err)
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d := b.depth("q1"); d != 0 {
		t.Fatalf("depth %d after acking all", d)
	}
}

func TestAsyncWindowAndBatchedAcks(t *testing.T) {
	b := newTestBroker(t)
	c := dial(t, b.url())
	s := session(t, c)
	const n = 2000
	p := s.CreateProducer(Queue("win"), Window(64))
	ctx := testCtx(t)
	var mu sync.Mutex
	var errs []error
	confirmed := 0
	for i := 0; i < n; i++ {
		err := p.SendAsync(ctx, &Message{Body: []byte(fmt.Sprint(i))}, func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			confirmed++
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if confirmed != n || len(errs) != 0 {
		t.Fatalf("confirmed %d of %d, errors %v", confirmed, n, errs)
	}
	k := consumer(t, s, Queue("win"), Credit(100))
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		m, err := k.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("message %d has body %q: order broken", i, m.Body)
		}
		if err := k.AckAsync(m, func(err error) {
			if err != nil {
				t.Errorf("ack: %v", err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if d := b.depth("win"); d != 0 {
		t.Fatalf("depth %d after acking all", d)
	}
}

func TestDuplicateIDStoredOnce(t *testing.T) {
	b := newTestBroker(t)
	c := dial(t, b.url())
	s := session(t, c)
	p := s.CreateProducer(Queue("dup"))
	ctx := testCtx(t)
	for i := 0; i < 3; i++ {
		if err := p.Send(ctx, &Message{Body: []byte("once"), DuplicateID: "app-1"}); err != nil {
			t.Fatal(err)
		}
	}
	k := consumer(t, s, Queue("dup"))
	receiveN(t, k, 1)
	expectEmpty(t, k)
}

func TestTransactions(t *testing.T) {
	b := newTestBroker(t)
	c := dial(t, b.url())
	tx := session(t, c, Transacted())
	p := tx.CreateProducer(Queue("txq"))
	ctx := testCtx(t)
	send := func(body string) {
		if err := p.Send(ctx, &Message{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	send("r1")
	send("r2")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	send("c1")
	send("c2")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	plain := session(t, c)
	if err := plain.Commit(ctx); err == nil {
		t.Fatal("commit on a non-transacted session succeeded")
	}
	// acks in a transaction: rolled back acks are redelivered
	k := consumer(t, tx, Queue("txq"))
	m, err := k.Receive(ctx)
	if err != nil || string(m.Body) != "c1" {
		t.Fatalf("got %v %v", m, err)
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(ctx); err != nil {
		t.Fatal(err)
	}
	k2 := consumer(t, plain, Queue("txq"))
	got := receiveN(t, k2, 2)
	slices.Sort(got) // redeliveries may come in any order (RELIABILITY.md I5)
	if fmt.Sprint(got) != "[c1 c2]" {
		t.Fatalf("got %v, want [c1 c2]", got)
	}
	expectEmpty(t, k2)
}

func TestAuthFailed(t *testing.T) {
	b := newTestBroker(t)
	b.stop()
	b.opts.Users = map[string]string{"alice": "secret"}
	b.start("127.0.0.1:0")
	_, err := Dial(testCtx(t), b.url()+"?user=alice&password=wrong")
	var se *ServerError
	if !errors.As(err, &se) || se.Code != wire.CodeAuthFailed {
		t.Fatalf("got %v, want auth failed", err)
	}
	c := dial(t, b.url(), WithCredentials("alice", "secret"))
	session(t, c)
}

func TestClosedErrors(t *testing.T) {
	b := newTestBroker(t)
	c := dial(t, b.url())
	s := session(t, c)
	p := s.CreateProducer(Queue("cl"))
	c.Close()
	ctx := testCtx(t)
	if err := p.Send(ctx, &Message{Body: []byte("x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if _, err := c.CreateSession(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("session after close: %v", err)
	}
}

func TestNoReconnectFailsAndReports(t *testing.T) {
	b := newTestBroker(t)
	events := make(chan Event, 10)
	c := dial(t, b.url(), WithFailureListener(func(e Event) { events <- e }))
	s := session(t, c)
	k := consumer(t, s, Queue("nr"))
	b.stop()
	select {
	case e := <-events:
		if e.Kind != EventFailed {
			t.Fatalf("event %v, want failed", e.Kind)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no failure event")
	}
	if _, err := k.Receive(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive after loss: %v", err)
	}
}

func TestReconnectAfterRestart(t *testing.T) {
	b := newTestBroker(t)
	events := make(chan Event, 10)
	c := dial(t, b.url()+"?reconnectAttempts=-1&retryInterval=50", WithFailureListener(func(e Event) { events <- e }))
	s := session(t, c)
	p := s.CreateProducer(Queue("rs"))
	k := consumer(t, s, Queue("rs"), Credit(10))
	ctx := testCtx(t)
	if err := p.Send(ctx, &Message{Body: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	m, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.addr
	b.stop()
	b.start(addr)
	if e := <-events; e.Kind != EventFailingOver {
		t.Fatalf("event %v", e.Kind)
	}
	if e := <-events; e.Kind != EventFailedOver {
		t.Fatalf("event %v: %v", e.Kind, e.Err)
	}
	// the delivery came through the lost connection: its ack is refused
	if err := k.AckAsync(m, nil); !errors.Is(err, ErrStaleDelivery) {
		t.Fatalf("stale ack: %v", err)
	}
	if err := p.Send(ctx, &Message{Body: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	got := receiveN(t, k, 2)
	if fmt.Sprint(got) != "[before after]" {
		t.Fatalf("got %v", got)
	}
}

func TestCreateDeleteQueue(t *testing.T) {
	b := newTestBroker(t)
	c := dial(t, b.url())
	ctx := testCtx(t)
	if err := c.CreateQueue(ctx, QueueConfig{Name: "made", Routing: wire.RoutingAnycast, Durable: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.s.Queue("made"); !ok {
		t.Fatal("queue not created")
	}
	var se *ServerError
	if err := c.DeleteQueue(ctx, "made"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.s.Queue("made"); ok {
		t.Fatal("queue not deleted")
	}
	s := session(t, c)
	if _, err := s.CreateConsumer(ctx, Queue("absent"), NoAutoCreate()); !errors.As(err, &se) || se.Code != wire.CodeNotFound {
		t.Fatalf("consumer on a missing queue without auto-create: %v", err)
	}
}

// With a short TTL and check period, an idle connection stays up for
// more than two of them: the client's pings keep the broker's TTL from
// expiring and the broker's answers keep the client's check from firing.
// The TTL is 3 s, not less: pings go every TTL/2, and a process stalled
// for a few hundred ms on a loaded 2-core CI machine missed a 300 ms TTL
// (4 times in 60 runs with two test binaries sharing one core).
func TestHeartbeatsKeepIdleConnection(t *testing.T) {
	b := newTestBroker(t)
	events := make(chan Event, 4)
	c := dial(t, b.url()+"?connectionTTL=3000&clientFailureCheckPeriod=3000", WithFailureListener(func(e Event) { events <- e }))
	s := session(t, c)
	time.Sleep(7 * time.Second)
	select {
	case e := <-events:
		t.Fatalf("idle connection failed: %v %v", e.Kind, e.Err)
	default:
	}
	if err := s.CreateProducer(Queue("hb")).Send(testCtx(t), &Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

// Close stops every goroutine the client started (reader, writer, pinger,
// failover, listener).
func TestCloseStopsGoroutines(t *testing.T) {
	b := newTestBroker(t)
	c, err := Dial(testCtx(t), b.url()+"?reconnectAttempts=-1")
	if err != nil {
		t.Fatal(err)
	}
	s := session(t, c)
	k := consumer(t, s, Queue("gr"))
	k.Listen(func(*Message) {})
	if err := s.CreateProducer(Queue("gr")).Send(testCtx(t), &Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if n, _ := clientGoroutines(); n == 0 {
		t.Fatal("no client goroutines while connected: the count is broken")
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, dump := clientGoroutines()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d client goroutines after Close:\n%s", n, dump)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clientGoroutines counts goroutines running this package's code (other
// than tests).
func clientGoroutines() (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "tandem/client.(*") && !strings.Contains(g, "tandem/client.Test") {
			n++
			out = append(out, g)
		}
	}
	return n, strings.Join(out, "\n\n")
}

// TestSelectorAndTimeToLive: a consumer's selector goes to the broker
// (only matching messages arrive; a bad one fails CreateConsumer with
// CodeInvalid), and a producer's TimeToLive gives messages an expiration
// that comes back on delivery.
func TestSelectorAndTimeToLive(t *testing.T) {
	b := newTestBroker(t)
	c := dial(t, b.url())
	s := session(t, c)
	p := s.CreateProducer(Queue("paints"), TimeToLive(time.Hour))
	for i, color := range []string{"red", "blue", "red"} {
		m := &Message{Body: []byte(fmt.Sprintf("%s%d", color, i)), Properties: []Property{wire.StringProp("color", color)}}
		if err := p.Send(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	k := consumer(t, s, Queue("paints"), Selector("color = 'red'"))
	for _, want := range []string{"red0", "red2"} {
		m, err := k.Receive(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Body) != want {
			t.Fatalf("got %q, want %q", m.Body, want)
		}
		if d := time.Until(time.Unix(0, m.Expiration)); d < 50*time.Minute || d > time.Hour {
			t.Fatalf("%s: expiration in %v, want about an hour", m.Body, d)
		}
	}
	_, err := s.CreateConsumer(testCtx(t), Queue("paints"), Selector("color ="))
	var se *ServerError
	if !errors.As(err, &se) || se.Code != wire.CodeInvalid {
		t.Fatalf("bad selector: %v, want CodeInvalid", err)
	}
}
