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
// temporary queue: the queue is deleted). The send's completion claimed
// the queue's delivery before calling done (push, then done, then
// deliverClaimed), so a shutdown that waits for that delivery to finish
// must not be waited for by the very goroutine that will finish it.
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
			// Non-durable: done runs inside Send, on the sending goroutine.
			ss.Send(context.Background(), topicDest("t"), &Message{Durable: durable, Body: []byte("m")}, func(err error) {
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
