package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestDeliveryOrderInlineAndGoroutine: sends deliver on the enqueuing
// goroutine when no delivery runs, credit deliveries on the queue's
// goroutine; with both racing (pipelined sends from several goroutines,
// credit granted one at a time from the handler's side), every message arrives once and each sender's messages
// arrive in the order they were confirmed.
func TestDeliveryOrderInlineAndGoroutine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		durable bool
		credit  int
	}{
		{"non-durable unlimited credit", false, -1},
		{"durable unlimited credit", true, -1},
		{"durable trickled credit", true, 1},
		{"non-durable trickled credit", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t, Options{})
			const senders, per = 4, 200
			var mu sync.Mutex
			var got []string
			grant := make(chan struct{}, senders*per)
			col := func(d Delivery) {
				mu.Lock()
				got = append(got, string(d.Message.Body))
				mu.Unlock()
				grant <- struct{}{}
			}
			ss := b.s.NewSession(false)
			c, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: tc.credit}, col)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { // the credit side: one more message per delivery
				defer close(done)
				for range senders * per {
					<-grant
					if tc.credit > 0 {
						c.Credit(1)
					}
				}
			}()
			var wg sync.WaitGroup
			confirmed := make([][]string, senders)
			for s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ps := b.s.NewSession(false)
					var cmu sync.Mutex
					var inflight sync.WaitGroup
					for i := range per {
						body := fmt.Sprintf("s%d-%04d", s, i)
						inflight.Add(1)
						ps.Send(context.Background(), queueDest("q"), msg(body, tc.durable), func(err error) {
							if err != nil {
								t.Error(err)
							}
							cmu.Lock()
							confirmed[s] = append(confirmed[s], body)
							cmu.Unlock()
							inflight.Done()
						})
					}
					inflight.Wait()
				}()
			}
			wg.Wait()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				mu.Lock()
				n := len(got)
				mu.Unlock()
				t.Fatalf("%d of %d delivered after 30s", n, senders*per)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != senders*per {
				t.Fatalf("got %d deliveries, want %d", len(got), senders*per)
			}
			seen := map[string]bool{}
			for _, g := range got {
				if seen[g] {
					t.Fatalf("%s delivered twice", g)
				}
				seen[g] = true
			}
			for s := range senders {
				var order []string
				prefix := fmt.Sprintf("s%d-", s)
				for _, g := range got {
					if len(g) > len(prefix) && g[:len(prefix)] == prefix {
						order = append(order, g)
					}
				}
				if !slices.Equal(order, confirmed[s]) {
					t.Fatalf("sender %d: delivered in order %v, confirmed in order %v", s, order, confirmed[s])
				}
			}
		})
	}
}
