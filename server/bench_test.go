package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

var body1K = make([]byte, 1024)

// BenchmarkSendDurable: route and store 1 KiB persistent messages with a
// duplicate ID (three journal entries each), 256 in flight, on the memory
// journal: the broker's own CPU per send.
func BenchmarkSendDurable(b *testing.B) {
	br := newBrokerB(b)
	ss := br.s.NewSession(false)
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	done := func(err error) {
		if err != nil {
			b.Error(err)
		}
		<-sem
		wg.Done()
	}
	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		wg.Add(1)
		m := &Message{Durable: true, DuplicateID: fmt.Sprint("p-", i), Body: body1K}
		ss.Send(context.Background(), queueDest("q"), m, done)
	}
	wg.Wait()
}

// BenchmarkSendSync: each send waits for its confirmation.
func BenchmarkSendSync(b *testing.B) {
	br := newBrokerB(b)
	ss := br.s.NewSession(false)
	ch := make(chan error, 1)
	done := func(err error) { ch <- err }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ss.Send(context.Background(), queueDest("q"), &Message{Durable: true, Body: body1K}, done)
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDrainAck: a consumer drains stored messages, acking each one
// (pipelined; confirmations counted).
func BenchmarkDrainAck(b *testing.B) {
	br := newBrokerB(b)
	ss := br.s.NewSession(false)
	var wg sync.WaitGroup
	wg.Add(b.N)
	for i := 0; i < b.N; i++ {
		ss.Send(context.Background(), queueDest("q"), &Message{Durable: true, Body: body1K}, func(error) { wg.Done() })
	}
	wg.Wait()
	wg.Add(b.N)
	acked := func(err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	_, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, func(d Delivery) {
		ss.Ack(d.ConsumerID, d.Message.ID, acked)
	})
	if err != nil {
		b.Fatal(err)
	}
	wg.Wait()
}

// BenchmarkRoute: the routing decision alone (address lookup, queue pick).
func BenchmarkRoute(b *testing.B) {
	br := newBrokerB(b)
	ss := br.s.NewSession(false)
	ch := make(chan error, 1)
	ss.Send(context.Background(), queueDest("q"), &Message{Body: body1K}, func(err error) { ch <- err })
	<-ch
	var qbuf [4]*Queue
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, err := br.s.addressFor(context.Background(), "q", Anycast)
		if err != nil {
			b.Fatal(err)
		}
		a.mu.Lock()
		qs := a.routeLocked(Anycast, nil, qbuf[:0])
		a.mu.Unlock()
		if len(qs) != 1 {
			b.Fatal("no queue")
		}
	}
}

func newBrokerB(b *testing.B) *broker { return newBroker(b, Options{}) }
