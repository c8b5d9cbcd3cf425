package adversary

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// floodNeverReading opens conns connections that send Hello and then the
// frames next returns, as fast as the broker takes them, never reading an
// answer; a connection the broker closes is opened again. ready closes
// once every connection sent 4 MiB or found the broker not reading.
func floodNeverReading(t *testing.T, b *broker, a *attack, conns int, next func(corr uint64) []byte) (ready chan struct{}) {
	ready = make(chan struct{})
	var pending sync.WaitGroup
	pending.Add(conns)
	go func() { pending.Wait(); close(ready) }()
	h := hello(t, "flood")
	var reopened atomic.Int64
	a.goN(conns, func(ctx context.Context, i int) {
		first := true
		defer func() {
			if first {
				pending.Done()
			}
		}()
		corr := uint64(1)
		for ctx.Err() == nil {
			nc, err := net.Dial("tcp", b.addr)
			if err != nil {
				continue
			}
			if !writeAll(ctx, nc, h) {
				nc.Close()
				continue
			}
			sent := 0
			for ctx.Err() == nil {
				var batch []byte
				for len(batch) < 64*kiB {
					corr++
					batch = append(batch, next(corr)...)
				}
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				n, err := nc.Write(batch)
				sent += n
				if first && (sent >= 4*miB || err != nil) {
					first = false
					pending.Done()
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue // the broker stopped reading: keep pushing
				}
				if err != nil {
					reopened.Add(1)
					break // closed by the broker: open another
				}
			}
			nc.Close()
		}
	})
	t.Cleanup(func() { t.Logf("flood: connections closed by the broker and opened again: %d", reopened.Load()) })
	return ready
}

// Hello, then Pings as fast as possible, never reading the Pongs: the
// broker grew to 3.5-4.4 GB in 15-20 s and died of out of memory.
func TestPingFloodNeverReading(t *testing.T) {
	b := startBroker(t)
	g := b.goodClient(t)
	w := b.watch(bounds{RSS: 128 * miB, Log: 64 * kiB, LogPerSec: 2 * kiB})
	a := newAttack(t)
	ping := func(corr uint64) []byte { return frame(t, corr, &wire.Ping{}) }
	<-floodNeverReading(t, b, a, 4, ping)
	underAttack(t, b, w, g)
	waitWriteTimeouts(t, b)
}

// Sends to a session that does not exist, never reading the NotFound
// answers: 1.7 GB.
func TestSendsToMissingSessionNeverReading(t *testing.T) {
	b := startBroker(t)
	g := b.goodClient(t)
	w := b.watch(bounds{RSS: 128 * miB, Log: 64 * kiB, LogPerSec: 2 * kiB})
	a := newAttack(t)
	body := bytes.Repeat([]byte("x"), 64)
	send := func(corr uint64) []byte {
		return frame(t, corr, &wire.Send{Session: 999, Message: wire.Message{Address: "nowhere", Body: body}})
	}
	<-floodNeverReading(t, b, a, 4, send)
	underAttack(t, b, w, g)
	waitWriteTimeouts(t, b)
}

// waitWriteTimeouts checks, in a run longer than the write timeout, that
// the broker cut off the clients that do not read (the metric counts it).
func waitWriteTimeouts(t *testing.T, b *broker) {
	t.Helper()
	if *attackFor <= server.DefaultWriteTimeout {
		return // a short run ends before the timeout
	}
	deadline := time.Now().Add(liveness())
	for b.metric(t, "tandem_connections_write_timeout_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no connection closed for its write timeout (%v) after %v of attack", server.DefaultWriteTimeout, liveness())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(b.p.Log(), "closing connection: the client does not read") {
		t.Fatal("a write timeout without its log line")
	}
}

// A consumer with credit 2^32-1 on a 100 MiB queue that never reads its
// deliveries: 550 MB. The queue itself is in memory, and with 100 MiB live
// the Go GC lets up to as much garbage accumulate (GOGC=100) from the
// well-behaved client's round trips: the attack may add at most 100 MiB of
// that headroom and 32 MiB of its own to the peak after the queue was
// filled (without the bounds, the deliveries copied into the two
// connections alone are another 100 MiB, live).
func TestHugeCreditConsumerNeverReading(t *testing.T) {
	b := startBroker(t)
	fillQueue(t, b, "big", 100, miB)
	_, filled, err := b.memory()
	if err != nil {
		t.Fatal(err)
	}
	g := b.goodClient(t)
	w := b.watch(bounds{RSS: filled + 132*miB, Log: 64 * kiB, LogPerSec: 2 * kiB})
	a := newAttack(t)
	const conns = 2
	var started sync.WaitGroup
	started.Add(conns)
	a.goN(conns, func(ctx context.Context, i int) {
		nc, err := net.Dial("tcp", b.addr)
		if err != nil {
			started.Done()
			t.Errorf("dial: %v", err)
			return
		}
		defer nc.Close()
		var req []byte
		req = append(req, hello(t, "greedy")...)
		req = append(req, frame(t, 2, &wire.CreateSession{Session: 1})...)
		req = append(req, frame(t, 3, &wire.CreateConsumer{Session: 1, Consumer: 1, Queue: "big",
			Routing: wire.RoutingAnycast, InitialCredit: 1<<32 - 1})...)
		ok := writeAll(ctx, nc, req)
		started.Done()
		if !ok {
			return
		}
		<-ctx.Done() // never read
	})
	started.Wait()
	underAttack(t, b, w, g)
}

// fillQueue sends n non-durable messages of size bytes to queue q.
func fillQueue(t *testing.T, b *broker, q string, n, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), liveness())
	defer cancel()
	conn, err := client.Dial(ctx, b.url(), client.WithClientID("filler"), client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := sess.CreateProducer(client.Queue(q), client.NonDurable())
	body := bytes.Repeat([]byte("b"), size)
	for i := 0; i < n; i++ {
		if err := p.Send(ctx, &client.Message{Body: body}); err != nil {
			t.Fatalf("fill %s: message %d: %v", q, i, err)
		}
	}
}

// 10 500 idle connections, half of them after a Hello, to a broker whose
// open-file limit is 4096: they exhausted its file descriptors (accept4:
// too many open files), after which well-behaved producers and the
// management port failed. Connections over the limit are refused; the
// well-behaved client and /status keep working.
func TestIdleConnections(t *testing.T) {
	want := 10500
	if lim := raiseFileLimit(t); lim-500 < want {
		want = lim - 500
		t.Logf("open-file limit %d: opening %d connections", lim, want)
	}
	b := startBrokerFiles(t, 4096)
	if !strings.Contains(b.p.Log(), "limits:      4096 open files") {
		t.Fatalf("the banner does not show the open-file limit:\n%s", b.p.Log())
	}
	g := b.goodClient(t)
	w := b.watch(bounds{RSS: 256 * miB, Log: 64 * kiB, LogPerSec: 2 * kiB})
	a := newAttack(t)
	h := hello(t, "idle")
	var mu sync.Mutex
	var held []net.Conn
	var failed atomic.Int64
	const dialers = 8
	a.goN(dialers, func(ctx context.Context, i int) {
		for j := i; j < want && ctx.Err() == nil; j += dialers {
			nc, err := net.DialTimeout("tcp", b.addr, 10*time.Second)
			if err != nil {
				failed.Add(1)
				continue
			}
			if j%2 == 0 {
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				nc.Write(h)
			}
			mu.Lock()
			held = append(held, nc)
			mu.Unlock()
		}
	})
	a.wg.Wait() // all opened (or refused)
	t.Cleanup(func() {
		for _, nc := range held {
			nc.Close()
		}
	})
	t.Logf("opened %d connections, %d dials failed", len(held), failed.Load())
	ctx, cancel := context.WithTimeout(context.Background(), liveness())
	defer cancel()
	st, err := b.status(ctx)
	if err != nil {
		t.Fatalf("management HTTP with %d connections open: %v", len(held), err)
	}
	t.Logf("/status: %v connections", st["connections"])
	underAttack(t, b, w, g)
	if n := b.metric(t, "tandem_connections_refused_total"); n == 0 {
		t.Fatalf("%d connections opened and none refused (tandem_connections_refused_total 0)", len(held))
	}
}

// 500 connections announcing a frame of the maximum size (2 MiB) and
// stalling after a few bytes, half before their Hello: the broker reserved
// 1.1 GB (heap, not yet touched: bounded here as Go heap in use).
func TestStalledLargeFrames(t *testing.T) {
	b := startBroker(t)
	g := b.goodClient(t)
	w := b.watch(bounds{RSS: 128 * miB, Heap: 64 * miB, Log: 64 * kiB, LogPerSec: 2 * kiB})
	a := newAttack(t)
	announce := binary.BigEndian.AppendUint32(nil, wire.MaxFrameSize-4)
	announce = append(announce, wire.Version, byte(wire.TypeSend), 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3)
	const conns = 500
	var started sync.WaitGroup
	started.Add(conns)
	a.goN(conns, func(ctx context.Context, i int) {
		nc, err := net.Dial("tcp", b.addr)
		if err != nil {
			started.Done()
			return
		}
		defer nc.Close()
		req := announce
		if i%2 == 0 {
			req = append(hello(t, fmt.Sprintf("stall-%d", i)), announce...)
		}
		writeAll(ctx, nc, req)
		started.Done()
		<-ctx.Done()
	})
	started.Wait()
	underAttack(t, b, w, g)
}

// Connections with a 2 MB client ID, and with a 15 KiB one that then
// break the protocol: every rejection logged ~480 bytes plus the client ID
// on every line of its connection (544 MB sent made 1.09 GB of log in
// 5 s). The log may grow by 2 KiB per second of attack.
func TestLongClientIDLogFlood(t *testing.T) {
	b := startBroker(t)
	g := b.goodClient(t)
	w := b.watch(bounds{RSS: 128 * miB, Heap: 64 * miB, Log: 64 * kiB, LogPerSec: 2 * kiB})
	a := newAttack(t)
	huge := hello(t, string(bytes.Repeat([]byte("I"), 2_000_000)))
	long := append(hello(t, string(bytes.Repeat([]byte("L"), 15*kiB))), frame(t, 2, &wire.Welcome{Version: 1})...) // a server frame: protocol error
	var sent atomic.Int64
	a.goN(4, func(ctx context.Context, i int) {
		req := huge
		if i%2 == 1 {
			req = long
		}
		for ctx.Err() == nil {
			nc, err := net.Dial("tcp", b.addr)
			if err != nil {
				continue
			}
			writeAll(ctx, nc, req) // the broker may close it before the end
			sent.Add(1)
			nc.Close()
		}
	})
	for sent.Load() < 8 {
		if p := w.failed(); p != "" {
			t.Fatal(p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	underAttack(t, b, w, g)
	t.Logf("connections with a long client ID: %d", sent.Load())
}
