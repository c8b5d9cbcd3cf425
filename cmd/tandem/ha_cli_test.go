package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// movableBroker is an in-process broker on memory stores that can stop and
// start again on another port with the same data (a backup taking over a
// shared store).
type movableBroker struct {
	t      *testing.T
	ms, bs *journal.MemoryStore
	mj, bj *journal.Memory
	s      *server.Server
	a      *server.Acceptor
}

func (b *movableBroker) start(addr string) {
	b.mj, b.bj = b.ms.Open(), b.bs.Open()
	b.s = server.New(server.Options{Messages: b.mj, Bindings: b.bj, Logger: slog.New(slog.DiscardHandler)})
	if err := b.s.Start(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	a, err := b.s.Listen(addr, server.NetOptions{})
	if err != nil {
		b.t.Fatal(err)
	}
	b.a = a
}

func (b *movableBroker) stop() {
	if b.s == nil {
		return
	}
	b.a.Close(wire.CodeShuttingDown, "moving")
	b.s.Close()
	b.mj.Close()
	b.bj.Close()
	b.s = nil
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestProducerConsumerHAFailover: a producer and then a consumer with an HA
// URL while the broker moves to the "backup" address mid-run. The producer
// must exit 0 with every ID acknowledged; the consumer must see each ID,
// twice only when an earlier line said its ack outcome was unknown.
func TestProducerConsumerHAFailover(t *testing.T) {
	primary, backup := freeAddr(t), freeAddr(t)
	b := &movableBroker{t: t, ms: journal.NewMemoryStore(), bs: journal.NewMemoryStore()}
	b.start(primary)
	t.Cleanup(func() { b.stop() })
	url := fmt.Sprintf("(tcp://%s,tcp://%s)?ha=true&retryInterval=20&maxRetryInterval=200", primary, backup)
	dir := t.TempDir()
	pids, cids := filepath.Join(dir, "p.ids"), filepath.Join(dir, "c.ids")
	const n = 4000

	move := func(to string) chan struct{} {
		moved := make(chan struct{})
		go func() {
			time.Sleep(20 * time.Millisecond)
			b.stop()
			b.start(to)
			close(moved)
		}()
		return moved
	}
	moved := move(backup)
	code := runProducer([]string{"--url", url, "--destination", "queue://ha", "--count", fmt.Sprint(n),
		"--window", "32", "--size", "64", "--id-prefix", "H", "--ids-out", pids})
	<-moved
	if code != exitOK {
		t.Fatalf("producer exit %d", code)
	}
	p := readLines(t, pids)
	if len(p) != n || !uniq(p) {
		t.Fatalf("producer wrote %d lines (unique: %v), want %d unique", len(p), uniq(p), n)
	}

	moved = move(primary) // fail back during the consume
	code = runConsumer([]string{"--url", url, "--destination", "queue://ha", "--idle", "2s", "--credit", "50", "--ids-out", cids})
	<-moved
	if code != exitOK {
		t.Fatalf("consumer exit %d", code)
	}
	seen := map[string]int{}
	unknown := map[string]bool{}
	for _, line := range readLines(t, cids) {
		id, q := line, false
		if len(line) > 2 && line[len(line)-2:] == " ?" {
			id, q = line[:len(line)-2], true
		}
		if q {
			unknown[id] = true
		}
		seen[id]++
	}
	for _, id := range p {
		if seen[id] == 0 {
			t.Errorf("lost: %s acknowledged but never consumed", id)
		}
		if seen[id] > 1 && !unknown[id] {
			t.Errorf("duplicated: %s consumed %d times without an unknown outcome", id, seen[id])
		}
		delete(seen, id)
	}
	for id := range seen {
		t.Errorf("unexpected: %s consumed, never acknowledged to the producer", id)
	}
}

func uniq(lines []string) bool {
	for i := 1; i < len(lines); i++ {
		if lines[i] == lines[i-1] {
			return false
		}
	}
	return true
}
