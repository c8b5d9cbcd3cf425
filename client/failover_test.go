package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestFailoverResendsInFlight runs an async producer while the broker is
// stopped and a "backup" on another port takes over its store. Every send
// must end acknowledged (resent with its duplicate ID), and the queue must
// hold each message exactly once.
func TestFailoverResendsInFlight(t *testing.T) {
	for round := 0; round < 3; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) { failoverRound(t, round) })
	}
}

func failoverRound(t *testing.T, round int) {
	b := newTestBroker(t)
	primary := b.addr
	// reserve the backup's port
	tmp := newTestBroker(t)
	backup := tmp.addr
	tmp.stop()

	var evMu sync.Mutex
	var events []EventKind
	url := fmt.Sprintf("(tcp://%s,tcp://%s)?ha=true&retryInterval=20&maxRetryInterval=100", primary, backup)
	c := dial(t, url, WithFailureListener(func(e Event) {
		evMu.Lock()
		events = append(events, e.Kind)
		evMu.Unlock()
	}))
	s := session(t, c)
	p := s.CreateProducer(Queue("fo"), Window(32))
	ctx := testCtx(t)

	const n = 3000
	var mu sync.Mutex
	acked := map[string]int{}
	var failed []error
	var wg sync.WaitGroup
	switched := make(chan struct{})
	trigger := make(chan struct{})
	killAt := n/5 + round*n/4 // acknowledged sends before the switch
	go func() {
		<-trigger
		b.stop()
		b.start(backup)
		close(switched)
	}()
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("fo-%d", i)
		wg.Add(1)
		err := p.SendAsync(ctx, &Message{Body: []byte(id), DuplicateID: id}, func(err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err)
				return
			}
			acked[id]++
			if len(acked) == killAt {
				close(trigger)
			}
		})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	wg.Wait()
	<-switched
	if len(failed) > 0 {
		t.Fatalf("%d sends failed, first: %v", len(failed), failed[0])
	}
	if len(acked) != n {
		t.Fatalf("%d of %d acknowledged", len(acked), n)
	}
	for c.Addr() != backup && ctx.Err() == nil { // the last answers may precede the switch's end
		time.Sleep(time.Millisecond)
	}
	if c.Addr() != backup {
		t.Fatalf("connected to %s, want the backup %s", c.Addr(), backup)
	}
	// drain on a fresh connection: every message exactly once
	c2 := dial(t, "tcp://"+backup)
	k := consumer(t, session(t, c2), Queue("fo"), Credit(500))
	seen := map[string]int{}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for len(seen) < n {
		m, err := k.Receive(dctx)
		if err != nil {
			t.Fatalf("drained %d of %d: %v", len(seen), n, err)
		}
		seen[string(m.Body)]++
		if seen[string(m.Body)] > 1 {
			t.Fatalf("duplicate %s", m.Body)
		}
		if err := k.AckAsync(m, nil); err != nil {
			t.Fatal(err)
		}
	}
	expectEmpty(t, k)
	evMu.Lock()
	defer evMu.Unlock()
	if len(events) < 2 || events[0] != EventFailingOver || events[len(events)-1] != EventFailedOver {
		t.Fatalf("events %v", events)
	}
}

// TestFailoverTransactions: a transaction with work when the connection
// fails over is rolled back; the session stays usable.
func TestFailoverTransactions(t *testing.T) {
	b := newTestBroker(t)
	events := make(chan Event, 10)
	c := dial(t, b.url()+"?reconnectAttempts=-1&retryInterval=20", WithFailureListener(func(e Event) { events <- e }))
	tx := session(t, c, Transacted())
	p := tx.CreateProducer(Queue("ftx"))
	ctx := testCtx(t)
	if err := p.Send(ctx, &Message{Body: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	addr := b.addr
	b.stop()
	b.start(addr)
	for e := range events { // a commit sent before the loss is noticed would be ErrUnknownOutcome
		if e.Kind == EventFailedOver {
			break
		}
	}
	if err := tx.Commit(ctx); !errors.Is(err, ErrTransactionRolledBack) {
		t.Fatalf("commit after failover: %v, want ErrTransactionRolledBack", err)
	}
	if err := p.Send(ctx, &Message{Body: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	k := consumer(t, session(t, c), Queue("ftx"))
	if got := receiveN(t, k, 1); got[0] != "kept" {
		t.Fatalf("got %v", got)
	}
	expectEmpty(t, k)
}

// TestFailoverProduceAndConsume runs a producer and a consumer at once
// while the broker moves twice (to the backup address and back). Ledger
// check as RELIABILITY.md: every acknowledged send consumed (lost = 0),
// nothing unexpected, a second consumption only after an ack whose
// outcome was unknown or never sent.
func TestFailoverProduceAndConsume(t *testing.T) {
	b := newTestBroker(t)
	primary := b.addr
	tmp := newTestBroker(t)
	backup := tmp.addr
	tmp.stop()
	url := fmt.Sprintf("(tcp://%s,tcp://%s)?ha=true&retryInterval=20&maxRetryInterval=100", primary, backup)
	ctx := testCtx(t)
	const n = 3000

	var mu sync.Mutex
	acked := map[string]bool{}
	consumed := map[string]int{}
	unsure := map[string]bool{} // ack outcome unknown or ack not sent
	var sendErrs []error

	cp := dial(t, url)
	p := session(t, cp).CreateProducer(Queue("pc"), Window(16))
	cc := dial(t, url)
	k := consumer(t, session(t, cc), Queue("pc"), Credit(20))

	moves := make(chan struct{}, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the broker mover
		defer wg.Done()
		for _, to := range []string{backup, primary} {
			<-moves
			b.stop()
			b.start(to)
		}
	}()
	var sends sync.WaitGroup
	for i := 1; i <= n; i++ {
		id := fmt.Sprint("pc-", i)
		sends.Add(1)
		err := p.SendAsync(ctx, &Message{Body: []byte(id), DuplicateID: id}, func(err error) {
			defer sends.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				sendErrs = append(sendErrs, err)
				return
			}
			acked[id] = true
			if len(acked) == n/3 || len(acked) == 2*n/3 {
				moves <- struct{}{}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { sends.Wait(); close(done) }()

	// consume until every acknowledged ID was seen and the producer is done
	for {
		mu.Lock()
		complete := len(acked) == n && len(consumed) >= n
		mu.Unlock()
		if complete {
			// every send was acknowledged (its callback ran) and consumed:
			// the callbacks' sends.Done follow at once; wait for them
			// rather than for a message that will not come
			select {
			case <-done:
				goto drained
			case <-ctx.Done():
				t.Fatal("sends not done after every send was acknowledged")
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := k.Receive(rctx)
		cancel()
		if err != nil {
			mu.Lock()
			t.Fatalf("receive after %d consumed, %d acked: %v", len(consumed), len(acked), err)
		}
		id := string(m.Body)
		mu.Lock()
		consumed[id]++
		mu.Unlock()
		if err := k.AckAsync(m, func(err error) {
			if err != nil {
				mu.Lock()
				unsure[id] = true
				mu.Unlock()
			}
		}); err != nil {
			mu.Lock()
			unsure[id] = true
			mu.Unlock()
		}
	}
drained:
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(sendErrs) > 0 {
		t.Fatalf("%d sends failed: %v", len(sendErrs), sendErrs[0])
	}
	for id := range acked {
		if consumed[id] == 0 {
			t.Errorf("lost %s", id)
		}
		if consumed[id] > 1 && !unsure[id] {
			t.Errorf("duplicated %s (%d times) after a confirmed ack", id, consumed[id])
		}
	}
	for id := range consumed {
		if !acked[id] {
			t.Errorf("unexpected %s", id)
		}
	}
}
