package server

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReviewNoDeliveryAfterClose: Server.Close "stops every queue's
// delivery". A delivery in progress when Close is called (here: the
// handler of the first message is still running) must not be followed by
// another delivery once Close has returned.
func TestReviewNoDeliveryAfterClose(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	var (
		mu       sync.Mutex
		got      []string
		closed   atomic.Bool
		late     atomic.Int32
		entered  = make(chan struct{})
		release  = make(chan struct{})
		firstOne sync.Once
	)
	handler := func(d Delivery) {
		if closed.Load() {
			late.Add(1)
		}
		mu.Lock()
		got = append(got, string(d.Message.Body))
		mu.Unlock()
		firstOne.Do(func() {
			close(entered)
			<-release
		})
	}
	if _, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, handler); err != nil {
		t.Fatal(err)
	}
	// m1: the sending goroutine (or the queue's) delivers it; its handler
	// blocks until released.
	go ss.Send(context.Background(), queueDest("q"), &Message{Body: []byte("m1")}, func(error) {})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("m1 never delivered")
	}
	// m2 waits behind the delivery in progress.
	mustSend(t, ss, queueDest("q"), &Message{Body: []byte("m2")})
	closeDone := make(chan struct{})
	go func() {
		b.s.Close()
		closed.Store(true)
		close(closeDone)
	}()
	// Whichever goroutine delivers, Close must either wait for it or stop
	// it: release the handler once Close has returned, or after a while if
	// Close waits for the delivery (the behaviour before 774eada).
	select {
	case <-closeDone:
	case <-time.After(2 * time.Second):
	}
	close(release)
	<-closeDone
	// Give a stray delivery the chance to happen (not a timing assertion:
	// a delivery after Close is wrong whenever it comes).
	time.Sleep(200 * time.Millisecond)
	if n := late.Load(); n > 0 {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d deliveries after Server.Close returned (delivered: %v)", n, got)
	}
}
