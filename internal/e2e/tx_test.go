package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
)

// TestKillDuringTransactions: a transacted producer commits batches of 10
// while the broker is SIGKILLed at a random moment. After a restart every
// committed batch is there in full, a batch whose commit outcome is
// unknown is there in full or not at all, and nothing else is.
func TestKillDuringTransactions(t *testing.T) {
	for it := 0; it < iterations(); it++ {
		t.Run(fmt.Sprint("run", it), func(t *testing.T) {
			cfg, typ := journalConfig(t, it)
			t.Logf("journal-type %s", typ)
			b := newBrokerProc(t)
			b.start("--config", cfg)
			b.requireFileStore()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			const batch = 10
			committed, unknown := map[int]bool{}, map[int]bool{}
			done := make(chan error, 1)
			go func() {
				done <- func() error {
					conn, err := client.Dial(ctx, b.URL())
					if err != nil {
						return err
					}
					defer conn.Close()
					sess, err := conn.CreateSession(ctx, client.Transacted())
					if err != nil {
						return err
					}
					p := sess.CreateProducer(client.Queue("tx"))
					for n := 0; ; n++ {
						for i := 0; i < batch; i++ {
							id := fmt.Sprintf("b%d-%d", n, i)
							if err := p.SendAsync(ctx, &client.Message{DuplicateID: id, Body: []byte(id)}, nil); err != nil {
								return err
							}
						}
						err := sess.Commit(ctx)
						switch {
						case err == nil:
							committed[n] = true
						case errors.Is(err, client.ErrUnknownOutcome):
							unknown[n] = true
							return err
						default:
							return err
						}
					}
				}()
			}()
			time.Sleep(time.Duration(20+rand.IntN(600)) * time.Millisecond)
			b.kill()
			perr := <-done
			b.start("--config", cfg)

			got := map[int]int{}
			if _, err := drainFunc(ctx, b.URL(), "tx", 2*time.Second, func(body string) {
				var n, i int
				if _, err := fmt.Sscanf(strings.Replace(body, "-", " ", 1), "b%d %d", &n, &i); err != nil {
					t.Errorf("unexpected message %q", body)
					return
				}
				got[n]++
			}); err != nil {
				t.Fatalf("drain: %v", err)
			}
			t.Logf("%d batches committed, %d unknown (%v); %d batches found", len(committed), len(unknown), perr, len(got))
			for n := range committed {
				if got[n] != batch {
					t.Errorf("committed batch %d: %d of %d messages", n, got[n], batch)
				}
			}
			for n, k := range got {
				switch {
				case !committed[n] && !unknown[n]:
					t.Errorf("batch %d was never committed but %d of its messages exist", n, k)
				case k != batch:
					t.Errorf("batch %d is partial: %d of %d messages", n, k, batch)
				}
			}
		})
	}
}

// drainFunc consumes until the queue stayed empty for idle, calling fn
// with each body and acking it.
func drainFunc(ctx context.Context, url, queue string, idle time.Duration, fn func(string)) (int, error) {
	conn, err := client.Dial(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		return 0, err
	}
	k, err := sess.CreateConsumer(ctx, client.Queue(queue))
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		rctx, cancel := context.WithTimeout(ctx, idle)
		m, err := k.Receive(rctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		fn(string(m.Body))
		if err := k.Ack(ctx, m); err != nil {
			return n, err
		}
		n++
	}
}
