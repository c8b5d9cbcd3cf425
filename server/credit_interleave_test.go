package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// A consumer's credit window is topped up from inside its delivery
// handler (flow.delivered, on whichever goroutine delivers: a send's
// completion through Queue.deliverInline, or a delivery goroutine) and
// from the connection's writer when its output drains (conn.writable).
// Both call Consumer.Credit. With goroutine-free queues that must neither
// deliver recursively (Credit only wakes the queue; the delivery running
// picks the credit up) nor deadlock, and the window must hold. Two
// producers send while the output is blocked and unblocked again and
// again; every message arrives once, in each producer's order, the handler
// is never re-entered, and the consumer never holds more credit than its
// window.
func TestCreditWindowInterleavesWithInlineDelivery(t *testing.T) {
	b := newBroker(t, Options{})
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	c := &conn{out: newOutq(p1, outqLimits{}, func(error) {})} // never written: only its blocked flag counts
	fl := newFlow(c)

	const producers, perProducer = 2, 3000
	const total = producers * perProducer
	var (
		depth     atomic.Int32 // handlers running: deliveries to one consumer never overlap
		reentered atomic.Bool
		overdrawn atomic.Int64 // credit granted beyond the window, as seen by the handler
		mu        sync.Mutex
		next      [producers]uint32 // the next sequence number expected of each producer
		got       int
		disorder  string
		allIn     = make(chan struct{})
	)
	ss := b.s.NewSession(false)
	cons, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{}, func(d Delivery) {
		if depth.Add(1) != 1 {
			reentered.Store(true)
		}
		defer depth.Add(-1)
		body := d.Message.Body
		p, seq := int(body[0]), binary.BigEndian.Uint32(body[1:])
		mu.Lock()
		if seq != next[p] && disorder == "" {
			disorder = fmt.Sprintf("producer %d: message %d delivered after %d", p, seq, next[p]-1)
		}
		next[p] = seq + 1
		got++
		if got == total {
			close(allIn)
		}
		mu.Unlock()
		fl.delivered(len(body) + 64) // as the connection's handler does, with its frame size
		fl.mu.Lock()
		if over := fl.granted - fl.window(); over > 0 {
			overdrawn.Store(over)
		}
		fl.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	fl.cons = cons

	// Block the output before anything is sent: the first top-up then
	// certainly meets a blocked output.
	setBlocked := func(v bool) {
		c.out.mu.Lock()
		c.out.blocked.Store(v)
		c.out.mu.Unlock()
	}
	setBlocked(true)
	fl.credit(1<<32 - 1) // the client's grant: the server consumer gets a window of it

	var sent sync.WaitGroup
	sendErrs := make(chan error, producers)
	for p := range producers {
		sent.Add(1)
		go func() {
			defer sent.Done()
			pss := b.s.NewSession(false)
			for i := range perProducer {
				body := make([]byte, 5)
				body[0] = byte(p)
				binary.BigEndian.PutUint32(body[1:], uint32(i))
				ch := make(chan error, 1)
				pss.Send(context.Background(), queueDest("q"), &Message{Body: body}, func(err error) { ch <- err })
				if err := <-ch; err != nil {
					sendErrs <- err
					return
				}
			}
		}()
	}
	producing := make(chan struct{})
	go func() { sent.Wait(); close(producing) }()

	// The writer's part: whenever a top-up met the blocked output (the
	// flow is starved), drain the output as the writer does (clear
	// blocked, then writable on this goroutine), and block it again. It
	// spins (yielding) rather than polls, to cycle as often as it can.
	cycles := 0
	deadline := time.Now().Add(60 * time.Second)
	for done := false; !done; {
		for {
			c.starveMu.Lock()
			n := len(c.starved)
			c.starveMu.Unlock()
			select {
			case <-producing:
				done = true
			default:
			}
			if n > 0 || done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("after 60s: no top-up met the blocked output while messages were being sent")
			}
			runtime.Gosched()
		}
		setBlocked(false)
		c.writable()
		if !done {
			cycles++
			setBlocked(true)
		}
	}
	select {
	case <-allIn:
	case <-time.After(30 * time.Second):
		mu.Lock()
		t.Fatalf("%d of %d messages delivered after 30s (credit lost between the handler and the writer?)", got, total)
	}
	close(sendErrs)
	for err := range sendErrs {
		t.Fatalf("send: %v", err)
	}
	if cycles == 0 {
		t.Fatal("the output was never found blocked by a top-up: the interleaving was not exercised")
	}
	if reentered.Load() {
		t.Fatal("the delivery handler was re-entered: Credit from inside it delivered recursively (or deliveries overlapped)")
	}
	if disorder != "" {
		t.Fatal(disorder)
	}
	if o := overdrawn.Load(); o > 0 {
		t.Fatalf("the consumer held %d messages of credit beyond its window", o)
	}
	q := cons.q
	q.mu.Lock()
	credit := cons.credit
	q.mu.Unlock()
	if w := int64(maxWindow); credit > w {
		t.Fatalf("server-side credit %d, more than the largest window %d", credit, w)
	}
	// The delivery that handed over the last message clears dispatching
	// once it rechecked the queue.
	waitFor(t, "the queue kept dispatching with nothing to deliver", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return !q.dispatching
	})
	t.Logf("%d block/unblock cycles", cycles)
}

// The same interleaving through real connections: a consumer granting
// 2^32-1 behind tiny water marks reads in bursts, stopping until its
// output is blocked each time, while a producer connection sends (each
// send's completion delivers inline). Every message arrives once, in
// order.
func TestCreditWindowBlockedOutputWithProducerConnection(t *testing.T) {
	b := newBroker(t, Options{})
	a := listenSmall(t, b, NetOptions{HighWaterMark: 2048, LowWaterMark: 512, WriteTimeout: -1})
	const n = 2000
	d := net.Dialer{Control: smallReceiveBuffer}
	cnc, err := d.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cnc.Close()
	writeFrames(t, cnc, &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: "consumer"},
		&wire.CreateSession{Session: 1},
		&wire.CreateConsumer{Session: 1, Consumer: 1, Queue: "q", Routing: wire.RoutingAnycast, AutoCreate: true, InitialCredit: 1<<32 - 1})
	cc := onlyConn(t, a)
	waitFor(t, "the consumer was not created", func() bool { return len(b.s.Queues()) == 1 && b.s.Queues()[0].Consumers == 1 })

	pnc, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer pnc.Close()
	sendErr := make(chan error, 1)
	go func() {
		// Sends with a correlation ID, written in batches without waiting
		// for their answers (a reader goroutine drains them).
		go discardReads(pnc)
		frames := []wire.Frame{&wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: "producer"}, &wire.CreateSession{Session: 1}}
		var buf []byte
		for i, f := range frames {
			buf, _ = wire.AppendFrame(buf, uint64(i+1), f)
		}
		for i := range n {
			body := make([]byte, 200)
			binary.BigEndian.PutUint32(body, uint32(i))
			buf, _ = wire.AppendFrame(buf, uint64(100+i), &wire.Send{Session: 1,
				Message: wire.Message{Address: "q", Routing: wire.RoutingAnycast, Body: body}})
			if len(buf) > 16<<10 || i == n-1 {
				if _, err := pnc.Write(buf); err != nil {
					sendErr <- err
					return
				}
				buf = buf[:0]
			}
		}
		sendErr <- nil
	}()

	dec := wire.NewDecoder(cnc)
	var dl wire.Deliver
	got, pauses, pausedAt := 0, 0, 0
	for got < n {
		if got > 0 && got%150 == 0 && pausedAt != got {
			pausedAt = got
			// Stop reading until the broker's output for us is blocked
			// (or everything was handed to the connection already).
			waitFor(t, "the consumer's output never blocked", func() bool {
				return cc.out.blocked.Load() || b.s.Stats().Deliveries >= n
			})
			pauses++
		}
		cnc.SetReadDeadline(time.Now().Add(30 * time.Second))
		h, err := dec.Next()
		if err != nil {
			t.Fatalf("after %d deliveries: %v", got, err)
		}
		if h.Type != wire.TypeDeliver {
			continue
		}
		if err := dec.Unmarshal(&dl); err != nil {
			t.Fatal(err)
		}
		if seq := binary.BigEndian.Uint32(dl.Message.Body); seq != uint32(got) {
			t.Fatalf("delivery %d carries message %d", got, seq)
		}
		got++
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages, %d pauses, %d read pauses", n, pauses, a.Stats().ReadPauses)
}

// discardReads reads nc until it fails.
func discardReads(nc net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := nc.Read(buf); err != nil {
			return
		}
	}
}
