package client

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestConnectionLostWhileRestoring: the connection being restored dies
// after the in-flight sends were resent on it and before it is installed.
// Its reader then finds it not current and starts no failover; the
// restore must notice and go on to the next attempt, never install the
// dead connection (later sends would wait for a replacement for ever).
func TestConnectionLostWhileRestoring(t *testing.T) {
	b := newTestBroker(t)
	c := dial(t, "tcp://"+b.addr+"?reconnectAttempts=-1&retryInterval=20&maxRetryInterval=100")
	s := session(t, c)
	p := s.CreateProducer(Queue("restore-lost"))
	ctx := testCtx(t)
	if err := p.Send(ctx, &Message{Body: []byte("before"), DuplicateID: "before"}); err != nil {
		t.Fatal(err)
	}

	var once sync.Once
	killed := make(chan *transport, 1)
	testHookResent = func(tr *transport) {
		once.Do(func() {
			tr.fail(errors.New("test: lost while restoring"))
			// wait for its reader to report the loss (it is not current)
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				c.mu.Lock()
				lost := tr.lost
				c.mu.Unlock()
				if lost {
					break
				}
			}
			killed <- tr
		})
	}
	t.Cleanup(func() { testHookResent = nil })

	c.cur.Load().fail(errors.New("test: connection lost"))
	var dead *transport
	select {
	case dead = <-killed:
	case <-ctx.Done():
		t.Fatal("no reconnection attempt reached the resends")
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := p.Send(sctx, &Message{Body: []byte("after"), DuplicateID: "after"}); err != nil {
		t.Fatalf("send after the restored connection died: %v", err)
	}
	if cur := c.cur.Load(); cur == dead {
		t.Fatal("the connection that died while being restored was installed")
	}
}
