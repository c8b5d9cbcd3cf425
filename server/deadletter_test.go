package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/wire"
)

// consumeOnce attaches a consumer to dest with credit 1, waits for one
// delivery and closes the consumer without acking: one failed delivery.
func consumeOnce(t *testing.T, ss *Session, dest Destination) Delivery {
	t.Helper()
	col := newCollector()
	c, err := ss.CreateConsumer(context.Background(), dest, ConsumerOptions{Credit: 1}, col.handle)
	if err != nil {
		t.Fatal(err)
	}
	d := col.wait(t, 1)[0]
	if err := ss.CloseConsumer(c.ID()); err != nil {
		t.Fatal(err)
	}
	return d
}

func prop(m *Message, key string) (Property, bool) {
	for _, p := range m.Properties {
		if p.Key == key {
			return p, true
		}
	}
	return Property{}, false
}

// TestDeadLetterAfterMaxDeliveryAttempts: a message delivered
// max-delivery-attempts times without an ack moves to the dead-letter
// address (a copy with _AMQ_ORIG_ADDRESS and _AMQ_ORIG_QUEUE, and the
// original acked, in one append): after a restart it is there once and
// not in its queue.
func TestDeadLetterAfterMaxDeliveryAttempts(t *testing.T) {
	b := newBroker(t, Options{
		AddressSettings: config.AddressSettings{{Match: "#", DeadLetterAddress: ptr("DLQ"), MaxDeliveryAttempts: ptr(3)}},
		Addresses:       []config.AddressDef{{Name: "DLQ", Anycast: true, Queues: []config.QueueDef{{Name: "DLQ", Routing: config.RoutingAnycast, Durable: true}}}},
	})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("orders"), msg("poison", true))
	for i := 1; i <= 3; i++ {
		if d := consumeOnce(t, ss, queueDest("orders")); d.DeliveryCount != uint32(i) || string(d.Message.Body) != "poison" {
			t.Fatalf("delivery %d: count %d body %q", i, d.DeliveryCount, d.Message.Body)
		}
	}
	waitDepth(t, b.s, "DLQ", 1)
	if qi, _ := b.s.Queue("orders"); qi.Depth != 0 {
		t.Fatalf("orders depth %d after dead-lettering, want 0", qi.Depth)
	}
	if st := b.s.Stats(); st.DeadLettered != 1 {
		t.Fatalf("dead_lettered %d", st.DeadLettered)
	}
	ss.Close()
	b.restart()
	ss = b.s.NewSession(false)
	if qi, _ := b.s.Queue("orders"); qi.Depth != 0 {
		t.Fatalf("orders depth %d after restart, want 0", qi.Depth)
	}
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("DLQ"), ConsumerOptions{Credit: -1}, col.handle); err != nil {
		t.Fatal(err)
	}
	ds := col.settle()
	if len(ds) != 1 || string(ds[0].Message.Body) != "poison" || ds[0].DeliveryCount != 1 {
		t.Fatalf("DLQ after restart: %v", bodies(ds))
	}
	m := ds[0].Message
	if p, ok := prop(m, PropOrigAddress); !ok || p.Str != "orders" {
		t.Errorf("%s = %+v", PropOrigAddress, p)
	}
	if p, ok := prop(m, PropOrigQueue); !ok || p.Str != "orders" {
		t.Errorf("%s = %+v", PropOrigQueue, p)
	}
	if !m.Durable || m.Address != "DLQ" {
		t.Errorf("copy: durable %v address %q", m.Durable, m.Address)
	}
}

func waitDepth(t *testing.T, s *Server, queue string, depth int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		qi, ok := s.Queue(queue)
		if ok && qi.Depth == depth {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %q depth %d (exists %v), want %d", queue, qi.Depth, ok, depth)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeadLetterWithoutAddressDrops: without a dead-letter address the
// message is dropped (acked) at max-delivery-attempts, and stays dropped
// after a restart.
func TestDeadLetterWithoutAddressDrops(t *testing.T) {
	b := newBroker(t, Options{AddressSettings: config.AddressSettings{{Match: "q", MaxDeliveryAttempts: ptr(2)}}})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("m", true))
	mustSend(t, ss, queueDest("q"), msg("keep", true))
	consumeOnce(t, ss, queueDest("q"))
	consumeOnce(t, ss, queueDest("q"))
	waitDepth(t, b.s, "q", 1)
	ss.Close()
	b.restart()
	ss = b.s.NewSession(false)
	col := newCollector()
	ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle)
	if got := bodies(col.settle()); len(got) != 1 || got[0] != "keep" {
		t.Fatalf("after restart: %v, want [keep]", got)
	}
}

// TestMaxDeliveryAttemptsUnlimited: -1 redelivers for ever.
func TestMaxDeliveryAttemptsUnlimited(t *testing.T) {
	b := newBroker(t, Options{AddressSettings: config.AddressSettings{{Match: "#", MaxDeliveryAttempts: ptr(-1)}}})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("m", true))
	for i := 1; i <= 12; i++ {
		if d := consumeOnce(t, ss, queueDest("q")); d.DeliveryCount != uint32(i) {
			t.Fatalf("delivery %d: count %d", i, d.DeliveryCount)
		}
	}
}

// TestExpiry: a message whose expiration passed is not delivered: it goes
// to the expiry address with _AMQ_ACTUAL_EXPIRY and no expiration; the
// scan finds the expired messages nobody dispatches.
func TestExpiry(t *testing.T) {
	b := newBroker(t, Options{
		AddressSettings:         config.AddressSettings{{Match: "#", ExpiryAddress: ptr("ExpiryQueue")}},
		Addresses:               []config.AddressDef{{Name: "ExpiryQueue", Anycast: true, Queues: []config.QueueDef{{Name: "ExpiryQueue", Routing: config.RoutingAnycast, Durable: true}}}},
		MessageExpiryScanPeriod: -1,
	})
	ss := b.s.NewSession(false)
	past := time.Now().Add(-time.Hour).UnixNano()
	future := time.Now().Add(time.Hour).UnixNano()
	for _, m := range []*Message{
		{Durable: true, Body: []byte("old"), Expiration: past},
		{Durable: true, Body: []byte("fresh"), Expiration: future},
		{Durable: true, Body: []byte("never")},
	} {
		mustSend(t, ss, queueDest("q"), m)
	}
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle); err != nil {
		t.Fatal(err)
	}
	if got := bodies(col.wait(t, 2)); got[0] != "fresh" || got[1] != "never" {
		t.Fatalf("delivered %v, want [fresh never]", got)
	}
	waitDepth(t, b.s, "ExpiryQueue", 1)
	// A message nobody consumes expires at the scan.
	mustSend(t, ss, queueDest("idle"), &Message{Durable: true, Body: []byte("idle"), Expiration: future})
	b.s.scanExpired(time.Now())
	waitDepth(t, b.s, "idle", 1)
	b.s.scanExpired(time.Now().Add(2 * time.Hour))
	waitDepth(t, b.s, "idle", 0)
	waitDepth(t, b.s, "ExpiryQueue", 2)
	if st := b.s.Stats(); st.Expired != 2 {
		t.Fatalf("expired %d, want 2", st.Expired)
	}
	ss.Close()
	b.restart()
	ss = b.s.NewSession(false)
	ecol := newCollector()
	ss.CreateConsumer(context.Background(), queueDest("ExpiryQueue"), ConsumerOptions{Credit: -1}, ecol.handle)
	ds := ecol.wait(t, 2)
	if string(ds[0].Message.Body) != "old" || string(ds[1].Message.Body) != "idle" {
		t.Fatalf("expiry queue %v", bodies(ds))
	}
	for _, d := range ds {
		if d.Message.Expiration != 0 {
			t.Errorf("%s: expiration %d kept", d.Message.Body, d.Message.Expiration)
		}
		if p, ok := prop(d.Message, PropActualExpiry); !ok || p.Kind != wire.KindInt64 || p.Int <= 0 {
			t.Errorf("%s: %s = %+v", d.Message.Body, PropActualExpiry, p)
		}
	}
}

// TestExpiryDelay: a message sent without an expiration gets the
// address's expiry-delay; one with an expiration keeps it. The
// expiration survives a restart (message record format 2).
func TestExpiryDelay(t *testing.T) {
	b := newBroker(t, Options{AddressSettings: config.AddressSettings{{Match: "short", ExpiryDelay: ptr(time.Hour)}}})
	ss := b.s.NewSession(false)
	before := time.Now()
	mustSend(t, ss, queueDest("short"), msg("a", true))
	own := time.Now().Add(5 * time.Minute).UnixNano()
	mustSend(t, ss, queueDest("short"), &Message{Durable: true, Body: []byte("b"), Expiration: own})
	mustSend(t, ss, queueDest("other"), msg("c", true))
	ss.Close()
	b.restart()
	ss = b.s.NewSession(false)
	col := newCollector()
	ss.CreateConsumer(context.Background(), queueDest("short"), ConsumerOptions{Credit: -1}, col.handle)
	ds := col.wait(t, 2)
	if e := ds[0].Message.Expiration; e < before.Add(time.Hour).UnixNano() || e > time.Now().Add(time.Hour).UnixNano() {
		t.Errorf("a: expiration %v, want about an hour after the send", time.Unix(0, e))
	}
	if ds[1].Message.Expiration != own {
		t.Errorf("b: expiration %d, want its own %d", ds[1].Message.Expiration, own)
	}
	ocol := newCollector()
	ss.CreateConsumer(context.Background(), queueDest("other"), ConsumerOptions{Credit: -1}, ocol.handle)
	if e := ocol.wait(t, 1)[0].Message.Expiration; e != 0 {
		t.Errorf("c: expiration %d, want none", e)
	}
}

// TestRedeliveryDelay: a cancelled message waits redelivery-delay before
// its next delivery; messages behind it are delivered meanwhile; once due
// it is delivered (the queue's timer wakes it).
func TestRedeliveryDelay(t *testing.T) {
	b := newBroker(t, Options{AddressSettings: config.AddressSettings{{Match: "#", RedeliveryDelay: ptr(time.Hour)}}})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("A", true))
	mustSend(t, ss, queueDest("q"), msg("B", true))
	if d := consumeOnce(t, ss, queueDest("q")); string(d.Message.Body) != "A" {
		t.Fatalf("first delivery %q", d.Message.Body)
	}
	col := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: 5}, col.handle); err != nil {
		t.Fatal(err)
	}
	if got := bodies(col.settle()); len(got) != 1 || got[0] != "B" {
		t.Fatalf("while A waits: %v, want [B]", got)
	}
	q := b.s.queues["q"]
	q.mu.Lock()
	if q.msgs.delayed != 1 || q.delayTimer == nil {
		q.mu.Unlock()
		t.Fatalf("delayed %d, timer %v", q.msgs.delayed, q.delayTimer != nil)
	}
	wantAt := time.Now().Add(59 * time.Minute).UnixNano()
	if r := q.msgs.at(0); r.notBefore < wantAt {
		q.mu.Unlock()
		t.Fatalf("A due at %v, want about an hour from now", time.Unix(0, r.notBefore))
	}
	// Make it due now (a change in place keeps the deque's count) and fire
	// the timer's work.
	q.msgs.at(0).notBefore = 1
	q.mu.Unlock()
	q.wake()
	ds := col.wait(t, 2)
	if string(ds[1].Message.Body) != "A" || ds[1].DeliveryCount != 2 {
		t.Fatalf("after the delay: %q count %d", ds[1].Message.Body, ds[1].DeliveryCount)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.msgs.delayed != 0 {
		t.Fatalf("delayed count %d after delivery", q.msgs.delayed)
	}
}

// TestQueueFilter: a predefined queue with a filter gets only the
// messages it matches (others of the address still get every one); the
// filter is journaled with the queue and holds after a restart.
func TestQueueFilter(t *testing.T) {
	b := newBroker(t, Options{Addresses: []config.AddressDef{{Name: "orders", Multicast: true, Queues: []config.QueueDef{
		{Name: "orders.eu", Routing: config.RoutingMulticast, Durable: true, Filter: "region = 'eu' AND amount > 10"},
		{Name: "orders.all", Routing: config.RoutingMulticast, Durable: true},
	}}}})
	send := func(ss *Session, region string, amount int64) {
		mustSend(t, ss, topicDest("orders"), &Message{Durable: true, Body: []byte(region),
			Properties: []Property{wire.StringProp("region", region), wire.Int64Prop("amount", amount)}})
	}
	ss := b.s.NewSession(false)
	send(ss, "eu", 50)
	send(ss, "us", 50)
	send(ss, "eu", 5)
	waitDepth(t, b.s, "orders.eu", 1)
	waitDepth(t, b.s, "orders.all", 3)
	ss.Close()
	b.opts.Addresses = nil // the journal keeps the queue and its filter
	b.restart()
	ss = b.s.NewSession(false)
	send(ss, "eu", 20)
	send(ss, "asia", 20)
	waitDepth(t, b.s, "orders.eu", 2)
	waitDepth(t, b.s, "orders.all", 5)
}

// TestConsumerSelector: a consumer with a selector receives the messages
// it matches, in order, past those it does not; another consumer takes
// the rest.
func TestConsumerSelector(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	for i, c := range []string{"red", "blue", "red", "blue", "green", "red"} {
		mustSend(t, ss, queueDest("q"), &Message{Durable: true, Body: []byte(c + string(rune('0'+i))),
			Properties: []Property{wire.StringProp("color", c)}})
	}
	red := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1, Selector: "color = 'red'"}, red.handle); err != nil {
		t.Fatal(err)
	}
	if got := bodies(red.wait(t, 3)); got[0] != "red0" || got[1] != "red2" || got[2] != "red5" {
		t.Fatalf("red consumer %v", got)
	}
	waitDepth(t, b.s, "q", 6) // delivered, not acked
	other := newCollector()
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1, Selector: "color IN ('blue', 'green')"}, other.handle); err != nil {
		t.Fatal(err)
	}
	if got := bodies(other.wait(t, 3)); got[0] != "blue1" || got[1] != "blue3" || got[2] != "green4" {
		t.Fatalf("other consumer %v", got)
	}
	if got := red.settle(); len(got) != 3 {
		t.Fatalf("red consumer got %d", len(got))
	}
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Selector: "color = "}, other.handle); !errors.Is(err, ErrBadSelector) {
		t.Fatalf("bad selector: %v", err)
	}
}

// TestDefaultRoutingTypes: a destination without a routing type routes as
// the address does when it exists, else by the address settings' default
// routing types, else anycast.
func TestDefaultRoutingTypes(t *testing.T) {
	b := newBroker(t, Options{AddressSettings: config.AddressSettings{
		{Match: "news.#", DefaultAddressRoutingType: ptr(config.RoutingMulticast), DefaultQueueRoutingType: ptr(config.RoutingAnycast)},
		{Match: "feeds.#", DefaultQueueRoutingType: ptr(config.RoutingMulticast)},
	}})
	for _, tc := range []struct {
		addr          string
		send, consume Routing
	}{{"news.a", Multicast, Anycast}, {"feeds.a", Anycast, Multicast}, {"other", Anycast, Anycast}} {
		if got := b.s.defaultRouting(tc.addr, wire.RoutingDefault); got != tc.send {
			t.Errorf("%s: send routes %v, want %v", tc.addr, got, tc.send)
		}
		if got := b.s.defaultQueueRouting(tc.addr, wire.RoutingDefault); got != tc.consume {
			t.Errorf("%s: consumer routes %v, want %v", tc.addr, got, tc.consume)
		}
	}
	// An existing address decides.
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("news.b"), msg("x", true))
	if got := b.s.DefaultRouting("news.b"); got != Anycast {
		t.Errorf("existing anycast address: %v", got)
	}
}

// TestPredefinedQueueKept: a configured queue that exists with another
// definition is kept (and so are its messages).
func TestPredefinedQueueKept(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("x", true))
	ss.Close()
	b.opts.Addresses = []config.AddressDef{{Name: "q", Anycast: true, Queues: []config.QueueDef{{Name: "q", Routing: config.RoutingAnycast, Durable: true, Filter: "a = 1"}}}}
	b.restart()
	waitDepth(t, b.s, "q", 1)
	if b.s.queues["q"].filter != nil {
		t.Fatal("the existing queue got the configured filter")
	}
}
