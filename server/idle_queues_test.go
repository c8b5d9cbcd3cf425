package server

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// idleQueueCost creates n idle durable queues (each on its own address, as
// anycast auto-creation makes them) and returns the growth in goroutines
// and in heap plus stack bytes per queue.
func idleQueueCost(t testing.TB, s *Server, n int) (goroutines int, bytesPerQueue float64) {
	t.Helper()
	measure := func() (int, uint64) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc + ms.StackInuse
	}
	g0, m0 := measure()
	for i := range n {
		if _, err := s.CreateQueue(context.Background(), QueueConfig{Name: fmt.Sprintf("idle.%06d", i), Routing: Anycast, Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	g1, m1 := measure()
	return g1 - g0, float64(int64(m1)-int64(m0)) / float64(n)
}

// maxIdleQueueBytes is the stated bound on the memory an idle queue with
// its address costs (heap and stack, measured after GC): its structs, map
// entries, names and journal record ID, no goroutine.
const maxIdleQueueBytes = 2048

// TestIdleQueuesCostNoGoroutine: idle queues cost memory only. Before, each
// queue had its own delivery goroutine (8 KiB of stack at least), so
// 70 000 queues meant 71 000 goroutines.
func TestIdleQueuesCostNoGoroutine(t *testing.T) {
	b := newBroker(t, Options{MaxQueues: -1})
	const n = 20000
	g, per := idleQueueCost(t, b.s, n)
	t.Logf("%d idle queues: %+d goroutines, %.0f bytes per queue", n, g, per)
	if g > 10 {
		t.Errorf("%d idle queues added %d goroutines; want none (a queue delivers on demand)", n, g)
	}
	if per > maxIdleQueueBytes {
		t.Errorf("an idle queue costs %.0f bytes, more than the stated %d", per, maxIdleQueueBytes)
	}
}

// BenchmarkIdleQueue reports the memory and goroutines per idle queue
// (b.N queues, each on its own address).
func BenchmarkIdleQueue(b *testing.B) {
	br := newBroker(b, Options{MaxQueues: -1})
	b.ReportAllocs()
	g, per := idleQueueCost(b, br.s, b.N)
	b.ReportMetric(per, "bytes/queue")
	b.ReportMetric(float64(g)/float64(b.N), "goroutines/queue")
}

// TestDuplicateIDCacheGrowsWithUse: an address's duplicate-ID cache takes
// memory as IDs come, not its full id-cache-size at the first one. Before,
// one durable send with a duplicate ID (the Tandem client sets one on
// every durable send) made its address allocate about 1.1 MiB (20 000
// slots and a 65 536-slot index), so a client sending one message to each
// of a few thousand new queues could exhaust the broker's memory.
func TestDuplicateIDCacheGrowsWithUse(t *testing.T) {
	b := newBroker(t, Options{MaxQueues: -1})
	ss := b.s.NewSession(false)
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	const n = 200
	m0 := measure()
	for i := range n {
		m := msg("m", true)
		m.DuplicateID = fmt.Sprint("id-", i)
		mustSend(t, ss, queueDest(fmt.Sprintf("dup.%03d", i)), m)
	}
	per := float64(int64(measure())-int64(m0)) / n
	t.Logf("%d addresses with one duplicate ID and one message: %.0f bytes each", n, per)
	if per > 8192 {
		t.Fatalf("an address with one duplicate ID and one message costs %.0f bytes, more than 8 KiB", per)
	}
}
