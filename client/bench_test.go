package client

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// The benchmarks run against the in-process broker on memory journals, so
// they measure the protocol, client and broker code without fsync. Issue 8's
// figures come from `tandem bench` against `tandem run` on the file journal.

func benchBroker(b *testing.B) *Conn {
	b.Helper()
	br := newTestBroker(b)
	c, err := Dial(context.Background(), br.url())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkSendSync: one producer, each durable 1 KiB send waits for its
// answer. Reports p50/p99 latency.
func BenchmarkSendSync(b *testing.B) {
	c := benchBroker(b)
	s, err := c.CreateSession(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	p := s.CreateProducer(Queue("bench-sync"))
	body := make([]byte, 1024)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := p.Send(ctx, &Message{Body: body}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSendWindow256: one producer, 256 durable 1 KiB sends in flight.
func BenchmarkSendWindow256(b *testing.B) {
	c := benchBroker(b)
	s, err := c.CreateSession(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	p := s.CreateProducer(Queue("bench-win"), Window(256))
	body := make([]byte, 1024)
	ctx := context.Background()
	var wg sync.WaitGroup
	done := func(err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		if err := p.SendAsync(ctx, &Message{Body: body}, done); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkConsume: one consumer draining stored 1 KiB messages, one
// pipelined ack each (all confirmed before the clock stops).
func BenchmarkConsume(b *testing.B) {
	c := benchBroker(b)
	s, err := c.CreateSession(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	p := s.CreateProducer(Queue("bench-drain"), Window(256))
	body := make([]byte, 1024)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		if err := p.SendAsync(ctx, &Message{Body: body}, func(error) { wg.Done() }); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	k, err := s.CreateConsumer(ctx, Queue("bench-drain"), Credit(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	wg.Add(b.N)
	ack := func(err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	for i := 0; i < b.N; i++ {
		m, err := k.Receive(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := k.AckAsync(m, ack); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
