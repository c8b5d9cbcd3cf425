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
	var n int
	if err := adminConn(t, url).QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname IN ($1, $2)", PerfTable, PerfRawTable).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d perf tables left after Clean (%v)", n, err)
	}
}
