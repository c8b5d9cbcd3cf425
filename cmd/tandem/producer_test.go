package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// memBroker starts an in-process broker on memory journals and returns its
// URL.
func memBroker(t *testing.T) string {
	t.Helper()
	mj, bj := journal.NewMemory(), journal.NewMemory()
	s := server.New(server.Options{Messages: mj, Bindings: bj, Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, err := s.Listen("127.0.0.1:0", server.NetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close(wire.CodeShuttingDown, "test over")
		s.Close()
		mj.Close()
		bj.Close()
	})
	return "tcp://" + a.Addr().String()
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	sort.Strings(lines)
	return lines
}

func TestProducerConsumerRoundTrip(t *testing.T) {
	url := memBroker(t)
	dir := t.TempDir()
	pids, cids := filepath.Join(dir, "p.ids"), filepath.Join(dir, "c.ids")
	if code := runProducer([]string{"--url", url, "--destination", "queue://rt", "--count", "300", "--id-prefix", "P",
		"--window", "16", "--size", "100", "--ids-out", pids}); code != exitOK {
		t.Fatalf("producer exit %d", code)
	}
	if code := runProducer([]string{"--url", url, "--destination", "queue://rt", "--count", "20", "--id-prefix", "Q",
		"--non-durable", "--rate", "1000"}); code != exitOK {
		t.Fatalf("non-durable producer exit %d", code)
	}
	if code := runConsumer([]string{"--url", url, "--destination", "queue://rt", "--count", "320", "--ids-out", cids}); code != exitOK {
		t.Fatalf("consumer exit %d", code)
	}
	p, c := readLines(t, pids), readLines(t, cids)
	if len(p) != 300 || p[0] != "P-1" {
		t.Fatalf("producer wrote %d IDs starting %q", len(p), p[0])
	}
	for i, id := range p {
		if c[i] != id {
			t.Fatalf("consumer line %d = %q, want %q", i, c[i], id)
		}
	}
	if len(c) != 320 || c[300] != "Q-1" {
		t.Fatalf("consumer wrote %d lines, line 300 %q", len(c), c[300])
	}
	// the queue is empty now: --idle ends the run with exit 0
	if code := runConsumer([]string{"--url", url, "--destination", "queue://rt", "--idle", "100ms"}); code != exitOK {
		t.Fatalf("idle consumer exit %d", code)
	}
	// --count on an empty queue with --idle: not all consumed, exit 2
	if code := runConsumer([]string{"--url", url, "--destination", "queue://rt", "--count", "1", "--idle", "100ms"}); code != exitFailed {
		t.Fatalf("consumer on empty queue with --count exit %d, want 2", code)
	}
}

func TestProducerConsumerUsage(t *testing.T) {
	tests := [][]string{
		{"--destination", "queue://q"},         // no count
		{"--count", "1"},                       // no destination
		{"--count", "1", "--destination", "q"}, // bad destination
		{"--count", "1", "--destination", "queue://q", "--url", "http://x:1"},
		{"--count", "1", "--destination", "queue://q", "--size", "99999999"},
		{"--count", "1", "--destination", "queue://q", "--window", "0"},
		{"--count", "1", "--destination", "queue://q", "extra"},
		{"--bogus"},
	}
	for _, args := range tests {
		if code := runProducer(args); code != exitCannot {
			t.Errorf("producer %q: exit %d, want 1", args, code)
		}
	}
	for _, args := range [][]string{{}, {"--destination", "x"}, {"--destination", "queue://q", "--count", "-1"}} {
		if code := runConsumer(args); code != exitCannot {
			t.Errorf("consumer %q: exit %d, want 1", args, code)
		}
	}
	// nothing listening: could not run, exit 1
	if code := runProducer([]string{"--url", "tcp://127.0.0.1:1", "--destination", "queue://q", "--count", "1"}); code != exitCannot {
		t.Errorf("producer without broker: exit %d, want 1", code)
	}
}

// TestConsumeSummaryRate: the consumer's rate counts from the first
// delivery to the last, not the wait before the first message (here 10 s
// of an empty queue) nor the --idle wait after the last.
func TestConsumeSummaryRate(t *testing.T) {
	start := time.Unix(1000, 0)
	first, last := start.Add(10*time.Second), start.Add(11*time.Second)
	got := consumeSummary(101, 0, start, first, last, last.Add(5*time.Second))
	if !strings.Contains(got, "(100 msgs/s from the first delivery to the last)") || !strings.Contains(got, "101 consumed") || !strings.Contains(got, "in 16s") {
		t.Fatalf("summary %q: want 101 consumed in 16s at 100 msgs/s", got)
	}
	if got := consumeSummary(1, 0, start, first, first, last); strings.Contains(got, "msgs/s") {
		t.Fatalf("one message has no rate: %q", got)
	}
}

// TestProgressLine: the progress line is redrawn in place and cleared when
// the run ends.
func TestProgressLine(t *testing.T) {
	var mu sync.Mutex
	var buf strings.Builder
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	drawn := make(chan struct{}, 1)
	stop := runProgress(w, time.Millisecond, func() string {
		select {
		case drawn <- struct{}{}:
		default:
		}
		return "12 of 100 acknowledged"
	})
	<-drawn
	stop()
	stop() // twice is fine
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.HasPrefix(out, "\r12 of 100 acknowledged") || !strings.HasSuffix(out, "\r"+strings.Repeat(" ", 22)+"\r") {
		t.Fatalf("progress output %q", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
