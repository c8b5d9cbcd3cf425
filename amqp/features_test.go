package amqp

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

func openSession(t *testing.T, c *goamqp.Conn) *goamqp.Session {
	t.Helper()
	s, err := c.NewSession(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sender(t *testing.T, s *goamqp.Session, addr string, opts *goamqp.SenderOptions) *goamqp.Sender {
	t.Helper()
	snd, err := s.NewSender(testCtx(t), addr, opts)
	if err != nil {
		t.Fatalf("sender %q: %v", addr, err)
	}
	return snd
}

func receiver(t *testing.T, s *goamqp.Session, addr string, opts *goamqp.ReceiverOptions) *goamqp.Receiver {
	t.Helper()
	r, err := s.NewReceiver(testCtx(t), addr, opts)
	if err != nil {
		t.Fatalf("receiver %q: %v", addr, err)
	}
	return r
}

func durable(body string) *goamqp.Message {
	m := goamqp.NewMessage([]byte(body))
	m.Header = &goamqp.MessageHeader{Durable: true}
	return m
}

func send(t *testing.T, snd *goamqp.Sender, m *goamqp.Message) {
	t.Helper()
	if err := snd.Send(testCtx(t), m, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func recv(t *testing.T, r *goamqp.Receiver) *goamqp.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return m
}

// expectNothing checks that r has no message for a moment (after which a
// message sent before would have arrived on this in-process broker).
func expectNothing(t *testing.T, r *goamqp.Receiver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if m, err := r.Receive(ctx, nil); err == nil {
		t.Fatalf("unexpected message %q", m.GetData())
	}
}

// TestTopicAndCapabilities: topic:// and the "topic" capability give every
// subscriber a copy; queue:// and "queue" give one consumer each message.
func TestTopicAndCapabilities(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	s := openSession(t, b.dial(t, nil))
	r1 := receiver(t, s, "topic://news", &goamqp.ReceiverOptions{Credit: 10})
	r2 := receiver(t, s, "news", &goamqp.ReceiverOptions{Credit: 10, SourceCapabilities: []string{"topic"}})
	snd := sender(t, s, "news", &goamqp.SenderOptions{TargetCapabilities: []string{"topic"}})
	send(t, snd, durable("hello"))
	for _, r := range []*goamqp.Receiver{r1, r2} {
		if got := string(recv(t, r).GetData()); got != "hello" {
			t.Fatalf("subscriber got %q", got)
		}
	}
	q1 := receiver(t, s, "jobs", &goamqp.ReceiverOptions{Credit: 10, SourceCapabilities: []string{"queue"}})
	q2 := receiver(t, s, "queue://jobs", &goamqp.ReceiverOptions{Credit: 10})
	qs := sender(t, s, "queue://jobs", nil)
	send(t, qs, durable("a"))
	send(t, qs, durable("b"))
	got := map[string]bool{}
	for _, r := range []*goamqp.Receiver{q1, q2} {
		m := recv(t, r)
		got[string(m.GetData())] = true
		r.AcceptMessage(testCtx(t), m)
	}
	if !got["a"] || !got["b"] {
		t.Fatalf("queue consumers got %v, want a and b once each", got)
	}
	if info, _ := b.srv.Queue("jobs"); info.Routing != "anycast" {
		t.Fatalf("jobs routes %s", info.Routing)
	}
}

// TestDynamicReceiver: a dynamic source gets a temporary queue, which a
// sender reaches by its address and which is deleted with the link.
func TestDynamicReceiver(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	s := openSession(t, b.dial(t, nil))
	r := receiver(t, s, "", &goamqp.ReceiverOptions{DynamicAddress: true, Credit: 5})
	addr := r.Address()
	if addr == "" {
		t.Fatal("dynamic receiver got no address")
	}
	if _, ok := b.srv.Queue(addr); !ok {
		t.Fatalf("no queue %q", addr)
	}
	send(t, sender(t, s, addr, nil), durable("reply"))
	m := recv(t, r)
	if string(m.GetData()) != "reply" {
		t.Fatalf("got %q", m.GetData())
	}
	r.AcceptMessage(testCtx(t), m)
	if err := r.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.srv.Queue(addr); ok {
		t.Fatalf("temporary queue %q outlived its link", addr)
	}
}

// TestOutcomes: released and modified messages come back (modified with a
// higher delivery count), rejected ones are dropped.
func TestOutcomes(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	s := openSession(t, b.dial(t, nil))
	snd := sender(t, s, "q", nil)
	r := receiver(t, s, "q", &goamqp.ReceiverOptions{Credit: 1})
	send(t, snd, durable("x"))
	m := recv(t, r)
	if err := r.ReleaseMessage(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	m = recv(t, r)
	if string(m.GetData()) != "x" {
		t.Fatalf("after release got %q", m.GetData())
	}
	if err := r.ModifyMessage(testCtx(t), m, &goamqp.ModifyMessageOptions{DeliveryFailed: true}); err != nil {
		t.Fatal(err)
	}
	m = recv(t, r)
	if m.Header == nil || m.Header.DeliveryCount < 1 {
		t.Fatalf("redelivery after modified has header %+v, want delivery-count >= 1", m.Header)
	}
	if err := r.RejectMessage(testCtx(t), m, nil); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, r)
	if err := r.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	rs := openSession(t, b.dial(t, nil))
	r2 := receiver(t, rs, "q", &goamqp.ReceiverOptions{Credit: 1, SettlementMode: goamqp.ReceiverSettleModeSecond.Ptr()})
	send(t, snd, durable("y"))
	m = recv(t, r2)
	if err := r2.AcceptMessage(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if info, _ := b.srv.Queue("q"); info.Depth != 0 {
		t.Fatalf("depth %d after reject and accept", info.Depth)
	}
}

// TestDrain: a drain with messages waiting delivers them; with none it
// ends at once with the credit unused.
func TestDrain(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	s := openSession(t, b.dial(t, nil))
	snd := sender(t, s, "d", nil)
	for i := 0; i < 3; i++ {
		send(t, snd, durable(fmt.Sprint(i)))
	}
	r := receiver(t, s, "d", &goamqp.ReceiverOptions{Credit: -1})
	if err := r.IssueCredit(10); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r.AcceptMessage(testCtx(t), recv(t, r))
	}
	// go-amqp's drain flow carries no credit: the broker answers it with
	// its flow state, and the 7 credits left are gone.
	if err := r.DrainCredit(testCtx(t), nil); err != nil {
		t.Fatalf("drain: %v", err)
	}
	send(t, snd, durable("late"))
	expectNothing(t, r)
	// The message stays in the queue for others, not held for r.
	r2 := receiver(t, openSession(t, b.dial(t, nil)), "d", &goamqp.ReceiverOptions{Credit: 1})
	if got := string(recv(t, r2).GetData()); got != "late" {
		t.Fatalf("second receiver got %q", got)
	}
}

// TestNotFound: with auto-create off, a link to a missing queue is
// refused with amqp:not-found.
func TestNotFound(t *testing.T) {
	b := newTestBroker(t, server.Options{NoAutoCreate: true}, nil)
	s := openSession(t, b.dial(t, nil))
	_, err := s.NewSender(testCtx(t), "missing", nil)
	if !isAMQPError(err, goamqp.ErrCondNotFound) {
		t.Fatalf("sender to a missing queue: %v, want amqp:not-found", err)
	}
	_, err = s.NewReceiver(testCtx(t), "missing", nil)
	if !isAMQPError(err, goamqp.ErrCondNotFound) {
		t.Fatalf("receiver on a missing queue: %v, want amqp:not-found", err)
	}
}

// TestSASL: PLAIN against the users, ANONYMOUS refused when users exist,
// and no SASL at all refused with amqp:unauthorized-access.
func TestSASL(t *testing.T) {
	b := newTestBroker(t, server.Options{}, map[string]string{"alice": "secret"})
	c := b.dial(t, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("alice", "secret")})
	send(t, sender(t, openSession(t, c), "q", nil), durable("ok"))
	for _, tc := range []struct {
		name string
		opts *goamqp.ConnOptions
	}{
		{"wrong password", &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("alice", "nope")}},
		{"anonymous", &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()}},
		{"no SASL", nil},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := goamqp.Dial(ctx, b.url(), tc.opts)
		if err == nil {
			// The broker answers an unauthenticated open with open and
			// close at once: the first use fails.
			_, err = c.NewSession(ctx, nil)
			c.Close()
		}
		cancel()
		if err == nil {
			t.Fatalf("%s: connected", tc.name)
		}
		if tc.opts == nil && !isAMQPError(err, goamqp.ErrCondUnauthorizedAccess) {
			t.Fatalf("%s: %v, want amqp:unauthorized-access", tc.name, err)
		}
	}
}

// TestLargeMessage: a message larger than a frame goes both ways in
// several transfers; one larger than the broker's limit is refused.
func TestLargeMessage(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	s := openSession(t, b.dial(t, &goamqp.ConnOptions{MaxFrameSize: 4096}))
	body := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640 KB
	snd := sender(t, s, "big", nil)
	send(t, snd, &goamqp.Message{Header: &goamqp.MessageHeader{Durable: true}, Data: [][]byte{body}})
	r := receiver(t, s, "big", nil)
	m := recv(t, r)
	if !bytes.Equal(m.GetData(), body) {
		t.Fatalf("large body came back with %d bytes", len(m.GetData()))
	}
	r.AcceptMessage(testCtx(t), m)
	err := snd.Send(testCtx(t), &goamqp.Message{Data: [][]byte{make([]byte, 2<<20)}}, nil)
	if err == nil {
		t.Fatal("a 2 MiB message was accepted")
	}
}

// TestDuplicateID: the _AMQ_DUPL_ID property, and the message-id when the
// target asks for it, drop a resend.
func TestDuplicateID(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	s := openSession(t, b.dial(t, nil))
	snd := sender(t, s, "dq", nil)
	for i := 0; i < 2; i++ {
		m := durable("once")
		m.ApplicationProperties = map[string]any{DuplicateIDProperty: "id-1"}
		send(t, snd, m)
	}
	snd2 := sender(t, s, "dq", &goamqp.SenderOptions{TargetCapabilities: []string{string(CapDuplicateMessageID)}})
	for i := 0; i < 2; i++ {
		m := durable("twice")
		m.Properties = &goamqp.MessageProperties{MessageID: "mid-1"}
		send(t, snd2, m)
	}
	if info, _ := b.srv.Queue("dq"); info.Depth != 2 {
		t.Fatalf("depth %d, want 2 (one per duplicate ID)", info.Depth)
	}
}

// TestPresettled: at-most-once both ways.
func TestPresettled(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	s := openSession(t, b.dial(t, nil))
	snd := sender(t, s, "ps", &goamqp.SenderOptions{SettlementMode: goamqp.SenderSettleModeSettled.Ptr()})
	for i := 0; i < 10; i++ {
		send(t, snd, durable(fmt.Sprint(i)))
	}
	r := receiver(t, s, "ps", &goamqp.ReceiverOptions{Credit: 20, RequestedSenderSettleMode: goamqp.SenderSettleModeSettled.Ptr()})
	for i := 0; i < 10; i++ {
		if got := string(recv(t, r).GetData()); got != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, got)
		}
	}
}

// TestCrossProtocol: a message sent over AMQP reaches an in-process
// consumer with its body, properties and durability, and one sent
// in-process reaches an AMQP receiver the same way.
func TestCrossProtocol(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	s := openSession(t, b.dial(t, nil))
	m := durable("from amqp")
	m.ApplicationProperties = map[string]any{"color": "red", "n": int64(7), "ok": true}
	send(t, sender(t, s, "x", nil), m)
	ss := b.srv.NewSession(false)
	defer ss.Close()
	got := make(chan server.Delivery, 1)
	if _, err := ss.CreateConsumer(context.Background(), server.Destination{Name: "x", Routing: server.Anycast}, server.ConsumerOptions{Credit: 1},
		func(d server.Delivery) { got <- d }); err != nil {
		t.Fatal(err)
	}
	d := <-got
	if string(d.Message.Body) != "from amqp" || !d.Message.Durable {
		t.Fatalf("in-process consumer got %+v", d.Message)
	}
	want := []wire.Property{wire.StringProp("color", "red"), wire.Int64Prop("n", 7), wire.BoolProp("ok", true)}
	for _, w := range want {
		found := false
		for _, p := range d.Message.Properties {
			found = found || (p.Key == w.Key && p.Kind == w.Kind && p.Str == w.Str && p.Int == w.Int)
		}
		if !found {
			t.Fatalf("property %+v missing from %+v", w, d.Message.Properties)
		}
	}
	for _, p := range d.Message.Properties {
		if p.Key == SectionsProperty {
			t.Fatalf("a plain AMQP message carries %s", SectionsProperty)
		}
	}

	ch := make(chan error, 1)
	ss.Send(context.Background(), server.Destination{Name: "y", Routing: server.Anycast},
		&server.Message{Durable: true, Body: []byte("from core"), Properties: []wire.Property{wire.StringProp("k", "v"), wire.Int64Prop("i", 3)}},
		func(err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatal(err)
	}
	r := receiver(t, s, "y", nil)
	am := recv(t, r)
	if string(am.GetData()) != "from core" || am.Header == nil || !am.Header.Durable ||
		am.ApplicationProperties["k"] != "v" || am.ApplicationProperties["i"] != int64(3) {
		t.Fatalf("AMQP receiver got body %q header %+v props %v", am.GetData(), am.Header, am.ApplicationProperties)
	}
}

// TestFailoverServerList: the open frame names the topology's brokers.
func TestFailoverServerList(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	b.srv.SetTopology(server.Topology{Epoch: 1, Members: []server.Member{
		{NodeID: "n1", Role: "primary", State: "live", URL: "tcp://127.0.0.1:5672"},
		{NodeID: "n1", Role: "backup", State: "backup", URL: "tcp://127.0.0.2:5673"},
	}})
	c := b.dial(t, nil)
	list, ok := c.Properties()["failover-server-list"].([]any)
	if !ok || len(list) != 2 {
		t.Fatalf("failover-server-list = %#v", c.Properties()["failover-server-list"])
	}
	second, _ := list[1].(map[string]any)
	if second == nil {
		t.Fatalf("entry is %T", list[1])
	}
	host := second["hostname"]
	port := second["port"]
	if host != "127.0.0.2" || port != int32(5673) {
		t.Fatalf("second entry %v", second)
	}
}

// TestRefuse: a broker that is not live ends the connection after the
// client's open without opening: the client's dial fails.
func TestRefuse(t *testing.T) {
	cl, err := dialRefuser(t, "backup is not active")
	if err == nil {
		cl.Close()
		t.Fatal("a refusing broker completed the open")
	}
}

// TestAcceptorPrefixes: the acceptor's anycastPrefix and multicastPrefix
// (comma-separated lists) choose the routing and are stripped.
func TestAcceptorPrefixes(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	b.anycastPrefix, b.multicastPrefix = "anycast://,/queue/", "/topic/"
	s := openSession(t, b.dial(t, nil))
	r1 := receiver(t, s, "/topic/prices", &goamqp.ReceiverOptions{Credit: 5})
	r2 := receiver(t, s, "/topic/prices", &goamqp.ReceiverOptions{Credit: 5})
	send(t, sender(t, s, "/topic/prices", nil), durable("p"))
	for _, r := range []*goamqp.Receiver{r1, r2} {
		if got := string(recv(t, r).GetData()); got != "p" {
			t.Fatalf("subscriber got %q", got)
		}
	}
	send(t, sender(t, s, "/queue/orders", nil), durable("o"))
	send(t, sender(t, s, "anycast://orders", nil), durable("o2"))
	if info, ok := b.srv.Queue("orders"); !ok || info.Routing != "anycast" || info.Depth != 2 {
		t.Fatalf("queue orders: %+v %v", info, ok)
	}
}

// TestDrainDeliversWaiting: a flow with drain and credit delivers what the
// queue holds, then answers with the delivery-count advanced by the credit
// left and no credit.
func TestDrainDeliversWaiting(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	s := openSession(t, b.dial(t, nil))
	snd := sender(t, s, "dw", nil)
	for i := 0; i < 3; i++ {
		send(t, snd, durable(fmt.Sprint(i)))
	}
	c := dialRaw(t, b)
	c.open()
	c.write(appendFrame(nil, frameAMQP, 0, &Begin{IncomingWindow: 1000, OutgoingWindow: 1000}, nil))
	c.write(appendFrame(nil, frameAMQP, 0, &Attach{Name: "r", Handle: 0, Role: roleReceiver, Source: &Terminus{Address: "dw", HasAddress: true}}, nil))
	c.write(appendFrame(nil, frameAMQP, 0, &Flow{IncomingWindow: 1000, OutgoingWindow: 1000, HasHandle: true, Handle: 0, LinkCredit: 10, Drain: true}, nil))
	transfers := 0
	for {
		f, err := c.fr.next()
		if err != nil {
			t.Fatal(err)
		}
		if len(f.body) == 0 {
			continue
		}
		d := newDecoder(f.body)
		switch code, _ := d.descriptor(); code {
		case descTransfer:
			transfers++
		case descFlow:
			var fl Flow
			fl.decode(d)
			if !fl.HasHandle {
				continue
			}
			if transfers != 3 || !fl.Drain || fl.LinkCredit != 0 || fl.DeliveryCount != 10 {
				t.Fatalf("after %d transfers: flow drain %v credit %d delivery-count %d; want 3 transfers, then drain with credit 0 and count 10",
					transfers, fl.Drain, fl.LinkCredit, fl.DeliveryCount)
			}
			return
		}
	}
}
