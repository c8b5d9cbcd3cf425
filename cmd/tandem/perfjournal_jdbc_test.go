package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/tandemmq/tandem/internal/testenv"
)

// TestPerfJournalJDBC runs perf-journal --store jdbc briefly against the
// test database and checks the JSON contract of docs/cli.md.
func TestPerfJournalJDBC(t *testing.T) {
	url := testenv.PG(t)
	var out, errb bytes.Buffer
	code := perfJournalMain([]string{"--store", "jdbc", "--url", url, "--writers", "4", "--size", "256", "--count", "400", "--baseline-duration", "100ms", "--json"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	for _, k := range []string{"backend", "writers", "size", "records", "records_per_sec", "mb_per_sec", "p50_us", "p99_us", "p999_us", "fsyncs_per_sec", "mean_batch", "raw_sync_per_sec", "raw_sync_p50_us", "raw_bw_mb_per_sec"} {
		if _, ok := res[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, out.String())
		}
	}
	if res["backend"] != "jdbc" || res["records"] != float64(400) || res["mean_batch"].(float64) < 1 || res["raw_bw_mb_per_sec"].(float64) <= 0 {
		t.Fatalf("implausible result: %s", out.String())
	}
}

// TestPerfJournalJDBCNeedsURL: --store jdbc without --url is a usage error.
func TestPerfJournalJDBCNeedsURL(t *testing.T) {
	var out, errb bytes.Buffer
	if code := perfJournalMain([]string{"--store", "jdbc", "--count", "1"}, &out, &errb); code != exitCannot {
		t.Fatalf("exit %d, want %d: %s", code, exitCannot, errb.String())
	}
}
