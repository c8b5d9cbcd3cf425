package ha

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tandemmq/tandem/internal/testenv"
	"github.com/tandemmq/tandem/lockfile"
)

// The ZooKeeper adapter against the real ensemble (TANDEM_TEST_ZK).

// zkPartition is a network between one client and the ensemble that a
// test can cut: the connections close and new dials fail, so the server
// hears nothing more from the session (which it then expires), as when
// the broker is partitioned away or paused.
type zkPartition struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (p *zkPartition) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return nil, errors.New("test partition: unreachable")
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err == nil {
		p.conns = append(p.conns, c)
	}
	return c, err
}

func (p *zkPartition) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *zkPartition) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// zkGroup is a fresh namespace for one test (deleted at the end).
type zkGroup struct {
	admin *zk.Conn
	ns    string
}

func newZKGroup(t *testing.T) zkGroup {
	t.Helper()
	conn, base := testenv.ZKConnect(t)
	return zkGroup{admin: conn, ns: strings.TrimPrefix(base, "/")}
}

func (g zkGroup) opts(t *testing.T, url string, session time.Duration) ZKOptions {
	return ZKOptions{ConnectString: testenv.ZK(t), SessionTimeout: session, Namespace: g.ns, Group: "pair",
		URL: url, ConnectTimeout: 20 * time.Second}
}

func (g zkGroup) dial(t *testing.T, o ZKOptions) *ZKCoordinator {
	t.Helper()
	z, err := DialZK(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { z.Close() })
	return z
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newID(t *testing.T) lockfile.NodeID {
	id, err := lockfile.NewNodeID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// monitor runs z's Monitor until the test ends and returns its reports.
func monitor(t *testing.T, z *ZKCoordinator) <-chan CoordEvent {
	ch := make(chan CoordEvent, 256)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		z.Monitor(ctx, func(ev CoordEvent) {
			select {
			case ch <- ev:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

// waitEvent waits for a report of kind (skipping others) and returns it.
func waitEvent(t *testing.T, ch <-chan CoordEvent, kind CoordEventKind, within time.Duration) CoordEvent {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-ch:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no coordinator report of kind %d within %v", kind, within)
		}
	}
}

func TestZKLockExclusive(t *testing.T) {
	g := newZKGroup(t)
	a := g.dial(t, g.opts(t, "tcp://a:61616", 4*time.Second))
	b := g.dial(t, g.opts(t, "tcp://b:61616", 4*time.Second))
	ctx := ctxT(t)
	ida, idb := newID(t), newID(t)
	if h, err := b.ReadLock(ctx); err != nil || h.Held {
		t.Fatalf("fresh group: holder %+v, %v", h, err)
	}
	if ok, err := a.TryLock(ctx, ida, 3); !ok || err != nil {
		t.Fatalf("a: %v %v", ok, err)
	}
	if ok, err := b.TryLock(ctx, idb, 3); ok || err != nil {
		t.Fatalf("b took a held lock: %v %v", ok, err)
	}
	h, err := b.ReadLock(ctx)
	if err != nil || !h.Held || h.URL != "tcp://a:61616" || h.NodeID != ida.String() || h.Seq != 3 || h.Mine {
		t.Fatalf("b reads holder %+v, %v", h, err)
	}
	// A retried create of the holder (its answer lost) is still ours.
	if ok, err := a.TryLock(ctx, ida, 3); !ok || err != nil {
		t.Fatalf("a again: %v %v", ok, err)
	}
	if _, err := a.VerifyLock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.VerifyLock(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("b verifies a lock it does not hold: %v", err)
	}
	// b releasing does not touch a's lock.
	if err := b.ReleaseLock(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.TryLock(ctx, idb, 3); ok {
		t.Fatal("b's release freed a's lock")
	}
	if err := a.ReleaseLock(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, idb, 4); !ok || err != nil {
		t.Fatalf("b after a released: %v %v", ok, err)
	}
	if h, err := a.ReadLock(ctx); err != nil || h.URL != "tcp://b:61616" {
		t.Fatalf("a reads %+v, %v", h, err)
	}
	// A broker that restarted before its old session expired sees its
	// own URL: Mine.
	c := g.dial(t, g.opts(t, "tcp://b:61616", 4*time.Second))
	if h, err := c.ReadLock(ctx); err != nil || !h.Mine {
		t.Fatalf("same URL, another session: %+v, %v", h, err)
	}
}

// The lock of a session the server stops hearing from (a partition, a
// paused or killed process) goes when the session expires; the holder's
// last verification is then older than its lease; when it reconnects it
// learns that its lock is lost.
func TestZKSessionExpiryReleasesLock(t *testing.T) {
	g := newZKGroup(t)
	var p zkPartition
	ao := g.opts(t, "tcp://a:61616", 2*time.Second)
	ao.dialer = p.dial
	a := g.dial(t, ao)
	b := g.dial(t, g.opts(t, "tcp://b:61616", 2*time.Second))
	ctx := ctxT(t)
	if ok, err := a.TryLock(ctx, newID(t), 1); !ok || err != nil {
		t.Fatalf("a: %v %v", ok, err)
	}
	reports := monitor(t, a)
	last := waitEvent(t, reports, CoordVerified, 10*time.Second).Start
	p.Cut()
	cutAt := time.Now()
	for {
		// Drain a's reports: any verification after the cut would be a bug.
		select {
		case ev := <-reports:
			if ev.Kind == CoordVerified {
				if ev.Start.After(cutAt) {
					t.Fatalf("verified at %v after the partition at %v", ev.Start, cutAt)
				}
				last = ev.Start
			}
		default:
		}
		ok, err := b.TryLock(ctx, newID(t), 1)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the partitioned holder's session never expired")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The safety claim of ZKLease: when another broker gets the lock, the
	// old holder's lease (from its last good verification) has run out.
	if until := last.Add(a.Lease()); time.Now().Before(until) {
		t.Fatalf("b holds the lock while a's lease runs until %v (last verification %v, lease %v)", until, last, a.Lease())
	}
	p.Heal()
	ev := waitEvent(t, reports, CoordLockLost, 30*time.Second)
	if !errors.Is(ev.Err, ErrLost) {
		t.Fatalf("lost with %v", ev.Err)
	}
	if _, err := a.VerifyLock(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("a still verifies: %v", err)
	}
}

func TestZKMonitorLockDeleted(t *testing.T) {
	g := newZKGroup(t)
	a := g.dial(t, g.opts(t, "tcp://a:61616", 3*time.Second))
	ctx := ctxT(t)
	if ok, err := a.TryLock(ctx, newID(t), 1); !ok || err != nil {
		t.Fatalf("a: %v %v", ok, err)
	}
	reports := monitor(t, a)
	waitEvent(t, reports, CoordVerified, 10*time.Second)
	if err := g.admin.Delete(a.LockPath(), -1); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, reports, CoordLockLost, 10*time.Second)
	if !errors.Is(ev.Err, ErrLost) || !strings.Contains(ev.Err.Error(), "deleted") {
		t.Fatalf("lost with %v", ev.Err)
	}
}

// Compare-and-set races: exactly one of two brokers wins each round,
// including the first (creating the znode).
func TestZKCASRace(t *testing.T) {
	g := newZKGroup(t)
	zs := []*ZKCoordinator{g.dial(t, g.opts(t, "tcp://a:1", 4*time.Second)), g.dial(t, g.opts(t, "tcp://b:1", 4*time.Second))}
	ctx := ctxT(t)
	cur := int64(0)
	for round := 0; round < 20; round++ {
		next := -(cur + 1)
		if round%2 == 1 {
			next = -cur // commit the claim
		}
		var wins [2]bool
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, z := range zs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				wins[i], errs[i] = z.CASCoordinated(ctx, cur, next)
			}()
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: %v %v", round, errs[0], errs[1])
		}
		if wins[0] == wins[1] {
			t.Fatalf("round %d: CAS %d -> %d won by both or neither: %v", round, cur, next, wins)
		}
		c, err := zs[round%2].ReadCoordinated(ctx)
		if err != nil || c != next {
			t.Fatalf("round %d: C = %d, %v; want %d", round, c, err, next)
		}
		cur = next
	}
}

// A session-ms above 20 ticks is refused; allowed, ZooKeeper negotiates
// its maximum and the lease follows the shorter session.
func TestZKNegotiatedTimeout(t *testing.T) {
	g := newZKGroup(t)
	ens := ProbeEnsemble(ctxT(t), testenv.ZKServers(t))
	if ens.Tick == 0 || ens.MaxSessionTimeout == 0 {
		t.Skip("the test ensemble does not answer conf")
	}
	want := 2 * ens.MaxSessionTimeout
	o := g.opts(t, "tcp://a:1", want)
	_, err := DialZK(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "session-ms") || !strings.Contains(err.Error(), "tickTime") {
		t.Fatalf("session-ms %v above 20 ticks of %v: got %v, want a refusal naming session-ms and tickTime", want, ens.Tick, err)
	}
	o.AllowOutOfRangeSession = true
	z := g.dial(t, o)
	if z.Negotiated() != ens.MaxSessionTimeout || z.SessionTimeout() != ens.MaxSessionTimeout {
		t.Fatalf("negotiated %v, effective %v; want the ensemble's maximum %v", z.Negotiated(), z.SessionTimeout(), ens.MaxSessionTimeout)
	}
	if z.Lease() != ZKLease(ens.MaxSessionTimeout, ens.Tick) || z.Lease() >= ZKLease(want, ens.Tick) {
		t.Fatalf("lease %v; want ZKLease(%v, %v) = %v", z.Lease(), ens.MaxSessionTimeout, ens.Tick, ZKLease(ens.MaxSessionTimeout, ens.Tick))
	}
	// Inside the range: what was asked.
	z2 := g.dial(t, g.opts(t, "tcp://b:1", 4*ens.Tick))
	if z2.SessionTimeout() != 4*ens.Tick || z2.Lease() != ZKLease(4*ens.Tick, ens.Tick) {
		t.Fatalf("session %v lease %v", z2.SessionTimeout(), z2.Lease())
	}
}

func TestZKLease(t *testing.T) {
	for _, tc := range []struct{ session, tick, want time.Duration }{
		{18 * time.Second, 2 * time.Second, 10 * time.Second},
		{10 * time.Second, 500 * time.Millisecond, 6166666666},
		{2 * time.Second, 500 * time.Millisecond, 833333333},
		{18 * time.Second, 0, 3 * time.Second},                // unknown tick: half the session
		{18 * time.Second, 10 * time.Second, 3 * time.Second}, // a tick above half the session cannot be
	} {
		if got := ZKLease(tc.session, tc.tick); got != tc.want {
			t.Errorf("ZKLease(%v, %v) = %v, want %v", tc.session, tc.tick, got, tc.want)
		}
		// The margin the safety argument needs: expiry no earlier than
		// 5/6 session - tick after the verification's start.
		tick := tc.tick
		if tick <= 0 || tick > tc.session/2 {
			tick = tc.session / 2
		}
		if got := ZKLease(tc.session, tc.tick); got > tc.session*5/6-tick {
			t.Errorf("ZKLease(%v, %v) = %v exceeds 5/6 session - tick", tc.session, tc.tick, got)
		}
	}
}

func TestZKSequenceFormat(t *testing.T) {
	for _, c := range []int64{0, 1, -1, 1 << 40, -(1 << 40)} {
		got, err := DecodeSequence("x", EncodeSequence(c))
		if err != nil || got != c {
			t.Fatalf("%d: %d %v", c, got, err)
		}
	}
	b := EncodeSequence(7)
	b[4] ^= 1
	if _, err := DecodeSequence("/a/b", b); err == nil || !strings.Contains(err.Error(), "CRC") || !strings.Contains(err.Error(), "/a/b") {
		t.Fatalf("bit flip: %v", err)
	}
	if _, err := DecodeLock("/a/lock", []byte("{}")); err == nil || !strings.Contains(err.Error(), "/a/lock") {
		t.Fatalf("unversioned lock: %v", err)
	}

	g := newZKGroup(t)
	z := g.dial(t, g.opts(t, "tcp://a:1", 4*time.Second))
	ctx := ctxT(t)
	if c, err := z.ReadCoordinated(ctx); c != 0 || err != nil {
		t.Fatalf("fresh: %d %v", c, err)
	}
	if _, err := g.admin.Create(z.SequencePath(), []byte("12"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := z.ReadCoordinated(ctx); err == nil || !strings.Contains(err.Error(), z.SequencePath()) {
		t.Fatalf("foreign content: %v", err)
	}
	if _, err := z.CASCoordinated(ctx, 0, 1); err == nil {
		t.Fatal("CAS over foreign content succeeded")
	}
	if err := z.SetCoordinated(ctx, -7); err != nil {
		t.Fatal(err)
	}
	if c, err := z.ReadCoordinated(ctx); c != -7 || err != nil {
		t.Fatalf("after set: %d %v", c, err)
	}
	if _, err := g.admin.Create(z.LockPath(), []byte("x"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := z.ReadLock(ctx); err == nil || !strings.Contains(err.Error(), z.LockPath()) {
		t.Fatalf("foreign lock content: %v", err)
	}
}

func TestZKUnreachable(t *testing.T) {
	addr := testenv.FreeAddr(t) // nothing listens there
	start := time.Now()
	_, err := DialZK(context.Background(), ZKOptions{ConnectString: addr, ConnectTimeout: 2 * time.Second, SessionTimeout: 4 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "no ZooKeeper session") {
		t.Fatalf("got %v", err)
	}
	t.Logf("gave up after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestZKOptionsRefused(t *testing.T) {
	for _, o := range []ZKOptions{
		{ConnectString: ""},
		{ConnectString: "127.0.0.1:2181/chroot"},
		{ConnectString: "127.0.0.1:2181", Namespace: "a/../b"},
		{ConnectString: "127.0.0.1:2181", Group: "zoo\x00"},
	} {
		if _, err := DialZK(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
