package amqp

import (
	"fmt"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/tandemmq/tandem/server"
)

// TestGoAMQPRoundTrip sends durable messages with go-amqp and receives
// them, accepting each, with an exact count.
func TestGoAMQPRoundTrip(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	c := b.dial(t, nil)
	ctx := testCtx(t)
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := 0; i < n; i++ {
		m := goamqp.NewMessage([]byte(fmt.Sprintf("m%d", i)))
		m.Header = &goamqp.MessageHeader{Durable: true}
		m.ApplicationProperties = map[string]any{"i": int64(i)}
		if err := snd.Send(ctx, m, nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	// Settlement mode second: each accept returns once the broker settled
	// it, which it does once the ack is durable.
	rcv, err := sess.NewReceiver(ctx, "orders", &goamqp.ReceiverOptions{Credit: 100, SettlementMode: goamqp.ReceiverSettleModeSecond.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if got, want := string(m.GetData()), fmt.Sprintf("m%d", i); got != want {
			t.Fatalf("message %d: body %q, want %q", i, got, want)
		}
		if m.Header == nil || !m.Header.Durable {
			t.Fatalf("message %d: not durable: %+v", i, m.Header)
		}
		if got := m.ApplicationProperties["i"]; got != int64(i) {
			t.Fatalf("message %d: property i = %v (%T)", i, got, got)
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	if q, _ := b.srv.Queue("orders"); q.Depth != 0 {
		t.Fatalf("queue depth %d after accepting everything", q.Depth)
	}
}

// TestGoAMQPSelectorAndTTL: a receiver with a JMS selector filter gets
// only the matching messages; a message whose absolute-expiry-time passed
// is not delivered; one with a ttl gets an expiration.
func TestGoAMQPSelectorAndTTL(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	c := b.dial(t, nil)
	ctx := testCtx(t)
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := sess.NewSender(ctx, "paints", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, color := range []string{"red", "blue", "red", "red"} {
		m := goamqp.NewMessage([]byte(fmt.Sprintf("%s%d", color, i)))
		m.Header = &goamqp.MessageHeader{Durable: true}
		switch i {
		case 2: // expired already
			past := time.Now().Add(-time.Minute)
			m.Properties = &goamqp.MessageProperties{AbsoluteExpiryTime: &past}
		case 3: // expires in an hour
			m.Header.TTL = time.Hour
		}
		m.ApplicationProperties = map[string]any{"color": color}
		if err := snd.Send(ctx, m, nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	rcv, err := sess.NewReceiver(ctx, "paints", &goamqp.ReceiverOptions{Credit: 10, SettlementMode: goamqp.ReceiverSettleModeSecond.Ptr(),
		Filters: []goamqp.LinkFilter{goamqp.NewSelectorFilter("color = 'red'")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"red0", "red3"} {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.GetData()) != want {
			t.Fatalf("got %q, want %q", m.GetData(), want)
		}
		if want == "red3" && b.srv.Stats().Expired != 1 {
			t.Fatalf("red2 not expired when red3 arrives: %+v", b.srv.Stats())
		}
		// absolute-expiry-time is the ttl's (index 8 of the section).
		var exp *time.Time
		if m.Properties != nil {
			exp = m.Properties.AbsoluteExpiryTime
		}
		if want == "red3" && (exp == nil || time.Until(*exp) < 50*time.Minute) {
			t.Fatalf("red3: absolute-expiry-time %v, want about an hour from now", exp)
		}
		if want == "red0" && exp != nil {
			t.Fatalf("red0: absolute-expiry-time %v, want none", exp)
		}
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.srv.Stats().Expired != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("expired %d, want 1", b.srv.Stats().Expired)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if q, _ := b.srv.Queue("paints"); q.Depth != 1 {
		t.Fatalf("depth %d, want 1 (blue1 waits for another receiver)", q.Depth)
	}
}

// TestGoAMQPCreationTime: a message with a timestamp (sent by another
// protocol) reaches an AMQP receiver with it as creation-time (field 9 of
// the properties section) and without an absolute-expiry-time (field 8,
// where it was written before: Qpid JMS then dropped the message as
// expired).
func TestGoAMQPCreationTime(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	ts := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	ss := b.srv.NewSession(false)
	done := make(chan error, 1)
	ss.Send(testCtx(t), server.Destination{Name: "q", Routing: server.Anycast},
		&server.Message{Durable: true, Timestamp: ts.UnixNano(), Body: []byte("x")}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c := b.dial(t, nil)
	ctx := testCtx(t)
	sess, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := sess.NewReceiver(ctx, "q", &goamqp.ReceiverOptions{Credit: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Properties
	if p == nil || p.CreationTime == nil || !p.CreationTime.Equal(ts) || p.AbsoluteExpiryTime != nil {
		t.Fatalf("properties %+v, want creation-time %v and no absolute-expiry-time", p, ts)
	}
}
