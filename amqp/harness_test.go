package amqp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
)

// testBroker is a server on memory journals with an AMQP listener that
// serves every connection with serve (the acceptor's protocol detection
// is not involved).
type testBroker struct {
	t     testing.TB
	srv   *server.Server
	ln    net.Listener
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	once  sync.Once
	users map[string]string
	idle  time.Duration
	// writeTimeout is the connections' write timeout (0: the default).
	writeTimeout time.Duration
	// anycastPrefix and multicastPrefix are the acceptor's parameters.
	anycastPrefix, multicastPrefix string
}

func newTestBroker(t testing.TB, opts server.Options, users map[string]string) *testBroker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	opts.Messages, opts.Bindings = journal.NewMemory(), journal.NewMemory()
	srv := server.New(opts)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &testBroker{t: t, srv: srv, ln: ln, ctx: ctx, stop: cancel, users: users, idle: time.Minute}
	t.Cleanup(b.close)
	return b
}

// addr starts accepting (once: a test sets the broker's fields before
// its first connection) and returns the listening address.
func (b *testBroker) addr() string {
	b.once.Do(func() {
		b.wg.Add(1)
		go b.accept()
	})
	return b.ln.Addr().String()
}

func testLogger() *slog.Logger {
	if os.Getenv("AMQP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (b *testBroker) login(user, password string) error {
	if len(b.users) == 0 {
		return nil
	}
	if p, ok := b.users[user]; ok && p == password {
		return nil
	}
	return errors.New("wrong user name or password")
}

func (b *testBroker) anonymous() bool { return len(b.users) == 0 }

func (b *testBroker) accept() {
	defer b.wg.Done()
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer nc.Close()
			serve(b.ctx, config{srv: b.srv, login: b.login, anonymous: b.anonymous, log: b.srv.Options().Logger,
				idleTimeout: b.idle, handshake: 5 * time.Second, writeTimeout: b.writeTimeout,
				anycastPrefix: b.anycastPrefix, multicastPrefix: b.multicastPrefix}, nc, nil)
		}()
	}
}

func (b *testBroker) close() {
	b.stop()
	b.ln.Close()
	b.wg.Wait()
	b.srv.Close()
}

func (b *testBroker) url() string { return "amqp://" + b.addr() }

// dial connects go-amqp to the broker.
func (b *testBroker) dial(t testing.TB, opts *goamqp.ConnOptions) *goamqp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := goamqp.Dial(ctx, b.url(), opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func isAMQPError(err error, cond goamqp.ErrCond) bool {
	var ae *goamqp.Error
	if errors.As(err, &ae) && ae.Condition == cond {
		return true
	}
	var le *goamqp.LinkError
	if errors.As(err, &le) && le.RemoteErr != nil && le.RemoteErr.Condition == cond {
		return true
	}
	var ce *goamqp.ConnError
	if errors.As(err, &ce) && ce.RemoteErr != nil && ce.RemoteErr.Condition == cond {
		return true
	}
	return false
}

// dialRefuser connects go-amqp to a listener that refuses every
// connection the way a broker that is not live does.
func dialRefuser(t testing.TB, reason string) (*goamqp.Conn, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		serve(context.Background(), config{login: func(string, string) error { return errors.New("refused") },
			anonymous: func() bool { return false }, log: testLogger(),
			handshake: 5 * time.Second, refuse: reason}, nc, nil)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return goamqp.Dial(ctx, "amqp://"+ln.Addr().String(), &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
}
