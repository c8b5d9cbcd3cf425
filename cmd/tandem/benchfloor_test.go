package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandemmq/tandem/bench"
	"github.com/tandemmq/tandem/internal/testenv"
)

// `tandem bench --timeline FILE --floor-dir DIR` writes per-second rows,
// measures the floor through `tandem bench-echo` and reports p99.99 and
// the p50's ratio to the floor (issue 20, items 2 and 4).
func TestBenchTimelineAndFloor(t *testing.T) {
	bin := testenv.BuildTandem(t)
	b := startBenchBroker(t, bin)
	tl := filepath.Join(t.TempDir(), "timeline.jsonl")
	out, errOut, code := runCLI(t, bin, "bench", "--url", b.url, "--destination", "queue://floor", "--json",
		"--count", "300", "--timeline", tl, "--floor-dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var r bench.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if r.SendP9999us == nil || r.SendMaxUs == nil || *r.SendP9999us > *r.SendMaxUs {
		t.Fatalf("p99.99 and max: %s", out)
	}
	if f := r.Floor; f == nil || f.DiskP50us <= 0 || f.RTTP50us <= 0 || f.SumP50us <= 0 || r.SendP50OverFloor == nil || *r.SendP50OverFloor <= 0 {
		t.Fatalf("floor: %s", out)
	}
	fl, err := os.Open(tl)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	var produced int64
	for sc := bufio.NewScanner(fl); sc.Scan(); {
		var row bench.TimelineRow
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("timeline line %q: %v", sc.Text(), err)
		}
		produced += row.Produced
	}
	if produced != r.Produced {
		t.Fatalf("timeline counts %d sends, the run %d", produced, r.Produced)
	}
}
