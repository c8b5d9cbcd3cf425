package server

import (
	"context"
	"testing"
)

// TestDrainAndTakeCredit: Drain hands the waiting messages to the
// consumer before it returns and takes the unused credit back; after
// TakeCredit nothing more is delivered.
func TestDrainAndTakeCredit(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	dest := Destination{Name: "dq", Routing: Anycast}
	for i := 0; i < 3; i++ {
		mustSend(t, ss, dest, &Message{Durable: true, Body: []byte{byte(i)}})
	}
	var got []byte
	c, err := ss.CreateConsumer(context.Background(), dest, ConsumerOptions{}, func(d Delivery) { got = append(got, d.Message.Body[0]) })
	if err != nil {
		t.Fatal(err)
	}
	c.q.mu.Lock()
	c.credit = 10 // as Credit would, without waking the delivery goroutine
	c.q.mu.Unlock()
	if left := c.Drain(); left != 7 {
		t.Fatalf("Drain returned %d, want 7", left)
	}
	if string(got) != "\x00\x01\x02" {
		t.Fatalf("delivered %v before Drain returned", got)
	}
	c.Credit(5)
	if left := c.TakeCredit(); left > 5 {
		t.Fatalf("TakeCredit returned %d of 5", left)
	}
	mustSend(t, ss, dest, &Message{Durable: true, Body: []byte{9}})
	if left := c.Drain(); left != 0 || len(got) != 3 {
		t.Fatalf("after TakeCredit: Drain %d, delivered %v", left, got)
	}
}
