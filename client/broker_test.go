package client

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// testBroker is a real in-process broker on memory journals that a test
// can stop and start again on the same store and port (a restart) or on
// another port (a backup taking over the shared store).
type testBroker struct {
	t      testing.TB
	ms, bs *journal.MemoryStore
	mj, bj *journal.Memory
	s      *server.Server
	acc    *server.Acceptor
	addr   string
	opts   server.NetOptions
}

func newTestBroker(t testing.TB) *testBroker {
	t.Helper()
	b := &testBroker{t: t}
	b.ms, b.bs = newStores()
	b.start("127.0.0.1:0")
	t.Cleanup(b.stop)
	return b
}

// start opens the store and serves on addr.
func (b *testBroker) start(addr string) {
	b.t.Helper()
	b.mj, b.bj = b.ms.Open(), b.bs.Open()
	b.s = server.New(server.Options{Messages: b.mj, Bindings: b.bj, Logger: slog.New(slog.DiscardHandler)})
	if err := b.s.Start(context.Background()); err != nil {
		b.t.Fatalf("broker start: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.t.Fatalf("broker listen: %v", err)
	}
	b.acc = b.s.Serve(ln, b.opts)
	b.addr = ln.Addr().String()
}

// stop closes the acceptor (clients are told CodeShuttingDown) and the
// broker, as a SIGTERM would.
func (b *testBroker) stop() {
	if b.s == nil {
		return
	}
	b.acc.Close(wire.CodeShuttingDown, "test stops the broker")
	b.s.Close()
	b.mj.Close()
	b.bj.Close()
	b.s = nil
}

func newStores() (messages, bindings *journal.MemoryStore) {
	return journal.NewMemoryStore(), journal.NewMemoryStore()
}

func (b *testBroker) url() string { return "tcp://" + b.addr }

// depth returns the number of messages in a queue.
func (b *testBroker) depth(name string) int {
	q, ok := b.s.Queue(name)
	if !ok {
		return 0
	}
	return int(q.Depth)
}
