package client

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// Outcome rules across a failover (docs/client-failover.md): a request
// whose meaning depends on a session's state (commit, rollback, a
// transacted send or ack) is answered only by the connection it was
// issued on; when that connection is lost it ends with
// ErrTransactionRolledBack or ErrUnknownOutcome, never with success from
// the next broker.

// failingOverBroker is a broker and a client connection to it with a
// failure listener; stop stops the broker and returns once the client
// heard EventFailingOver (it is then reconnecting: the broker is down).
type failingOverBroker struct {
	t      *testing.T
	b      *testBroker
	addr   string
	c      *Conn
	events chan Event
}

func newFailingOverBroker(t *testing.T) *failingOverBroker {
	b := newTestBroker(t)
	f := &failingOverBroker{t: t, b: b, addr: b.addr, events: make(chan Event, 16)}
	f.c = dial(t, b.url()+"?reconnectAttempts=-1&retryInterval=20&maxRetryInterval=50",
		WithFailureListener(func(e Event) { f.events <- e }))
	return f
}

func (f *failingOverBroker) await(kind EventKind) {
	f.t.Helper()
	ctx := testCtx(f.t)
	for {
		select {
		case e := <-f.events:
			if e.Kind == kind {
				return
			}
			if e.Kind == EventFailed {
				f.t.Fatalf("client gave up: %v", e.Err)
			}
		case <-ctx.Done():
			f.t.Fatalf("no %v event", kind)
		}
	}
}

// stop stops the broker and waits until the client is failing over.
func (f *failingOverBroker) stop() {
	f.t.Helper()
	f.b.stop()
	f.await(EventFailingOver)
}

// start starts the broker again on its address.
func (f *failingOverBroker) start() { f.b.start(f.addr) }

// whileFailingOver runs call on another goroutine while the broker is
// down and the client is failing over. If call waits for a connection (the
// hook in transportFor says so), the broker is started so the wait can end
// and call can be answered by the restarted broker; else the broker is
// started once call returned. It returns call's error; the client has
// failed over when it returns.
func (f *failingOverBroker) whileFailingOver(call func() error) error {
	f.t.Helper()
	waiting := make(chan struct{})
	var once sync.Once
	testHookWaitTransport = func() { once.Do(func() { close(waiting) }) }
	defer func() { testHookWaitTransport = nil }()
	res := make(chan error, 1)
	go func() { res <- call() }()
	ctx := testCtx(f.t)
	var err error
	select {
	case err = <-res:
		f.start()
	case <-waiting:
		f.start()
		select {
		case err = <-res:
		case <-ctx.Done():
			f.t.Fatal("call did not return after the broker started")
		}
	case <-ctx.Done():
		f.t.Fatal("call neither returned nor waited for a connection")
	}
	f.await(EventFailedOver)
	return err
}

// expectQueue checks on a fresh connection that queue holds exactly the
// messages with bodies want (in any order): it receives and acks as many
// as want has, then expects no more.
func expectQueue(t *testing.T, url, queue string, want ...string) {
	t.Helper()
	c := dial(t, url)
	defer c.Close()
	k := consumer(t, session(t, c), Queue(queue))
	got := receiveN(t, k, len(want))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("queue %s holds %q, want %q", queue, got, want)
	}
	expectEmpty(t, k)
}

// TestCommitWhileFailingOver is issue 21's proven hole: a transaction has
// work (a send, or an ack), the broker dies, and Commit is called while the
// client fails over. The new broker's fresh session must never answer it:
// Commit returns ErrTransactionRolledBack, nothing of the transaction is
// stored, its acked message comes back, and the session works afterwards.
func TestCommitWhileFailingOver(t *testing.T) {
	t.Run("send", func(t *testing.T) {
		f := newFailingOverBroker(t)
		tx := session(t, f.c, Transacted())
		p := tx.CreateProducer(Queue("cwf"))
		ctx := testCtx(t)
		if err := p.Send(ctx, &Message{Body: []byte("lost")}); err != nil {
			t.Fatal(err)
		}
		f.stop()
		err := f.whileFailingOver(func() error { return tx.Commit(ctx) })
		if !errors.Is(err, ErrTransactionRolledBack) {
			t.Fatalf("commit while failing over: %v, want ErrTransactionRolledBack", err)
		}
		if err := p.Send(ctx, &Message{Body: []byte("kept")}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit of the redone transaction: %v", err)
		}
		expectQueue(t, f.b.url(), "cwf", "kept")
	})
	t.Run("ack", func(t *testing.T) {
		f := newFailingOverBroker(t)
		ctx := testCtx(t)
		if err := session(t, f.c).CreateProducer(Queue("cwfa")).Send(ctx, &Message{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
		tx := session(t, f.c, Transacted())
		k := consumer(t, tx, Queue("cwfa"))
		m, err := k.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Ack(ctx, m); err != nil { // in the transaction: answered at once
			t.Fatal(err)
		}
		f.stop()
		err = f.whileFailingOver(func() error { return tx.Commit(ctx) })
		if !errors.Is(err, ErrTransactionRolledBack) {
			t.Fatalf("commit while failing over: %v, want ErrTransactionRolledBack", err)
		}
		// the ack was lost with the transaction: the message comes back
		m, err = k.Receive(ctx)
		if err != nil || string(m.Body) != "m" {
			t.Fatalf("redelivery after the rolled back commit: %v %v", m, err)
		}
		if err := k.Ack(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit of the redone transaction: %v", err)
		}
		if err := k.Close(ctx); err != nil {
			t.Fatal(err)
		}
		expectQueue(t, f.b.url(), "cwfa")
	})
}

// TestRollbackWhileFailingOver: Rollback of a transaction whose connection
// was lost returns nil (the broker discards a session's transaction when
// its connection ends, so it is rolled back) without the new broker's
// answer standing for it; the acked message is redelivered and nothing of
// the transaction is stored.
func TestRollbackWhileFailingOver(t *testing.T) {
	f := newFailingOverBroker(t)
	ctx := testCtx(t)
	if err := session(t, f.c).CreateProducer(Queue("rwf")).Send(ctx, &Message{Body: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	tx := session(t, f.c, Transacted())
	k := consumer(t, tx, Queue("rwf"))
	p := tx.CreateProducer(Queue("rwf-out"))
	m, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, &Message{Body: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	f.stop()
	if err := f.whileFailingOver(func() error { return tx.Rollback(ctx) }); err != nil {
		t.Fatalf("rollback while failing over: %v", err)
	}
	m, err = k.Receive(ctx)
	if err != nil || string(m.Body) != "m" {
		t.Fatalf("redelivery after rollback: %v %v", m, err)
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, &Message{Body: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit after rollback: %v", err)
	}
	if err := k.Close(ctx); err != nil {
		t.Fatal(err)
	}
	expectQueue(t, f.b.url(), "rwf-out", "kept")
	expectQueue(t, f.b.url(), "rwf")
}

// killBeforeSend makes the transport die just before the client hands it
// the first frame of kind op ("commit", "send"), and waits until the
// client noticed (so the transport refuses the frame: errTransportDead).
func killBeforeSend(t *testing.T, f *failingOverBroker, op string) {
	var once sync.Once
	testHookSend = func(o string, tr *transport) {
		if o != op {
			return
		}
		once.Do(func() {
			tr.fail(errors.New("test: connection lost before the " + op))
			f.await(EventFailingOver)
		})
	}
	t.Cleanup(func() { testHookSend = nil })
}

// TestCommitNotSentIsNotRetried: the connection dies between Commit
// choosing it and handing it the frame, so the commit is never sent. It
// must not be retried on the next connection (whose fresh session would
// answer OK for an empty transaction): nothing was committed.
func TestCommitNotSentIsNotRetried(t *testing.T) {
	f := newFailingOverBroker(t)
	tx := session(t, f.c, Transacted())
	p := tx.CreateProducer(Queue("cns"))
	ctx := testCtx(t)
	if err := p.Send(ctx, &Message{Body: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	killBeforeSend(t, f, "commit")
	if err := tx.Commit(ctx); !errors.Is(err, ErrTransactionRolledBack) {
		t.Fatalf("commit on a dead connection: %v, want ErrTransactionRolledBack", err)
	}
	f.await(EventFailedOver)
	if err := p.Send(ctx, &Message{Body: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	expectQueue(t, f.b.url(), "cns", "kept")
}

// TestTransactedSendAcrossFailover: a transacted send is never resent, or
// sent for the first time, into the next broker's fresh transaction when
// the transaction already has work on the lost connection: it fails with
// ErrTransactionRolledBack, and so does the commit. A send that is the
// transaction's first work and was never sent may go to the next
// connection: it starts the transaction there.
func TestTransactedSendAcrossFailover(t *testing.T) {
	t.Run("while failing over", func(t *testing.T) {
		f := newFailingOverBroker(t)
		tx := session(t, f.c, Transacted())
		p := tx.CreateProducer(Queue("tsf"))
		ctx := testCtx(t)
		if err := p.Send(ctx, &Message{Body: []byte("a")}); err != nil {
			t.Fatal(err)
		}
		f.stop()
		err := f.whileFailingOver(func() error { return p.Send(ctx, &Message{Body: []byte("b")}) })
		if !errors.Is(err, ErrTransactionRolledBack) {
			t.Fatalf("transacted send after its transaction's connection was lost: %v, want ErrTransactionRolledBack", err)
		}
		if err := tx.Commit(ctx); !errors.Is(err, ErrTransactionRolledBack) {
			t.Fatalf("commit: %v, want ErrTransactionRolledBack", err)
		}
		expectQueue(t, f.b.url(), "tsf")
	})
	t.Run("not sent, with work", func(t *testing.T) {
		f := newFailingOverBroker(t)
		tx := session(t, f.c, Transacted())
		p := tx.CreateProducer(Queue("tsn"))
		ctx := testCtx(t)
		if err := p.Send(ctx, &Message{Body: []byte("a")}); err != nil {
			t.Fatal(err)
		}
		killBeforeSend(t, f, "send")
		if err := p.Send(ctx, &Message{Body: []byte("b")}); !errors.Is(err, ErrTransactionRolledBack) {
			t.Fatalf("transacted send on a dead connection: %v, want ErrTransactionRolledBack", err)
		}
		f.await(EventFailedOver)
		if err := tx.Commit(ctx); !errors.Is(err, ErrTransactionRolledBack) {
			t.Fatalf("commit: %v, want ErrTransactionRolledBack", err)
		}
		expectQueue(t, f.b.url(), "tsn")
	})
	t.Run("not sent, first work", func(t *testing.T) {
		f := newFailingOverBroker(t)
		tx := session(t, f.c, Transacted())
		p := tx.CreateProducer(Queue("tsw"))
		ctx := testCtx(t)
		killBeforeSend(t, f, "send")
		if err := p.Send(ctx, &Message{Body: []byte("a")}); err != nil {
			t.Fatalf("first send of a transaction, not sent on the dead connection: %v", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		expectQueue(t, f.b.url(), "tsw", "a")
	})
}

// TestAckAfterFailoverInLostTransaction: a transaction lost its work (a
// send) with its connection; after the failover the application acks a
// message the new broker delivered, in the same transaction. The commit
// must not confirm that partial transaction: it rolls it back on the new
// connection and returns ErrTransactionRolledBack, and the acked message
// comes back (the rollback returns it to its queue).
func TestAckAfterFailoverInLostTransaction(t *testing.T) {
	f := newFailingOverBroker(t)
	ctx := testCtx(t)
	tx := session(t, f.c, Transacted())
	if err := tx.CreateProducer(Queue("alt-out")).Send(ctx, &Message{Body: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	f.stop()
	f.start()
	f.await(EventFailedOver)
	if err := session(t, f.c).CreateProducer(Queue("alt")).Send(ctx, &Message{Body: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	k := consumer(t, tx, Queue("alt"))
	m, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, ErrTransactionRolledBack) {
		t.Fatalf("commit of a transaction that lost work: %v, want ErrTransactionRolledBack", err)
	}
	m, err = k.Receive(ctx)
	if err != nil || string(m.Body) != "m" {
		t.Fatalf("redelivery after the rolled back commit: %v %v", m, err)
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(ctx); err != nil {
		t.Fatal(err)
	}
	expectQueue(t, f.b.url(), "alt")
	expectQueue(t, f.b.url(), "alt-out")
}

// TestCommitInFlightWhenConnectionLost: the broker takes the commit and the
// connection ends before its answer. The commit may have happened, so the
// outcome is unknown, also when the client fails over to another broker
// whose fresh session would answer a resent commit, and it is reported
// while the client is still failing over (no broker to go to yet), not
// when the failover ends.
func TestCommitInFlightWhenConnectionLost(t *testing.T) {
	// commitDropper is a broker that takes a transacted send and drops the
	// connection on the commit.
	commitDropper := func(t *testing.T) string {
		return fakeServer(t, func(nc net.Conn, dec *wire.Decoder) {
			welcome(nc)
			for {
				h, err := dec.Next()
				if err != nil {
					return
				}
				switch h.Type {
				case wire.TypeCreateSession:
					write(nc, h.Corr, &wire.Result{})
				case wire.TypeSend:
					write(nc, h.Corr, &wire.SendResult{})
				case wire.TypeCommit:
					return // the connection ends with the commit unanswered
				}
			}
		})
	}
	commit := func(t *testing.T, url string) *Session {
		c := dial(t, url)
		tx := session(t, c, Transacted())
		ctx := testCtx(t)
		if err := tx.CreateProducer(Queue("cif")).Send(ctx, &Message{Body: []byte("maybe")}); err != nil {
			t.Fatal(err)
		}
		err := tx.Commit(ctx)
		if !errors.Is(err, ErrUnknownOutcome) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("commit lost in flight: %v, want ErrUnknownOutcome (not a timeout)", err)
		}
		return tx
	}
	t.Run("next broker up", func(t *testing.T) {
		b := newTestBroker(t)
		tx := commit(t, "("+commitDropper(t)+","+b.url()+")?ha=true&retryInterval=10")
		ctx := testCtx(t)
		if err := tx.CreateProducer(Queue("cif")).Send(ctx, &Message{Body: []byte("next")}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit on the next broker: %v", err)
		}
		expectQueue(t, b.url(), "cif", "next")
	})
	t.Run("no broker yet", func(t *testing.T) {
		commit(t, commitDropper(t)+"?reconnectAttempts=-1&retryInterval=10")
	})
}

// TestAckWhileFailingOver: a (non-transacted) ack of a message delivered
// on the lost connection, made while the client fails over, is never
// confirmed by the next broker, which did not deliver that message: it is
// refused at once (ErrStaleDelivery: never sent), or reported with an
// unknown outcome if it was in flight, without waiting for the failover to
// end; the message is redelivered.
func TestAckWhileFailingOver(t *testing.T) {
	f := newFailingOverBroker(t)
	ctx := testCtx(t)
	s := session(t, f.c)
	if err := s.CreateProducer(Queue("awf")).Send(ctx, &Message{Body: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	k := consumer(t, s, Queue("awf"))
	m, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost := f.c.cur.Load()
	f.stop()
	lost.wg.Wait() // its writer has stopped: the ack finds it failed
	err = f.whileFailingOver(func() error { return k.Ack(testCtx(t), m) })
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ack while failing over waited for the failover: %v", err)
	}
	if !errors.Is(err, ErrStaleDelivery) && !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("ack while failing over: %v, want ErrStaleDelivery or ErrUnknownOutcome", err)
	}
	m, err = k.Receive(ctx)
	if err != nil || string(m.Body) != "m" {
		t.Fatalf("redelivery: %v %v", m, err)
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestDialWaitsForHAPairInTransition: with ha=true, a pass over the URL
// where a broker answers that it is not the live (a backup waiting during
// a failover) does not count against initialConnectAttempts: the client
// keeps waiting for the live. A pass where nothing answers does count.
func TestDialWaitsForHAPairInTransition(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var answered atomic.Int32
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				if _, _, err := wire.NewDecoder(nc).Read(); err != nil {
					return
				}
				b, _ := wire.AppendFrame(nil, 0, &wire.Error{Code: wire.CodeUnavailable, Message: "backup waiting"})
				nc.Write(b)
				answered.Add(1)
			}()
		}
	}()
	url := "(tcp://" + ln.Addr().String() + ")?ha=true&retryInterval=20&maxRetryInterval=20&initialConnectAttempts=1"
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, url)
	if err == nil {
		t.Fatal("Dial succeeded against a broker that only refuses")
	}
	if n := answered.Load(); n < 3 {
		t.Fatalf("Dial gave up after %d refusals (%v): a waiting HA pair must not use up initialConnectAttempts", n, err)
	}
	// Without ha=true the same refusal counts: one pass, then the error.
	answered.Store(0)
	_, err = Dial(context.Background(), "tcp://"+ln.Addr().String()+"?initialConnectAttempts=1")
	for i := 0; i < 100 && answered.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond) // the refusal is counted after it is written
	}
	if err == nil || answered.Load() != 1 {
		t.Fatalf("plain URL: Dial returned %v after %d refusals, want an error after one", err, answered.Load())
	}
}
