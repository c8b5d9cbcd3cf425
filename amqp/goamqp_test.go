package amqp

import (
	"fmt"
	"testing"

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
