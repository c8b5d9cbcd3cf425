package jdbcstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tandemmq/tandem/journal"
)

// appendLoop appends add+update pairs (two entries, one Append: atomic)
// from several writers until an append fails, recording what was acked.
type appendLoop struct {
	mu      sync.Mutex
	acked   map[uint64]bool
	errs    []error
	refused atomic.Int64 // Append returned an error (never called done)
	wg      sync.WaitGroup
}

func startAppendLoop(j *Journal, writers int) *appendLoop {
	a := &appendLoop{acked: map[uint64]bool{}}
	for w := range writers {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for i := uint64(1); ; i++ {
				id := uint64(w+1)<<32 | i
				done := make(chan error, 1)
				err := j.Append([]journal.Entry{
					{Kind: journal.KindAdd, ID: id, Type: 1, Data: []byte("payload")},
					{Kind: journal.KindUpdate, ID: id, Type: 2, Data: []byte("u")},
				}, true, func(err error) { done <- err })
				if err != nil {
					a.refused.Add(1)
					return
				}
				err = <-done
				a.mu.Lock()
				if err != nil {
					a.errs = append(a.errs, err)
				} else {
					a.acked[id] = true
				}
				a.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	return a
}

func (a *appendLoop) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAfterFailure: the journal failed for good, every acked append is
// in a reload with both of its entries (nothing half-applied), and
// nothing else is.
func checkAfterFailure(t *testing.T, url, table string, j *Journal, a *appendLoop, want func(error) bool) {
	t.Helper()
	select {
	case <-j.Failed():
	case <-time.After(20 * time.Second):
		t.Fatal("Failed not closed")
	}
	a.wg.Wait()
	if err := j.Err(); err == nil || !want(j.Err()) {
		t.Fatalf("Err() = %v", err)
	}
	if err := j.Append([]journal.Entry{add(1, "x")}, true, func(error) { t.Error("done called after failure") }); err == nil {
		t.Fatal("append after failure accepted")
	}
	for _, err := range a.errs {
		if !want(err) {
			t.Fatalf("a pending append failed with %v", err)
		}
	}
	_ = j.Close()
	j2 := openTable(t, url, table, nil)
	res := mustLoad(t, j2)
	for _, r := range res.Records {
		if len(r.Updates) != 1 {
			t.Fatalf("record %x has %d updates: an append was half applied", r.ID, len(r.Updates))
		}
	}
	loaded := map[uint64]bool{}
	for _, r := range res.Records {
		loaded[r.ID] = true
	}
	for id := range a.acked {
		if !loaded[id] {
			t.Fatalf("acked record %x is missing", id)
		}
	}
	t.Logf("acked %d, failed %d, refused %d, loaded %d (unacked but committed: %d)", len(a.acked), len(a.errs), a.refused.Load(), len(res.Records), len(res.Records)-len(a.acked))
}

// TestConnectionLoss: the writer's backend is terminated mid-run. Pending
// appends fail and are never acknowledged; the journal fails for good.
func TestConnectionLoss(t *testing.T) {
	url := pgURL(t)
	table := uniqueName("connloss")
	dropAtCleanup(t, url, table)
	j := openTable(t, url, table, nil)
	mustLoad(t, j)
	a := startAppendLoop(j, 8)
	waitFor(t, "100 acks", func() bool { return a.count() >= 100 })
	pid := j.conn.PgConn().PID()
	var ok bool
	if err := adminConn(t, url).QueryRow(ctxT(t), "SELECT pg_terminate_backend($1)", int32(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate backend %d: %v %v", pid, ok, err)
	}
	checkAfterFailure(t, url, table, j, a, func(err error) bool { return err != nil })
}

// TestStatementTimeout: the table is locked by someone else, the batch's
// INSERT waits past statement_timeout: the batch fails, nothing of it is
// applied, and the journal fails for good.
func TestStatementTimeout(t *testing.T) {
	url := pgURL(t)
	table := uniqueName("stmttimeout")
	dropAtCleanup(t, url, table)
	j := openTable(t, url, table, func(o *Options) { o.StatementTimeout = 300 * time.Millisecond })
	mustLoad(t, j)
	a := startAppendLoop(j, 4)
	waitFor(t, "50 acks", func() bool { return a.count() >= 50 })
	admin := adminConn(t, url)
	tx, err := admin.Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctxT(t), "LOCK TABLE "+ident(table)+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.Failed():
	case <-time.After(20 * time.Second):
		t.Fatal("journal did not fail while its table was locked")
	}
	_ = tx.Rollback(context.Background())
	checkAfterFailure(t, url, table, j, a, func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "57014"
	})
}

// TestBatchTimeout: the database stops answering (the writer's backend is
// paused by an advisory lock held elsewhere, with no statement timeout):
// the client-side batch deadline fails the journal.
func TestBatchTimeout(t *testing.T) {
	url := pgURL(t)
	table := uniqueName("batchtimeout")
	dropAtCleanup(t, url, table)
	j := openTable(t, url, table, func(o *Options) {
		o.StatementTimeout = -1
		o.BatchTimeout = 500 * time.Millisecond
	})
	mustLoad(t, j)
	mustAppend(t, j, add(1, "before"))
	admin := adminConn(t, url)
	tx, err := admin.Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctxT(t), "LOCK TABLE "+ident(table)+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	err = journal.AppendSync(ctxT(t), j, add(2, "stuck"))
	if err == nil {
		t.Fatal("append acknowledged while the table was locked")
	}
	t.Logf("append failed with: %v", err)
	<-j.Failed()
	_ = tx.Rollback(context.Background())
	_ = j.Close()
	res := mustLoad(t, openTable(t, url, table, nil))
	if len(res.Records) != 1 {
		t.Fatalf("%d records, want 1", len(res.Records))
	}
}

// TestTakeoverBreaksStuckWriter: a session of the old holder sits inside a
// batch transaction holding the fence row (as a writer paused in the
// middle of sending a batch would); the takeover terminates it instead of
// waiting forever.
func TestTakeoverBreaksStuckWriter(t *testing.T) {
	url := pgURL(t)
	nm := uniqueName("nm")
	dropAtCleanup(t, url, nm)
	a := openNM(t, url, nm, "g", 1*time.Second, 200*time.Millisecond)
	ea, err := a.Lease(LockPrimary).Acquire(ctxT(t), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	stuck := adminConn(t, url)
	tx, err := stuck.Begin(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctxT(t), fenceSQL(nm), "g", int64(ea)); err != nil {
		t.Fatal(err)
	}
	b := openNM(t, url, nm, "g", 1*time.Second, 200*time.Millisecond)
	eb, err := b.Lease(LockPrimary).Acquire(ctxT(t), 50*time.Millisecond)
	if err != nil || eb <= ea {
		t.Fatalf("takeover: epoch %d, %v", eb, err)
	}
	if _, err := tx.Exec(ctxT(t), "SELECT 1"); err == nil {
		t.Fatal("the stuck session survived the takeover")
	}
}
