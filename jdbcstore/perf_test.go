package jdbcstore

import (
	"context"
	"testing"
	"time"
)

// TestPerfJournalSmoke runs perf-journal briefly: it must produce sane
// numbers and leave no perf tables behind with Clean.
func TestPerfJournalSmoke(t *testing.T) {
	url := pgURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := PerfJournal(ctx, PerfOptions{URL: url, Writers: 4, Size: 256, Count: 400, Baseline: 200 * time.Millisecond, Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Backend != "jdbc" || res.Records != 400 || res.RecordsPerSec <= 0 || res.RawSyncPerSec <= 0 || res.RawBWRowsPerSec <= 0 || res.MeanBatch < 1 || res.P50us <= 0 {
		t.Fatalf("implausible result %+v", res)
	}
	// Another process's run (another test binary, a perf-journal command)
	// may have started once this one released the perf lock: look while
	// holding it, when no run is in progress.
	release, err := PerfLock(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var n int
	if err := adminConn(t, url).QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname IN ($1, $2)", PerfTable, PerfRawTable).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d perf tables left after Clean (%v)", n, err)
	}
}

// TestPerfLockSerialises: a perf run waits while another holds the perf
// lock (it must not drop the other's perf_ tables or measure its load),
// and runs to completion once the lock is released.
func TestPerfLockSerialises(t *testing.T) {
	url := pgURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	release, err := PerfLock(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	admin := adminConn(t, url)
	// A table of the holder's run: a waiting run must leave it alone.
	if _, err := admin.Exec(ctx, "DROP TABLE IF EXISTS "+ident(PerfRawTable)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, journalDDL(PerfRawTable)[0]); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res *PerfResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := PerfJournal(ctx, PerfOptions{URL: url, Writers: 2, Size: 64, Count: 50, Baseline: 20 * time.Millisecond, Clean: true})
		done <- result{res, err}
	}()
	// Wait until the other run's session waits for the advisory lock.
	for {
		var waiting int
		err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = $1 AND objid = $2", int64(perfLockKey>>32), int64(perfLockKey&0xffffffff)).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("perf run finished while another held the perf lock: %+v, %v", r.res, r.err)
		case <-ctx.Done():
			t.Fatal("the perf run never waited for the lock")
		case <-time.After(10 * time.Millisecond):
		}
	}
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = $1", PerfRawTable).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the waiting run touched the holder's %s: %d tables (%v)", PerfRawTable, n, err)
	}
	if _, err := admin.Exec(ctx, "DROP TABLE "+ident(PerfRawTable)); err != nil {
		t.Fatal(err)
	}
	release()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res.Records != 50 {
		t.Fatalf("records %d, want 50", r.res.Records)
	}
}
