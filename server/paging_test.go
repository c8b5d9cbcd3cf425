package server

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// pagingSettings: every address pages past maxSize bytes (and its queues
// stay when emptied, so the tests can look at them).
func pagingSettings(maxSize int64, policy string) config.AddressSettings {
	return config.AddressSettings{{Match: "#", MaxSizeBytes: &maxSize, AddressFullPolicy: &policy,
		AutoDeleteQueues: ptr(false), AutoDeleteAddresses: ptr(false)}}
}

func body(i, size int) []byte {
	b := make([]byte, size)
	copy(b, fmt.Sprintf("m%07d.", i))
	return b
}

// sendN sends n durable messages of size bytes m<from>..m<from+n-1>.
func sendN(t *testing.T, ss *Session, dest Destination, from, n, size int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	const window = 64
	sem := make(chan struct{}, window)
	for i := from; i < from+n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		ss.Send(context.Background(), dest, &Message{Durable: true, Body: body(i, size), DuplicateID: fmt.Sprintf("d%d", i)}, func(err error) {
			if err != nil {
				errs <- err
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
}

// drain consumes n messages from dest, acking each, and checks they are
// m<from>.. in order.
func drain(t *testing.T, ss *Session, dest Destination, from, n int) {
	t.Helper()
	ch := make(chan Delivery, 4096)
	c, err := ss.CreateConsumer(context.Background(), dest, ConsumerOptions{Credit: 500}, func(d Delivery) { ch <- d })
	if err != nil {
		t.Fatal(err)
	}
	defer ss.CloseConsumer(c.ID())
	acked := make(chan error, n)
	for i := from; i < from+n; i++ {
		select {
		case d := <-ch:
			if want := fmt.Sprintf("m%07d.", i); string(d.Message.Body[:len(want)]) != want {
				t.Fatalf("message %d: got %q", i, d.Message.Body[:len(want)])
			}
			ss.Ack(d.ConsumerID, d.Message.ID, func(err error) { acked <- err })
			c.Credit(1)
		case <-time.After(20 * time.Second):
			t.Fatalf("message %d did not come", i)
		}
	}
	for i := 0; i < n; i++ {
		if err := <-acked; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPagingOrderAndMemory: past max-size-bytes an address pages; the
// memory its messages take stays within the limit however many are sent;
// the queue's depth counts the paged ones; a consumer gets them all once
// and in order; the paging journal reclaims its segments once they are
// consumed, and the address stops paging.
func TestPagingOrderAndMemory(t *testing.T) {
	const limit, n, size = 64 << 10, 3000, 1000
	b := newPagingBroker(t, Options{AddressSettings: pagingSettings(limit, config.FullPage)}, 64<<10)
	ss := b.s.NewSession(false)
	q := queueDest("orders")
	sendN(t, ss, q, 0, n, size)
	if qi, _ := b.s.Queue("orders"); qi.Depth != n || qi.Paged == 0 {
		t.Fatalf("depth %d paged %d, want %d and some paged", qi.Depth, qi.Paged, n)
	}
	a := b.s.lookupAddress("orders")
	if m := a.mem.Load(); m > limit+size+refOverhead+200 {
		t.Fatalf("address memory %d, limit %d", m, limit)
	}
	st := b.s.Stats()
	if st.Paged < n-100 {
		t.Fatalf("paged %d of %d", st.Paged, n)
	}
	if b.pj.DurableEnd().Seq < 10 {
		t.Fatalf("paging journal only %d segments", b.pj.DurableEnd().Seq)
	}
	// /status and /metrics show the address's paged messages and files.
	ps := b.s.Paging()
	if len(ps.Addresses) != 1 || !ps.Addresses[0].Paging || ps.Addresses[0].PagedMessages < n-100 || ps.Addresses[0].PageFiles < 10 ||
		ps.Addresses[0].PagedBytes < (n-100)*size || ps.Segments < 10 {
		t.Fatalf("paging status %+v", ps)
	}
	rec := httptest.NewRecorder()
	MetricsHandler(MetricsOptions{Server: func() *Server { return b.s }}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`tandem_address_paging{address="orders"} 1`, `tandem_address_paged_messages{address="orders"}`,
		`tandem_address_page_files{address="orders"}`, `tandem_journal_segments{journal="paging"}`, "tandem_messages_paged_total"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	drain(t, ss, q, 0, n)
	waitDepth(t, b.s, "orders", 0)
	// The consumed segments go (the floor follows the cursor).
	deadline := time.Now().Add(10 * time.Second)
	for b.pj.Oldest() < b.pj.DurableEnd().Seq-1 {
		if time.Now().After(deadline) {
			t.Fatalf("oldest segment %d, end %v", b.pj.Oldest(), b.pj.DurableEnd())
		}
		b.s.pager.kick()
		time.Sleep(5 * time.Millisecond)
	}
	// Nothing is paged any more: the next message stays in memory.
	mustSend(t, ss, q, msg("after", true))
	if st2 := b.s.Stats(); st2.Paged != st.Paged {
		t.Fatalf("sent after the drain and paged: %d -> %d", st.Paged, st2.Paged)
	}
	a.mu.Lock()
	paging := a.paging
	a.mu.Unlock()
	if paging {
		t.Fatal("address still paging")
	}
}

// TestPagingRestart: what was paged and acknowledged stays acknowledged
// after a restart, what was not is there, in order, exactly once; the
// queue's depth after the load counts it without reading it into memory.
func TestPagingRestart(t *testing.T) {
	const limit, n, size = 32 << 10, 2000, 500
	b := newPagingBroker(t, Options{AddressSettings: pagingSettings(limit, config.FullPage)}, 64<<10)
	ss := b.s.NewSession(false)
	q := queueDest("q")
	sendN(t, ss, q, 0, n, size)
	drain(t, ss, q, 0, 700)
	ss.Close()
	b.restart()
	if qi, _ := b.s.Queue("q"); qi.Depth != n-700 {
		t.Fatalf("depth after restart %d, want %d", qi.Depth, n-700)
	}
	if m := b.s.mem.Load(); m > limit+size+refOverhead+200 {
		t.Fatalf("memory after load %d", m)
	}
	ss = b.s.NewSession(false)
	// Delivered, not acked, then a restart: delivered again.
	got := make(chan Delivery, 100)
	c, err := ss.CreateConsumer(context.Background(), q, ConsumerOptions{Credit: 10}, func(d Delivery) { got <- d })
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		<-got
	}
	ss.CloseConsumer(c.ID())
	ss.Close()
	b.restart()
	ss = b.s.NewSession(false)
	// New sends go behind the paged ones.
	sendN(t, ss, q, n, 100, size)
	drain(t, ss, q, 700, n-700+100)
	ss.Close()
	b.restart()
	if qi, _ := b.s.Queue("q"); qi.Depth != 0 {
		t.Fatalf("depth after draining and a restart %d", qi.Depth)
	}
}

// TestPagingMulticast: a topic's subscriptions read the paged messages
// each at its pace; a slow one keeps the segments it still needs.
func TestPagingMulticast(t *testing.T) {
	const n, size = 1500, 800
	b := newPagingBroker(t, Options{AddressSettings: pagingSettings(16<<10, config.FullPage)}, 64<<10)
	ctx := context.Background()
	if _, err := b.s.CreateQueue(ctx, QueueConfig{Address: "news", Name: "fast", Routing: Multicast, Durable: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.CreateQueue(ctx, QueueConfig{Address: "news", Name: "slow", Routing: Multicast, Durable: true}); err != nil {
		t.Fatal(err)
	}
	ss := b.s.NewSession(false)
	sendN(t, ss, topicDest("news"), 0, n, size)
	drain(t, ss, Destination{Name: "news", Routing: Multicast}, 0, 0) // no subscription name: a temporary one, sees nothing old
	fast := ss.s.queues["fast"]
	if fast.pagedDepth() == 0 {
		t.Fatal("nothing paged")
	}
	drainQueue(t, ss, "news", "fast", 0, n)
	b.s.pager.kick()
	if old := b.pj.Oldest(); old != 1 {
		t.Fatalf("oldest segment %d while slow has read nothing", old)
	}
	ss.Close()
	b.restart()
	ss = b.s.NewSession(false)
	if qi, _ := b.s.Queue("fast"); qi.Depth != 0 {
		t.Fatalf("fast depth %d after restart", qi.Depth)
	}
	drainQueue(t, ss, "news", "slow", 0, n)
}

// drainQueue is drain for a named subscription queue.
func drainQueue(t *testing.T, ss *Session, addr, queue string, from, n int) {
	t.Helper()
	ch := make(chan Delivery, 4096)
	c, err := ss.CreateConsumer(context.Background(), Destination{Name: addr, Routing: Multicast}, ConsumerOptions{Credit: -1, Subscription: queue}, func(d Delivery) { ch <- d })
	if err != nil {
		t.Fatal(err)
	}
	defer ss.CloseConsumer(c.ID())
	done := make(chan error, n)
	for i := from; i < from+n; i++ {
		select {
		case d := <-ch:
			if want := fmt.Sprintf("m%07d.", i); string(d.Message.Body[:len(want)]) != want {
				t.Fatalf("%s message %d: got %q", queue, i, d.Message.Body[:len(want)])
			}
			// Acked as they come: a queue's read-ahead waits for acks.
			ss.Ack(d.ConsumerID, d.Message.ID, func(err error) { done <- err })
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: message %d did not come", queue, i)
		}
	}
	for i := 0; i < n; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPagingTransaction: a transaction's paged messages count once it
// committed; paged records of a transaction that never committed (a
// crash between the two appends) are dropped at load.
func TestPagingTransaction(t *testing.T) {
	b := newPagingBroker(t, Options{AddressSettings: pagingSettings(8<<10, config.FullPage)}, 64<<10)
	ss := b.s.NewSession(false)
	q := queueDest("q")
	sendN(t, ss, q, 0, 100, 500) // paging from here on
	tx := b.s.NewSession(true)
	for i := 100; i < 150; i++ {
		tx.Send(context.Background(), q, &Message{Durable: true, Body: body(i, 500)}, func(error) {})
	}
	if err := commitSync(t, tx); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, b.s, "q", 150)
	// A transaction's paged records without its commit record.
	bad := &Message{Durable: true, Address: "q", Routing: Anycast, Body: body(999, 500)}
	qq := b.s.queues["q"]
	if err := journal.AppendSync(context.Background(), b.pj, journal.Entry{Kind: journal.KindAdd, ID: b.s.nextID(), TxID: b.s.nextID(),
		Type: RecPagedMessage, Data: encodePaged(bad, []*Queue{qq})}); err != nil {
		t.Fatal(err)
	}
	ss.Close()
	tx.Close()
	b.restart()
	waitDepth(t, b.s, "q", 150)
	ss = b.s.NewSession(false)
	drain(t, ss, q, 0, 150)
}

// TestPagedDuplicateAfterRestart: a paged message's duplicate ID is known
// after a restart (the paged record holds it).
func TestPagedDuplicateAfterRestart(t *testing.T) {
	b := newPagingBroker(t, Options{AddressSettings: pagingSettings(4<<10, config.FullPage)}, 64<<10)
	ss := b.s.NewSession(false)
	q := queueDest("q")
	sendN(t, ss, q, 0, 50, 500)
	ss.Close()
	b.restart()
	ss = b.s.NewSession(false)
	m := &Message{Durable: true, Body: body(49, 500), DuplicateID: "d49"}
	if err := sendSync(t, ss, q, m); err != nil || m.ID != 0 {
		t.Fatalf("resend of a paged message: err %v, id %d (want a duplicate)", err, m.ID)
	}
	waitDepth(t, b.s, "q", 50)
}

// TestBlockPolicy: BLOCK holds sends once the address is full (neither
// stored nor answered); acks free memory and the held sends go in, in
// order.
func TestBlockPolicy(t *testing.T) {
	const limit, size = 8 << 10, 1000
	b := newBroker(t, Options{AddressSettings: pagingSettings(limit, config.FullBlock)})
	ss := b.s.NewSession(false)
	q := queueDest("q")
	var answered atomic.Int32
	for i := 0; i < 30; i++ {
		ss.Send(context.Background(), q, &Message{Durable: true, Body: body(i, size)}, func(err error) {
			if err != nil {
				t.Errorf("send %d: %v", i, err)
			}
			answered.Add(1)
		})
	}
	// Every send is stored (and answered) or held: held ones are never
	// answered until memory frees.
	a := b.s.lookupAddress("q")
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		held := len(a.parked)
		a.mu.Unlock()
		if int(answered.Load())+held == 30 {
			if held == 0 {
				t.Fatal("nothing held")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d answered, %d held, of 30", answered.Load(), held)
		}
		time.Sleep(time.Millisecond)
	}
	if qi, _ := b.s.Queue("q"); qi.Depth != int64(answered.Load()) || b.s.Stats().Blocked == 0 {
		t.Fatalf("depth %d, answered %d, blocked %d: a held send was stored", qi.Depth, answered.Load(), b.s.Stats().Blocked)
	}
	drain(t, ss, q, 0, 30)
}

// TestFailAndDropPolicies: FAIL refuses a send to a full address
// (ErrAddressFull, wire CodeLimit); DROP answers it as stored and drops
// it.
func TestFailAndDropPolicies(t *testing.T) {
	b := newBroker(t, Options{AddressSettings: config.AddressSettings{
		{Match: "f", MaxSizeBytes: ptr(int64(4 << 10)), AddressFullPolicy: ptr(config.FullFail)},
		{Match: "d", MaxSizeBytes: ptr(int64(4 << 10)), AddressFullPolicy: ptr(config.FullDrop)},
	}})
	ss := b.s.NewSession(false)
	var failed error
	for i := 0; i < 20 && failed == nil; i++ {
		failed = sendSync(t, ss, queueDest("f"), &Message{Durable: true, Body: body(i, 1000)})
	}
	if !errors.Is(failed, ErrAddressFull) || codeOf(failed) != wire.CodeLimit {
		t.Fatalf("FAIL: %v (code %v)", failed, codeOf(failed))
	}
	for i := 0; i < 20; i++ {
		if err := sendSync(t, ss, queueDest("d"), &Message{Durable: true, Body: body(i, 1000)}); err != nil {
			t.Fatalf("DROP: %v", err)
		}
	}
	if qi, _ := b.s.Queue("d"); qi.Depth >= 20 || b.s.Stats().Dropped == 0 {
		t.Fatalf("DROP: depth %d, dropped %d", qi.Depth, b.s.Stats().Dropped)
	}
}

// TestGlobalMaxSize: the broker-wide limit pages every address once all
// of them together hold it.
func TestGlobalMaxSize(t *testing.T) {
	const global = 64 << 10
	b := newPagingBroker(t, Options{GlobalMaxSize: global}, 64<<10)
	ss := b.s.NewSession(false)
	for i := 0; i < 10; i++ {
		sendN(t, ss, queueDest(fmt.Sprintf("q%d", i)), 0, 200, 500)
	}
	if m := b.s.mem.Load(); m > global+2000 {
		t.Fatalf("memory %d, global-max-size %d", m, global)
	}
	if b.s.Stats().Paged == 0 {
		t.Fatal("nothing paged")
	}
	for i := 0; i < 10; i++ {
		drain(t, ss, queueDest(fmt.Sprintf("q%d", i)), 0, 200)
	}
}

// TestPurgePaged: purging a queue removes its paged messages too, and
// they stay removed after a restart.
func TestPurgePaged(t *testing.T) {
	b := newPagingBroker(t, Options{AddressSettings: pagingSettings(8<<10, config.FullPage)}, 64<<10)
	ss := b.s.NewSession(false)
	sendN(t, ss, queueDest("q"), 0, 1000, 500)
	if qi, _ := b.s.Queue("q"); qi.Paged == 0 {
		t.Fatal("nothing paged")
	}
	n, err := b.s.PurgeQueue(context.Background(), "q")
	if err != nil || n != 1000 {
		t.Fatalf("purged %d: %v", n, err)
	}
	waitDepth(t, b.s, "q", 0)
	ss.Close()
	b.restart()
	waitDepth(t, b.s, "q", 0)
	ss = b.s.NewSession(false)
	sendN(t, ss, queueDest("q"), 1000, 10, 500)
	drain(t, ss, queueDest("q"), 1000, 10)
}

// TestPagedQueueNotAutoDeleted: an auto-created queue whose messages are
// paged is not auto-deleted as empty when its last consumer leaves (its
// paged messages count), and one whose settings delete it whatever it
// holds takes its page records with it.
func TestPagedQueueNotAutoDeleted(t *testing.T) {
	max := int64(0) // everything pages
	policy := config.FullPage
	b := newPagingBroker(t, Options{AddressSettings: config.AddressSettings{
		{Match: "#", MaxSizeBytes: &max, AddressFullPolicy: &policy},
		{Match: "gone", AutoDeleteQueuesMessageCount: ptr(int64(-1))},
	}}, 64<<10)
	ss := b.s.NewSession(false)
	sendN(t, ss, queueDest("q"), 0, 300, 500)
	// A consumer without credit comes and goes: the queue is idle again.
	c, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{}, func(Delivery) {})
	if err != nil {
		t.Fatal(err)
	}
	ss.CloseConsumer(c.ID())
	b.s.reap(time.Now().Add(time.Hour))
	if qi, ok := b.s.Queue("q"); !ok || qi.Depth != 300 {
		t.Fatalf("queue q after the scan: exists %v, depth %d (want 300)", ok, qi.Depth)
	}
	drain(t, ss, queueDest("q"), 0, 300)

	sendN(t, ss, queueDest("gone"), 0, 300, 500)
	c, err = ss.CreateConsumer(context.Background(), queueDest("gone"), ConsumerOptions{}, func(Delivery) {})
	if err != nil {
		t.Fatal(err)
	}
	ss.CloseConsumer(c.ID())
	b.s.reap(time.Now().Add(time.Hour))
	if _, ok := b.s.Queue("gone"); ok {
		t.Fatal("queue gone not deleted")
	}
	if _, ok := b.s.Queue("gone"); ok {
		t.Fatal("queue gone is back")
	}
	// Nothing holds the paging journal any more: its segments go.
	deadline := time.Now().Add(10 * time.Second)
	for b.pj.Oldest() < b.pj.DurableEnd().Seq {
		if time.Now().After(deadline) {
			t.Fatalf("oldest segment %d, end %v", b.pj.Oldest(), b.pj.DurableEnd())
		}
		b.s.pager.kick()
		time.Sleep(5 * time.Millisecond)
	}
	ss.Close()
	b.restart()
	if _, ok := b.s.Queue("gone"); ok {
		t.Fatal("queue gone is back after a restart")
	}
}
