package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// `tandem soak` against `tandem run`: rows with the broker's figures (data
// directory size, RSS, goroutines, queue depths) as JSON lines, then the
// result with the checker's verdict.
func TestSoakAgainstTandemRun(t *testing.T) {
	bin := testenv.BuildTandem(t)
	dir := filepath.Join(t.TempDir(), "data")
	addr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	p := testenv.Start(t, "broker", bin, "run", "--data", dir, "--listen", "tcp://"+addr, "--http", httpAddr)
	testenv.WaitListening(t, p, addr, 30*time.Second)
	testenv.WaitListening(t, p, httpAddr, 30*time.Second)
	out, errOut, code := runCLI(t, bin, "soak", "--url", "tcp://"+addr, "--http", httpAddr, "--data-dir", dir,
		"--duration", "3s", "--interval", "1s", "--rate", "300", "--long-every", "5", "--long-hold", "30",
		"--restart-every", "1s", "--json")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 {
		t.Fatalf("%d lines: %s", len(lines), out)
	}
	for _, l := range lines[:len(lines)-1] {
		var row bench.SoakRow
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("row %q: %v", l, err)
		}
		if row.DataBytes <= 0 || row.BrokerRSS <= 0 || row.BrokerGoroutines <= 0 || row.LongDepth < 0 || row.ShortDepth < 0 {
			t.Fatalf("row without the broker's figures: %s", l)
		}
	}
	var res bench.SoakResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("result %q: %v", lines[len(lines)-1], err)
	}
	if !res.OK() || res.Produced == 0 || res.Consumed != res.Produced {
		t.Fatalf("result: %s", lines[len(lines)-1])
	}
}
