package server

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
)

// TestReviewCloseConsumerInSendCallback: an in-process sender closes its
// consumer from the send's done callback (the last consumer of a
// temporary queue: the queue is deleted). In 383abe4 the send's
// completion claimed the queue's delivery before calling done, and the
// queue's shutdown waited for that delivery, which the same goroutine
// would only make after done returned: a deadlock.
func TestReviewCloseConsumerInSendCallback(t *testing.T) {
	for _, durable := range []bool{false, true} {
		name := "non-durable"
		if durable {
			name = "durable"
		}
		t.Run(name, func(t *testing.T) {
			// No cleanup on failure: the hung shutdown would hang it too.
			b := &broker{t: t, ms: journal.NewMemoryStore(), bs: journal.NewMemoryStore(),
				opts: Options{Logger: slog.New(slog.DiscardHandler)}}
			b.start()
			ss := b.s.NewSession(false)
			col := newCollector()
			// A multicast consumer without a subscription: a temporary queue
			// deleted with its last consumer.
			c, err := ss.CreateConsumer(context.Background(), topicDest("t"), ConsumerOptions{Credit: -1}, col.handle)
			if err != nil {
				t.Fatal(err)
			}
			returned := make(chan error, 1)
			// On a goroutine: for a non-durable message done runs inside Send,
			// so a deadlock would hang this goroutine, not the test.
			go ss.Send(context.Background(), topicDest("t"), &Message{Durable: durable, Body: []byte("m")}, func(err error) {
				if err != nil {
					returned <- err
					return
				}
				returned <- ss.CloseConsumer(c.ID())
			})
			select {
			case err := <-returned:
				if err != nil {
					t.Fatal(err)
				}
				b.stop()
			case <-time.After(20 * time.Second):
				t.Fatal("CloseConsumer inside the send's callback never returned: the queue's shutdown waits for the delivery this goroutine claimed")
			}
		})
	}
}
