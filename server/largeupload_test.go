package server

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestLargeUpload: a body written in pieces of any size is stored in
// chunks of LargeChunkSize and read back whole; the message is stored once
// Send's done reports it, and survives a restart; an empty upload and a
// use after Send are refused; a broker without a large-messages journal
// has none.
func TestLargeUpload(t *testing.T) {
	if _, err := newBroker(t, Options{}).s.BeginLargeUpload(); !errors.Is(err, ErrNoLargeStore) {
		t.Fatalf("BeginLargeUpload without a large-messages journal: %v", err)
	}
	b := newLargeBroker(t, Options{})
	body := make([]byte, 2*LargeChunkSize+12345)
	for i := range body {
		body[i] = byte(i*13 + i/1000)
	}
	up, err := b.s.BeginLargeUpload()
	if err != nil {
		t.Fatal(err)
	}
	for p := body; len(p) > 0; {
		n := min(len(p), 70001)
		if _, err := up.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if up.Size() != int64(len(body)) {
		t.Fatalf("Size %d, want %d", up.Size(), len(body))
	}
	ss := b.s.NewSession(false)
	done := make(chan error, 1)
	dest := Destination{Name: "up", Routing: Anycast}
	up.Send(context.Background(), ss, dest, &Message{Durable: true, DuplicateID: "u1"}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write([]byte("x")); !errors.Is(err, ErrUploadEnded) {
		t.Fatalf("Write after Send: %v", err)
	}
	ss.Close()
	b.restart()
	ss = b.s.NewSession(false)
	defer ss.Close()
	got := make(chan Delivery, 1)
	if _, err := ss.CreateConsumer(context.Background(), dest, ConsumerOptions{Credit: 1}, func(d Delivery) { got <- d }); err != nil {
		t.Fatal(err)
	}
	d := <-got
	lb := d.Message.large
	if lb == nil || len(lb.chunks) != 3 || lb.size != int64(len(body)) {
		t.Fatalf("stored message: large %+v, want 3 chunks of %d bytes in all", lb, len(body))
	}
	whole, err := b.s.LargeBody(d.Message)
	if err != nil || !bytes.Equal(whole, body) {
		t.Fatalf("body read back: %d bytes, equal %v, %v", len(whole), bytes.Equal(whole, body), err)
	}

	empty, err := b.s.BeginLargeUpload()
	if err != nil {
		t.Fatal(err)
	}
	empty.Send(context.Background(), ss, dest, &Message{}, func(err error) { done <- err })
	if err := <-done; !errors.Is(err, ErrInvalid) {
		t.Fatalf("an empty large message: %v, want ErrInvalid", err)
	}
}

// A large message sent in a transaction holds its chunks until the
// transaction ends: between the send (its upload ended) and the commit
// nothing else holds them, and the large-messages journal's floor passed
// them (the committed message then had no body to read).
func TestLargeTransactedSendHeldUntilCommit(t *testing.T) {
	b := newLargeBroker(t, Options{})
	ctx := context.Background()
	upload := func(ss *Session, dest Destination, size int, seed byte) []byte {
		t.Helper()
		body := make([]byte, size)
		for i := range body {
			body[i] = seed + byte(i*7+i/4096)
		}
		up, err := b.s.BeginLargeUpload()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Write(body); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		up.Send(ctx, ss, dest, &Message{Durable: true}, func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return body
	}
	txq, fillq := Destination{Name: "tx", Routing: Anycast}, Destination{Name: "fill", Routing: Anycast}
	tx := b.s.NewSession(true)
	defer tx.Close()
	want := upload(tx, txq, 3*LargeChunkSize, 1) // in the first segment (4 MiB)

	// Later segments: a filler consumed and acknowledged, then one held.
	ss := b.s.NewSession(false)
	defer ss.Close()
	upload(ss, fillq, 8*LargeChunkSize, 2)
	got := make(chan Delivery, 16)
	if _, err := ss.CreateConsumer(ctx, fillq, ConsumerOptions{Credit: -1}, func(d Delivery) { got <- d }); err != nil {
		t.Fatal(err)
	}
	acked := make(chan error, 1)
	d := <-got
	ss.Ack(d.ConsumerID, d.Message.ID, func(err error) { acked <- err })
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	upload(ss, Destination{Name: "held", Routing: Anycast}, LargeChunkSize, 3)

	b.s.updateLargeFloor(^uint64(0))
	b.s.lg.mu.Lock()
	floor := b.s.lg.floor
	b.s.lg.mu.Unlock()
	if floor > 1 {
		t.Fatalf("the large journal's floor is segment %d with an uncommitted transaction's body in segment 1", floor)
	}
	cd := make(chan error, 1)
	tx.Commit(ctx, func(err error) { cd <- err })
	if err := <-cd; err != nil {
		t.Fatal(err)
	}
	txc := make(chan Delivery, 1)
	if _, err := ss.CreateConsumer(ctx, txq, ConsumerOptions{Credit: 1}, func(d Delivery) { txc <- d }); err != nil {
		t.Fatal(err)
	}
	whole, err := b.s.LargeBody((<-txc).Message)
	if err != nil || !bytes.Equal(whole, want) {
		t.Fatalf("the committed large body: %d bytes, equal %v, %v", len(whole), bytes.Equal(whole, want), err)
	}
}
