package server

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/wire"
)

// consume attaches a consumer with unlimited credit to dest and returns it
// with its collector.
func consume(t *testing.T, ss *Session, dest Destination, opts ConsumerOptions) (*Consumer, *collector) {
	t.Helper()
	col := newCollector()
	opts.Credit = -1
	c, err := ss.CreateConsumer(context.Background(), dest, opts, col.handle)
	if err != nil {
		t.Fatal(err)
	}
	return c, col
}

// TestAutoDeleteNonDurableQueue: a non-durable auto-created queue is
// deleted with its address when its last consumer leaves (Artemis's
// auto-delete-queues and auto-delete-addresses, both true by default).
// Before, 70 000 of them stayed after their connection closed.
func TestAutoDeleteNonDurableQueue(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	c1, _ := consume(t, ss, queueDest("tmp"), ConsumerOptions{NonDurable: true})
	c2, _ := consume(t, ss, queueDest("tmp"), ConsumerOptions{NonDurable: true})
	if err := ss.CloseConsumer(c1.ID()); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.s.Queue("tmp"); !ok {
		t.Fatal("queue deleted while a consumer is attached")
	}
	if err := ss.CloseConsumer(c2.ID()); err != nil {
		t.Fatal(err)
	}
	if qi, ok := b.s.Queue("tmp"); ok {
		t.Fatalf("queue kept after its last consumer left: %+v", qi)
	}
	if b.s.lookupAddress("tmp") != nil {
		t.Fatal("auto-created address kept without queues")
	}
	// The name is usable again.
	mustSend(t, ss, queueDest("tmp"), msg("again", false))
	if qi, ok := b.s.Queue("tmp"); !ok || qi.Depth != 1 {
		t.Fatalf("queue after a new send: %+v %v", qi, ok)
	}
}

// TestAutoDeleteDurableQueue: a durable auto-created queue is deleted
// when its last consumer leaves and it is empty, also from the journal;
// one that still holds messages stays.
func TestAutoDeleteDurableQueue(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("drained"), msg("m1", true))
	mustSend(t, ss, queueDest("kept"), msg("k1", true))
	mustSend(t, ss, queueDest("kept"), msg("k2", true))

	c, col := consume(t, ss, queueDest("drained"), ConsumerOptions{})
	for _, d := range col.wait(t, 1) {
		if err := ackSync(t, ss, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.CloseConsumer(c.ID()); err != nil {
		t.Fatal(err)
	}
	// kept: one message acked, one delivered but not acked (goes back).
	c, col = consume(t, ss, queueDest("kept"), ConsumerOptions{})
	ds := col.wait(t, 2)
	if err := ackSync(t, ss, ds[0]); err != nil {
		t.Fatal(err)
	}
	if err := ss.CloseConsumer(c.ID()); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if qi, ok := b.s.Queue("drained"); ok {
			t.Fatalf("%s: empty auto-created queue kept: %+v", when, qi)
		}
		if qi, ok := b.s.Queue("kept"); !ok || qi.Depth != 1 {
			t.Fatalf("%s: queue with a message: %+v %v", when, qi, ok)
		}
	}
	check("before restart")
	b.restart()
	check("after restart")
}

// TestDurableSubscriptionNotAutoDeleted: a durable subscription is not an
// auto-created queue: it keeps collecting messages while its subscriber is
// away, even when it was empty when the subscriber left.
func TestDurableSubscriptionNotAutoDeleted(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	c, _ := consume(t, ss, topicDest("news"), ConsumerOptions{Subscription: "sub"})
	if err := ss.CloseConsumer(c.ID()); err != nil {
		t.Fatal(err)
	}
	mustSend(t, ss, topicDest("news"), msg("while away", true))
	if qi, ok := b.s.Queue("sub"); !ok || qi.Depth != 1 {
		t.Fatalf("durable subscription after its subscriber left: %+v %v", qi, ok)
	}
}

func ptr[T any](v T) *T { return &v }

// TestAutoCreateRefused: address settings decide whether a client's send
// or consumer creates a missing queue or address; refused, it gets
// ErrNoSuchQueue (CodeNotFound) naming the setting.
func TestAutoCreateRefused(t *testing.T) {
	b := newBroker(t, Options{AddressSettings: config.AddressSettings{
		{Match: "noqueue.#", AutoCreateQueues: ptr(false)},
		{Match: "noaddr.#", AutoCreateAddresses: ptr(false)},
	}})
	ss := b.s.NewSession(false)
	col := newCollector()
	for _, tc := range []struct {
		dest Destination
		want string
	}{
		{queueDest("noqueue.a"), "auto-create-queues is false"},
		{queueDest("noaddr.a"), "auto-create-addresses is false"},
		{topicDest("noaddr.t"), "auto-create-addresses is false"},
	} {
		if _, err := ss.CreateConsumer(context.Background(), tc.dest, ConsumerOptions{}, col.handle); !errors.Is(err, ErrNoSuchQueue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("consumer on %v: %v, want ErrNoSuchQueue (%s)", tc.dest, err, tc.want)
		}
		if err := sendSync(t, ss, tc.dest, msg("m", true)); !errors.Is(err, ErrNoSuchQueue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("send to %v: %v, want ErrNoSuchQueue (%s)", tc.dest, err, tc.want)
		}
	}
	if qs := b.s.Queues(); len(qs) != 0 {
		t.Fatalf("queues created: %v", qs)
	}
	// Management still creates them; then clients use them.
	if _, err := b.s.CreateQueue(context.Background(), QueueConfig{Name: "noqueue.a", Routing: Anycast, Durable: true}); err != nil {
		t.Fatal(err)
	}
	mustSend(t, ss, queueDest("noqueue.a"), msg("m", true))
	// Other addresses auto-create as before.
	mustSend(t, ss, queueDest("other"), msg("m", true))

	// Over the wire: CodeNotFound.
	a := listen(t, b, NetOptions{})
	c := dial(t, a, "", "")
	c.call(&wire.CreateSession{Session: 1})
	c.write(c.next(), &wire.CreateConsumer{Session: 1, Consumer: 1, Queue: "noqueue.b", Routing: wire.RoutingAnycast, AutoCreate: true, Durable: true})
	if cc := c.expect(wire.TypeConsumerCreated).(*wire.ConsumerCreated); cc.Code != wire.CodeNotFound || !strings.Contains(cc.Message, "auto-create-queues") {
		t.Fatalf("consumer created %+v, want CodeNotFound", cc)
	}
	c.write(c.next(), &wire.Send{Session: 1, Message: wire.Message{Address: "noaddr.x", Routing: wire.RoutingMulticast, Body: []byte("x")}})
	if r := c.expect(wire.TypeSendResult).(*wire.SendResult); r.Code != wire.CodeNotFound {
		t.Fatalf("send result %+v, want CodeNotFound", r)
	}
}

// TestMaxQueues: no more queues than MaxQueues, of any kind (auto-created,
// temporary subscriptions, management's), nor more addresses than
// MaxAddresses; refused with ErrLimit (CodeLimit). A deleted queue frees
// its place.
func TestMaxQueues(t *testing.T) {
	b := newBroker(t, Options{MaxQueues: 3, MaxAddresses: 4})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q1"), msg("m", true))
	if _, err := b.s.CreateQueue(context.Background(), QueueConfig{Name: "q2", Routing: Anycast, Durable: true}); err != nil {
		t.Fatal(err)
	}
	tc, _ := consume(t, ss, topicDest("t"), ConsumerOptions{})
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q4"), ConsumerOptions{}, col.handle); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "max-queues") {
		t.Fatalf("fourth queue by a consumer: %v, want ErrLimit naming max-queues", err)
	}
	if err := sendSync(t, ss, queueDest("q4"), msg("m", true)); !errors.Is(err, ErrLimit) {
		t.Fatalf("fourth queue by a send: %v, want ErrLimit", err)
	}
	if _, err := ss.CreateConsumer(context.Background(), topicDest("t"), ConsumerOptions{}, col.handle); !errors.Is(err, ErrLimit) {
		t.Fatalf("fourth queue as a subscription: %v, want ErrLimit", err)
	}
	if _, err := b.s.CreateQueue(context.Background(), QueueConfig{Name: "q4", Routing: Anycast}); !errors.Is(err, ErrLimit) {
		t.Fatalf("fourth queue by management: %v, want ErrLimit", err)
	}
	// Addresses: q1, q2, t, then one more by a multicast send; the next is refused.
	mustSend(t, ss, topicDest("t2"), msg("m", false))
	if err := sendSync(t, ss, topicDest("t3"), msg("m", false)); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "max-addresses") {
		t.Fatalf("fifth address: %v, want ErrLimit naming max-addresses", err)
	}
	// The temporary subscription goes with its consumer, and its place is free again.
	if err := ss.CloseConsumer(tc.ID()); err != nil {
		t.Fatal(err)
	}
	mustSend(t, ss, queueDest("q4"), msg("m", true))

	// Over the wire: CodeLimit.
	a := listen(t, b, NetOptions{})
	c := dial(t, a, "", "")
	c.call(&wire.CreateSession{Session: 1})
	c.write(c.next(), &wire.CreateConsumer{Session: 1, Consumer: 1, Queue: "q5", Routing: wire.RoutingAnycast, AutoCreate: true, Durable: true})
	if cc := c.expect(wire.TypeConsumerCreated).(*wire.ConsumerCreated); cc.Code != wire.CodeLimit || !strings.Contains(cc.Message, "max-queues") {
		t.Fatalf("consumer created %+v, want CodeLimit", cc)
	}
	if code := c.call(&wire.CreateQueue{Address: "q5", Queue: "q5", Routing: wire.RoutingAnycast, Durable: true}); code != wire.CodeLimit {
		t.Fatalf("create queue: %v, want CodeLimit", code)
	}
}

// TestAutoDeleteSettings: auto-delete-queues false keeps a queue; a delay
// defers the deletion to the scan after it; message count -1 deletes a
// queue with its messages (acked in the journal, so they are gone after
// a restart too).
func TestAutoDeleteSettings(t *testing.T) {
	b := newBroker(t, Options{AddressSettings: config.AddressSettings{
		{Match: "keep.#", AutoDeleteQueues: ptr(false)},
		{Match: "slow.#", AutoDeleteQueuesDelay: ptr(time.Hour), AutoDeleteAddressesDelay: ptr(2 * time.Hour)},
		{Match: "any.#", AutoDeleteQueuesMessageCount: ptr(int64(-1))},
	}})
	ss := b.s.NewSession(false)
	idle := func(name string) {
		t.Helper()
		c, _ := consume(t, ss, queueDest(name), ConsumerOptions{})
		if err := ss.CloseConsumer(c.ID()); err != nil {
			t.Fatal(err)
		}
	}
	idle("keep.a")
	idle("slow.a")
	mustSend(t, ss, queueDest("any.a"), msg("m1", true))
	mustSend(t, ss, queueDest("any.a"), msg("m2", false))
	idle("any.a")
	exists := func(name string) bool { _, ok := b.s.Queue(name); return ok }
	if !exists("keep.a") || !exists("slow.a") || exists("any.a") {
		t.Fatalf("after the consumers left: keep.a %v slow.a %v any.a %v; want true true false", exists("keep.a"), exists("slow.a"), exists("any.a"))
	}
	// any.a's durable message was acked in the journal with the queue.
	res, err := b.ms.Open().Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 0 {
		t.Fatalf("messages journal holds %d records after any.a was deleted with its messages", len(res.Records))
	}
	b.s.reap(time.Now().Add(59 * time.Minute))
	if !exists("slow.a") {
		t.Fatal("slow.a deleted before its delay")
	}
	b.s.reap(time.Now().Add(61 * time.Minute))
	if exists("slow.a") || !exists("keep.a") {
		t.Fatalf("after the delay: slow.a %v keep.a %v; want false true", exists("slow.a"), exists("keep.a"))
	}
	if b.s.lookupAddress("slow.a") == nil {
		t.Fatal("slow.a's address deleted before its own delay")
	}
	b.s.reap(time.Now().Add(4 * time.Hour))
	if b.s.lookupAddress("slow.a") != nil {
		t.Fatal("slow.a's address kept after its delay")
	}
	b.restart()
	if exists("any.a") || exists("slow.a") || !exists("keep.a") {
		t.Fatalf("after restart: any.a %v slow.a %v keep.a %v", exists("any.a"), exists("slow.a"), exists("keep.a"))
	}
	if st := b.s.Stats(); st.MessagesIn != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAutoDeleteAfterRestart: auto-created queues and addresses a client
// left behind (killed: nothing was closed) go after a restart, at the
// first scan; an address holding duplicate IDs stays.
func TestAutoDeleteAfterRestart(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	consume(t, ss, queueDest("left"), ConsumerOptions{}) // never closed
	mustSend(t, ss, topicDest("nobody"), msg("m", true))
	m := msg("d", true)
	m.DuplicateID = "dup-1"
	mustSend(t, ss, topicDest("dups"), m)
	b.restart()
	if _, ok := b.s.Queue("left"); !ok {
		t.Fatal("queue deleted at load, before any scan")
	}
	b.s.reap(time.Now())
	if _, ok := b.s.Queue("left"); ok {
		t.Fatal("auto-created queue left behind kept after a scan")
	}
	if b.s.lookupAddress("left") != nil || b.s.lookupAddress("nobody") != nil {
		t.Fatal("auto-created addresses without queues kept after a scan")
	}
	if b.s.lookupAddress("dups") == nil {
		t.Fatal("address with duplicate IDs deleted")
	}
	m = msg("d", true)
	m.DuplicateID = "dup-1"
	mustSend(t, ss, topicDest("dups"), m)
	if m.ID != 0 {
		t.Fatal("resend not detected as a duplicate")
	}
}

// TestMulticastAddressWaitsForScan: a send to a topic nobody listens to
// creates its address once, not once per send: it goes at a scan.
func TestMulticastAddressWaitsForScan(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	mustSend(t, ss, topicDest("quiet"), msg("m1", false))
	a := b.s.lookupAddress("quiet")
	mustSend(t, ss, topicDest("quiet"), msg("m2", false))
	if a == nil || b.s.lookupAddress("quiet") != a {
		t.Fatal("address not kept between sends")
	}
	b.s.reap(time.Now())
	if b.s.lookupAddress("quiet") != nil {
		t.Fatal("address without queues kept after a scan")
	}
	mustSend(t, ss, topicDest("quiet"), msg("m3", false))
}

// TestAutoDeleteRacesSends: consumers come and go on an auto-created
// queue (each departure of the last one deletes it when empty) while
// producers send to it, in and out of transactions. Every confirmed
// message is consumed: none went to a queue deleted under it.
func TestAutoDeleteRacesSends(t *testing.T) {
	for _, durable := range []bool{true, false} {
		t.Run(fmt.Sprint("durable=", durable), func(t *testing.T) {
			b := newBroker(t, Options{})
			const producers, per = 3, 300
			var mu sync.Mutex
			confirmed := map[string]bool{}
			acked := map[string]bool{}
			var wg sync.WaitGroup
			for p := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ss := b.s.NewSession(p == 0) // producer 0 commits each send
					for i := range per {
						body := fmt.Sprintf("p%d-%d", p, i)
						err := sendSync(t, ss, queueDest("race"), msg(body, durable))
						if err == nil && p == 0 {
							ch := make(chan error, 1)
							ss.Commit(context.Background(), func(err error) { ch <- err })
							err = <-ch
						}
						if err != nil {
							t.Errorf("send %s: %v", body, err)
							continue
						}
						mu.Lock()
						confirmed[body] = true
						mu.Unlock()
					}
				}()
			}
			stop := make(chan struct{})
			churned := make(chan struct{})
			ss := b.s.NewSession(false)
			handler := func(d Delivery) {
				ss.Ack(d.ConsumerID, d.Message.ID, func(err error) {
					if err == nil {
						mu.Lock()
						acked[string(d.Message.Body)] = true
						mu.Unlock()
					}
				})
			}
			go func() { // consumers come and go
				defer close(churned)
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := ss.CreateConsumer(context.Background(), queueDest("race"), ConsumerOptions{Credit: -1, NonDurable: !durable}, handler)
					if err != nil {
						t.Errorf("consumer: %v", err)
						return
					}
					runtime.Gosched()
					if err := ss.CloseConsumer(c.ID()); err != nil {
						t.Errorf("close consumer: %v", err)
						return
					}
				}
			}()
			wg.Wait()
			close(stop)
			<-churned
			// A last consumer takes what is left.
			if _, err := ss.CreateConsumer(context.Background(), queueDest("race"), ConsumerOptions{Credit: -1, NonDurable: !durable}, handler); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				mu.Lock()
				var missing []string
				for body := range confirmed {
					if !acked[body] {
						missing = append(missing, body)
					}
				}
				n := len(confirmed)
				mu.Unlock()
				if len(missing) == 0 {
					if n != producers*per {
						t.Fatalf("%d of %d sends confirmed", n, producers*per)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d confirmed messages never consumed (lost), e.g. %v", len(missing), missing[:min(5, len(missing))])
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
