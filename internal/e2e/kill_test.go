package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
)

// journalTypes alternate across iterations: the default (ASYNCIO: io_uring
// or O_DIRECT) and NIO (buffered pwrite).
var journalTypes = []string{"NIO", "ASYNCIO"}

// journalConfig writes a config selecting the journal type of iteration it.
func journalConfig(t *testing.T, it int) (string, string) {
	typ := journalTypes[it%len(journalTypes)]
	return writeConfig(t, "<journal-type>"+typ+"</journal-type>"), typ
}

func iterations() int {
	if testing.Short() {
		return 1
	}
	return 5
}

// produce sends count durable messages with IDs prefix-1..count (also the
// duplicate IDs), window in flight, recording every outcome, until all
// were sent or the connection failed. It returns when every send's
// outcome is known.
func produce(ctx context.Context, url, queue, prefix string, count, window int, l *Ledger) error {
	conn, err := client.Dial(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		return err
	}
	p := sess.CreateProducer(client.Queue(queue), client.Window(window))
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	for i := 1; i <= count; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		l.Sent(id)
		wg.Add(1)
		err := p.SendAsync(ctx, &client.Message{DuplicateID: id, Body: []byte(id)}, func(err error) {
			l.SendDone(id, err)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
		if err != nil {
			l.SendDone(id, err)
			wg.Done()
			break
		}
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
	}
	wg.Wait()
	return firstErr
}

// resend sends ids again (same duplicate IDs), each waiting for its ack.
func resend(ctx context.Context, t *testing.T, url, queue string, ids []string, l *Ledger) {
	t.Helper()
	conn, err := client.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := sess.CreateProducer(client.Queue(queue))
	for _, id := range ids {
		err := p.Send(ctx, &client.Message{DuplicateID: id, Body: []byte(id)})
		l.SendDone(id, err)
		if err != nil {
			t.Fatalf("resend %s: %v", id, err)
		}
	}
}

// drain consumes until the queue stayed empty for idle, acking each
// message and recording it once the broker confirmed the ack. With stopAt
// > 0 it returns after that many (for a partial drain).
func drain(ctx context.Context, url, queue string, idle time.Duration, stopAt int, l *Ledger) (int, error) {
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
	for stopAt <= 0 || n < stopAt {
		rctx, cancel := context.WithTimeout(ctx, idle)
		m, err := k.Receive(rctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		l.Received(string(m.Body))
		if err := k.Ack(ctx, m); err != nil {
			return n, err
		}
		l.Consumed(string(m.Body))
		n++
	}
	return n, nil
}

// TestKillDuringDurableProduce: SIGKILL the broker at a random moment of a
// pipelined durable producer run, restart it, resend the sends whose
// outcome is unknown (same duplicate IDs, as a failing-over client does),
// drain: nothing acknowledged is lost, nothing is stored twice.
func TestKillDuringDurableProduce(t *testing.T) {
	for it := 0; it < iterations(); it++ {
		t.Run(fmt.Sprint("run", it), func(t *testing.T) {
			cfg, typ := journalConfig(t, it)
			t.Logf("journal-type %s", typ)
			b := newBrokerProc(t)
			b.start("--config", cfg)
			b.requireFileStore()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			l := NewLedger()
			done := make(chan error, 1)
			go func() { done <- produce(ctx, b.URL(), "e2e", fmt.Sprintf("p%d", it), 200000, 64, l) }()
			killAfter := time.Duration(20+rand.IntN(600)) * time.Millisecond
			time.Sleep(killAfter)
			b.kill()
			perr := <-done
			t.Logf("killed after %v; producer ended with %v", killAfter, perr)
			b.start("--config", cfg)
			unknown := l.Unknown()
			resend(ctx, t, b.URL(), "e2e", unknown, l)
			if _, err := drain(ctx, b.URL(), "e2e", 2*time.Second, 0, l); err != nil {
				t.Fatalf("drain: %v", err)
			}
			r := l.Check()
			t.Logf("%v (resent %d with unknown outcome)", r, len(unknown))
			if !r.OK() {
				t.Fatal(r)
			}
			if code := b.stop(); code != 0 {
				t.Fatalf("SIGTERM: exit %d, want 0", code)
			}
		})
	}
}

// TestKillDuringConsume: SIGKILL while a consumer acks, restart, drain: an
// ack the broker confirmed is never redelivered, and every stored message
// is consumed.
func TestKillDuringConsume(t *testing.T) {
	for it := 0; it < iterations(); it++ {
		t.Run(fmt.Sprint("run", it), func(t *testing.T) {
			cfg, typ := journalConfig(t, it)
			t.Logf("journal-type %s", typ)
			b := newBrokerProc(t)
			b.start("--config", cfg)
			b.requireFileStore()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			l := NewLedger()
			if err := produce(ctx, b.URL(), "e2e", "c", 3000, 128, l); err != nil {
				t.Fatalf("produce: %v", err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := drain(ctx, b.URL(), "e2e", 5*time.Second, 0, l)
				done <- err
			}()
			killAfter := time.Duration(10+rand.IntN(300)) * time.Millisecond
			time.Sleep(killAfter)
			b.kill()
			<-done
			before := l.Check().Consumed
			b.start("--config", cfg)
			if _, err := drain(ctx, b.URL(), "e2e", 2*time.Second, 0, l); err != nil {
				t.Fatalf("drain: %v", err)
			}
			r := l.Check()
			t.Logf("killed after %v with %d consumed; %v", killAfter, before, r)
			if !r.OK() {
				t.Fatal(r)
			}
		})
	}
}

// TestRunGracefulStopAndRestart: SIGTERM exits 0; durable messages and
// queues survive; /status reports them.
func TestRunGracefulStopAndRestart(t *testing.T) {
	b := newBrokerProc(t)
	b.start()
	b.requireFileStore()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := NewLedger()
	if err := produce(ctx, b.URL(), "kept", "g", 100, 16, l); err != nil {
		t.Fatal(err)
	}
	st := b.status()
	node := st["node_id"]
	for _, k := range []string{"node_id", "name", "version", "policy", "role", "state", "epoch", "store", "peers", "cpu_seconds", "queues"} {
		if _, ok := st[k]; !ok {
			t.Errorf("/status lacks %q", k)
		}
	}
	if code := b.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0", code)
	}
	b.start()
	st = b.status()
	if st["node_id"] != node {
		t.Fatalf("node ID changed across restart: %v -> %v", node, st["node_id"])
	}
	qs, _ := st["queues"].([]any)
	if len(qs) != 1 || qs[0].(map[string]any)["depth"].(float64) != 100 {
		t.Fatalf("queues after restart: %v", qs)
	}
	if _, err := drain(ctx, b.URL(), "kept", time.Second, 0, l); err != nil {
		t.Fatal(err)
	}
	if r := l.Check(); !r.OK() || r.Consumed != 100 {
		t.Fatal(r)
	}
}

// TestStopDuringDurableProduce: SIGTERM during a pipelined durable producer
// run: the broker exits 0, and after a restart (with the unknown sends
// resent) nothing acknowledged is lost and nothing is stored twice.
func TestStopDuringDurableProduce(t *testing.T) {
	b := newBrokerProc(t)
	b.start()
	b.requireFileStore()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := NewLedger()
	done := make(chan error, 1)
	go func() { done <- produce(ctx, b.URL(), "e2e", "term", 200000, 64, l) }()
	time.Sleep(time.Duration(50+rand.IntN(300)) * time.Millisecond)
	if code := b.stop(); code != 0 {
		t.Fatalf("SIGTERM under load: exit %d, want 0", code)
	}
	<-done
	b.start()
	resend(ctx, t, b.URL(), "e2e", l.Unknown(), l)
	if _, err := drain(ctx, b.URL(), "e2e", 2*time.Second, 0, l); err != nil {
		t.Fatalf("drain: %v", err)
	}
	r := l.Check()
	t.Log(r)
	if !r.OK() {
		t.Fatal(r)
	}
}
