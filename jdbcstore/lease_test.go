package jdbcstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
)

func openNM(t testing.TB, url, table, group string, exp, renew time.Duration) *NodeManager {
	t.Helper()
	m, err := OpenNodeManager(ctxT(t), NodeManagerOptions{URL: url, Table: table, Group: group, LockExpiration: exp, RenewPeriod: renew})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// TestLeaseBasics: one holder at a time, epochs grow, release frees the
// lease, expiry (by the database clock) frees it too, renew refuses a
// holder that lost the lease.
func TestLeaseBasics(t *testing.T) {
	url := pgURL(t)
	nm := uniqueName("nm")
	dropAtCleanup(t, url, nm)
	a := openNM(t, url, nm, "g1", 2*time.Second, 500*time.Millisecond)
	b := openNM(t, url, nm, "g1", 2*time.Second, 500*time.Millisecond)
	other := openNM(t, url, nm, "g2", 2*time.Second, 500*time.Millisecond)
	la, lb := a.Lease(LockPrimary), b.Lease(LockPrimary)
	if la.Holder() == lb.Holder() {
		t.Fatal("two leases share a holder ID")
	}
	e1, ok, err := la.TryAcquire(ctxT(t))
	if err != nil || !ok {
		t.Fatalf("first acquire: %v %v", ok, err)
	}
	if _, ok, err := lb.TryAcquire(ctxT(t)); err != nil || ok {
		t.Fatalf("second holder acquired a held lease: %v %v", ok, err)
	}
	if _, ok, err := other.Lease(LockPrimary).TryAcquire(ctxT(t)); err != nil || !ok {
		t.Fatalf("another group's lease is independent: %v %v", ok, err)
	}
	if err := la.Renew(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if !la.Valid() {
		t.Fatal("held lease not valid")
	}
	runDone := make(chan error, 1)
	go func() { runDone <- la.Run(context.Background()) }()
	if err := la.Release(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-runDone:
		if err != nil {
			t.Fatalf("Run after Release: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop after Release")
	}
	select {
	case <-la.Lost():
		t.Fatal("Release closed Lost")
	default:
	}
	e2, ok, err := lb.TryAcquire(ctxT(t))
	if err != nil || !ok || e2 <= e1 {
		t.Fatalf("acquire after release: ok %v err %v epoch %d (was %d)", ok, err, e2, e1)
	}
	if err := la.Renew(ctxT(t)); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew by the old holder: %v, want ErrLeaseLost", err)
	}
	// Expiry: b stops renewing; a takes over once the database says so.
	e3, err := la.Acquire(ctxT(t), 100*time.Millisecond)
	if err != nil || e3 <= e2 {
		t.Fatalf("acquire after expiry: %v epoch %d", err, e3)
	}
	if err := lb.Renew(ctxT(t)); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew after takeover: %v, want ErrLeaseLost", err)
	}
	if got, err := a.Epoch(ctxT(t)); err != nil || got != e3 {
		t.Fatalf("Epoch %d %v, want %d", got, err, e3)
	}

	// State row and node ID.
	if st, id, err := a.ReadState(ctxT(t)); err != nil || st != StateNotStarted || id != "" {
		t.Fatalf("initial state %q %q %v", st, id, err)
	}
	if err := a.WriteState(ctxT(t), StateActive); err != nil {
		t.Fatal(err)
	}
	if id, err := a.EnsureNodeID(ctxT(t), "node-a"); err != nil || id != "node-a" {
		t.Fatalf("EnsureNodeID %q %v", id, err)
	}
	if id, err := b.EnsureNodeID(ctxT(t), "node-b"); err != nil || id != "node-a" {
		t.Fatalf("second EnsureNodeID %q %v, want node-a", id, err)
	}
	if st, id, err := b.ReadState(ctxT(t)); err != nil || st != StateActive || id != "node-a" {
		t.Fatalf("state %q %q %v", st, id, err)
	}
	if err := a.WriteState(ctxT(t), State('x')); err == nil {
		t.Fatal("WriteState accepted a bad letter")
	}

	// The conditional write of a live at its stop: only under the primary
	// lease's current epoch (e3, a's).
	if err := b.WriteStateAt(ctxT(t), StatePaused, e2); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("WriteStateAt under the superseded epoch %d: %v, want ErrLeaseLost", e2, err)
	}
	if st, _, err := b.ReadState(ctxT(t)); err != nil || st != StateActive {
		t.Fatalf("state after the refused write %q %v", st, err)
	}
	if err := a.WriteStateAt(ctxT(t), StatePaused, e3); err != nil {
		t.Fatalf("WriteStateAt under the current epoch: %v", err)
	}
	if st, _, err := b.ReadState(ctxT(t)); err != nil || st != StatePaused {
		t.Fatalf("state after the conditional write %q %v", st, err)
	}
}

// TestLeaseLostBeforeExpiry: renewals hang (another transaction holds the
// row lock), and Run declares the lease lost while the database still
// counts it as held: the broker stops before a successor can take over.
func TestLeaseLostBeforeExpiry(t *testing.T) {
	url := pgURL(t)
	nm := uniqueName("nm")
	dropAtCleanup(t, url, nm)
	m := openNM(t, url, nm, "g", 4*time.Second, time.Second)
	l := m.Lease(LockPrimary)
	if _, err := l.Acquire(ctxT(t), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	checker := adminConn(t, url) // connected before the race below
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()
	time.Sleep(1500 * time.Millisecond) // a renewal succeeds

	admin := adminConn(t, url)
	tx, err := admin.Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctxT(t), "SELECT 1 FROM "+ident(nm)+" WHERE group_name = 'g' AND lock_name = 'primary' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	var lostAt time.Time
	select {
	case <-l.Lost():
		lostAt = time.Now()
	case <-time.After(10 * time.Second):
		t.Fatal("lease not declared lost while renewals hang")
	}
	// When it was declared lost, the database must still have considered the
	// lease held. The expiry is read afterwards and compared with the moment
	// Lost fired (PostgreSQL runs on this host: one clock), so a slow query
	// on a loaded machine cannot fail the test.
	var expiry time.Time
	if err := checker.QueryRow(ctxT(t), "SELECT expiry FROM "+ident(nm)+" WHERE group_name = 'g' AND lock_name = 'primary'").Scan(&expiry); err != nil {
		t.Fatal(err)
	}
	if !lostAt.Before(expiry) {
		t.Fatalf("the lease expired in the database at %v, before this process declared it lost at %v", expiry, lostAt)
	}
	if err := <-runErr; !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Run returned %v, want ErrLeaseLost", err)
	}
	if l.Valid() {
		t.Fatal("lost lease still valid")
	}
}

// TestFencedInProcess: a journal fenced at epoch e fails its next batch
// with ErrFenced once another holder has acquired the lease, and the
// refused batch leaves nothing in the table; through both write paths.
func TestFencedInProcess(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold int
	}{{"insert", -1}, {"copy", 1}} {
		t.Run(tc.name, func(t *testing.T) { testFenced(t, tc.threshold) })
	}
}

func testFenced(t *testing.T, threshold int) {
	url := pgURL(t)
	nm, table := uniqueName("nm"), uniqueName("fenced")
	dropAtCleanup(t, url, table, nm)
	a := openNM(t, url, nm, "g", 1*time.Second, 200*time.Millisecond)
	b := openNM(t, url, nm, "g", 1*time.Second, 200*time.Millisecond)
	la := a.Lease(LockPrimary)
	ea, err := la.Acquire(ctxT(t), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	j := openTable(t, url, table, func(o *Options) {
		o.Fence = Fence{Table: nm, Group: "g", Epoch: ea}
		o.CopyThreshold = threshold
	})
	mustLoad(t, j)
	mustAppend(t, j, add(1, "before"))

	lb := b.Lease(LockPrimary)
	eb, err := lb.Acquire(ctxT(t), 50*time.Millisecond) // after a's expiry
	if err != nil || eb <= ea {
		t.Fatalf("takeover: epoch %d err %v", eb, err)
	}
	err = journal.AppendSync(ctxT(t), j, add(2, "after takeover"))
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("append after takeover: %v, want ErrFenced", err)
	}
	select {
	case <-j.Failed():
	default:
		t.Fatal("Failed not closed after ErrFenced")
	}
	if err := j.Append([]journal.Entry{add(3, "later")}, true, func(error) { t.Error("done called") }); !errors.Is(err, ErrFenced) {
		t.Fatalf("later append: %v, want the sticky ErrFenced", err)
	}
	_ = j.Close()

	jb := openTable(t, url, table, func(o *Options) { o.Fence = Fence{Table: nm, Group: "g", Epoch: eb} })
	res := mustLoad(t, jb)
	if len(res.Records) != 1 || res.Records[0].ID != 1 || res.Epoch != ea {
		t.Fatalf("successor loaded %+v, want only record 1 at epoch %d", res.Records, ea)
	}
	mustAppend(t, jb, add(2, "new primary"))
	// The old writer cannot even load.
	jo := openTable(t, url, table, func(o *Options) { o.Fence = Fence{Table: nm, Group: "g", Epoch: ea} })
	if _, err := jo.Load(ctxT(t)); !errors.Is(err, ErrFenced) {
		t.Fatalf("load at an old epoch: %v, want ErrFenced", err)
	}
}

// TestLeaseLossFailsJournal: a journal given its lease fails with
// ErrLeaseLost once the lease is lost (renewals hang here), before the
// database expires it, and acknowledges nothing after.
func TestLeaseLossFailsJournal(t *testing.T) {
	url := pgURL(t)
	nm, table := uniqueName("nm"), uniqueName("leasej")
	dropAtCleanup(t, url, table, nm)
	m := openNM(t, url, nm, "g", 4*time.Second, time.Second)
	l := m.Lease(LockPrimary)
	checker := adminConn(t, url) // connected before the race below
	epoch, err := l.Acquire(ctxT(t), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = l.Run(ctx) }()
	j := openTable(t, url, table, func(o *Options) {
		o.Fence = Fence{Table: nm, Group: "g", Epoch: epoch}
		o.Lease = l
	})
	mustLoad(t, j)
	mustAppend(t, j, add(1, "held"))

	admin := adminConn(t, url)
	tx, err := admin.Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctxT(t), "SELECT 1 FROM "+ident(nm)+" WHERE group_name = 'g' AND lock_name = 'primary' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	var failedAt time.Time
	select {
	case <-j.Failed():
		failedAt = time.Now()
	case <-time.After(10 * time.Second):
		t.Fatal("journal did not fail when its lease was lost")
	}
	if !errors.Is(j.Err(), ErrLeaseLost) {
		t.Fatalf("Err() = %v, want ErrLeaseLost", j.Err())
	}
	// As in TestLeaseLostBeforeExpiry: the moment of failure against the
	// expiry, read afterwards (one clock: PostgreSQL runs on this host).
	var expiry time.Time
	if err := checker.QueryRow(ctxT(t), "SELECT expiry FROM "+ident(nm)+" WHERE group_name = 'g' AND lock_name = 'primary'").Scan(&expiry); err != nil {
		t.Fatal(err)
	}
	if !failedAt.Before(expiry) {
		t.Fatalf("the journal failed at %v, after the lease had expired in the database at %v", failedAt, expiry)
	}
	if err := j.Append([]journal.Entry{add(2, "x")}, true, func(error) { t.Error("done called") }); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("append after the loss: %v, want ErrLeaseLost", err)
	}
}

// TestRenewNotBlockedByBatch: a journal batch holds the fence row (FOR KEY
// SHARE) while its transaction is open; renewing the lease must not wait
// for it (TestTakeoverBreaksStuckWriter shows that a takeover does).
func TestRenewNotBlockedByBatch(t *testing.T) {
	url := pgURL(t)
	nm := uniqueName("nm")
	dropAtCleanup(t, url, nm)
	m := openNM(t, url, nm, "g", 20*time.Second, 4*time.Second)
	l := m.Lease(LockPrimary)
	epoch, err := l.Acquire(ctxT(t), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	batch := adminConn(t, url)
	tx, err := batch.Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctxT(t), fenceSQL(nm), "g", int64(epoch)); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.Renew(rctx); err != nil {
		t.Fatalf("renew while a batch holds the fence row: %v", err)
	}
	// The batch's transaction is still open and its fence lock still valid.
	if _, err := tx.Exec(ctxT(t), "SELECT 1"); err != nil {
		t.Fatalf("batch transaction broken by the renewal: %v", err)
	}
	if err := tx.Commit(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}
