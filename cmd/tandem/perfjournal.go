package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/journal"
	"golang.org/x/sys/unix"
)

func init() {
	register(command{name: "perf-journal", summary: "measure journal append throughput and latency against raw baselines", run: runPerfJournal})
}

// PerfStore is a store other than the file journal that perf-journal can
// measure (--store NAME --url URL). The jdbcstore package's command file
// registers "jdbc" in perfStores from its init.
type PerfStore interface {
	// Kind is the JSON "backend" value ("jdbc").
	Kind() string
	// Open returns a loaded-ready journal on fresh private storage (for
	// jdbc: tables with prefix perf_, recreated) and a cleanup function.
	Open(ctx context.Context, url string) (j journal.Journal, cleanup func() error, err error)
	// RawSync measures the store's raw synced single-writer appends of
	// size bytes for about d and returns each one's latency.
	RawSync(ctx context.Context, url string, size int, d time.Duration) ([]time.Duration, error)
	// RawBandwidth measures the store's bulk write path for about d and
	// returns bytes per second.
	RawBandwidth(ctx context.Context, url string, size int, d time.Duration) (float64, error)
}

// perfStores holds the registered stores by --store name.
var perfStores = map[string]PerfStore{}

// statser is implemented by journals that count their syncs.
type statser interface{ Stats() journal.Stats }

// perfResult is perf-journal's JSON output (docs/cli.md).
type perfResult struct {
	Backend         string  `json:"backend"`
	Writers         int     `json:"writers"`
	Size            int     `json:"size"`
	Records         int64   `json:"records"`
	RecordsPerSec   float64 `json:"records_per_sec"`
	MBPerSec        float64 `json:"mb_per_sec"`
	P50us           float64 `json:"p50_us"`
	P99us           float64 `json:"p99_us"`
	P999us          float64 `json:"p999_us"`
	FsyncsPerSec    float64 `json:"fsyncs_per_sec"`
	MeanBatch       float64 `json:"mean_batch"`
	RawSyncPerSec   float64 `json:"raw_sync_per_sec"`
	RawSyncP50us    float64 `json:"raw_sync_p50_us"`
	RawBWMBPerSec   float64 `json:"raw_bw_mb_per_sec"`
	DurationSeconds float64 `json:"duration_seconds"`
}

func runPerfJournal(args []string) int { return perfJournalMain(args, os.Stdout, os.Stderr) }

func perfJournalMain(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("perf-journal", flag.ContinueOnError)
	fset.SetOutput(stderr)
	dir := fset.String("dir", "", "journal directory (empty or holding a journal)")
	store := fset.String("store", "file", "store to measure: file, or jdbc with --url")
	url := fset.String("url", "", "database URL for --store jdbc")
	jtype := fset.String("journal-type", "NIO", "NIO, DIRECT or ASYNCIO (io_uring; falls back to DIRECT)")
	writers := fset.Int("writers", 1, "concurrent writers, each waiting for its append before the next")
	size := fset.Int("size", 1024, "record size in bytes")
	duration := fset.Duration("duration", 0, "how long to append (default 5s unless --count)")
	count := fset.Int64("count", 0, "total records to append (instead of --duration)")
	asJSON := fset.Bool("json", false, "print one JSON object")
	clean := fset.Bool("clean", false, "remove the journal's segment files afterwards")
	segSize := fset.Int64("journal-file-size", journal.DefaultSegmentSize, "segment size in bytes")
	baseline := fset.Duration("baseline-duration", 2*time.Second, "how long each raw baseline runs")
	bufTimeout := fset.Duration("journal-buffer-timeout", 0, "0: adaptive group commit; > 0 caps an extra wait for fuller batches")
	cpuProfile := fset.String("cpuprofile", "", "write a CPU profile of the measured appends (not the baselines) to this file")
	if err := fset.Parse(args); err != nil {
		return exitCannot
	}
	if fset.NArg() != 0 || *writers < 1 || *size < 1 || *count < 0 || *duration < 0 {
		fmt.Fprintln(stderr, "usage: tandem perf-journal (--dir DIR | --store jdbc --url URL) [--journal-type NIO|DIRECT|ASYNCIO] [--writers N] [--size BYTES] [--duration D | --count N] [--json] [--clean]")
		return exitCannot
	}
	if *duration == 0 && *count == 0 {
		*duration = 5 * time.Second
	}
	ctx := context.Background()
	var (
		res     perfResult
		j       journal.Journal
		cleanup func() error
	)
	res.Writers, res.Size = *writers, *size
	switch *store {
	case "file":
		if *dir == "" {
			fmt.Fprintln(stderr, "tandem perf-journal: --dir is required (or --store jdbc --url URL)")
			return exitCannot
		}
		kind, warn, err := aio.ParseJournalType(*jtype)
		if err != nil {
			fmt.Fprintf(stderr, "tandem perf-journal: %v\n", err)
			return exitCannot
		}
		if warn {
			fmt.Fprintf(stderr, "warning: journal-type %s is accepted as NIO\n", *jtype)
		}
		if err := checkPerfDir(*dir); err != nil {
			fmt.Fprintf(stderr, "tandem perf-journal: %v\n", err)
			return exitCannot
		}
		fs := aio.OS(kind, aio.DefaultOptions())
		res.Backend = fs.Kind().String()
		if err := fileBaselines(*dir, *size, *baseline, &res); err != nil {
			fmt.Fprintf(stderr, "tandem perf-journal: baseline: %v\n", err)
			return exitCannot
		}
		fj, err := journal.Open(journal.Options{Dir: *dir, FS: fs, SegmentSize: *segSize, BufferTimeout: *bufTimeout})
		if err != nil {
			fmt.Fprintf(stderr, "tandem perf-journal: %v\n", err)
			return exitCannot
		}
		j = fj
		cleanup = func() error {
			if *clean {
				return removeSegments(*dir)
			}
			return nil
		}
	default:
		ps, ok := perfStores[*store]
		if !ok {
			if *store == "jdbc" {
				fmt.Fprintln(stderr, "tandem perf-journal: --store jdbc is not built yet (the jdbcstore package registers it)")
			} else {
				fmt.Fprintf(stderr, "tandem perf-journal: unknown --store %q (want file or jdbc)\n", *store)
			}
			return exitCannot
		}
		if *url == "" {
			fmt.Fprintln(stderr, "tandem perf-journal: --store jdbc needs --url")
			return exitCannot
		}
		res.Backend = ps.Kind()
		lat, err := ps.RawSync(ctx, *url, *size, *baseline)
		if err != nil {
			fmt.Fprintf(stderr, "tandem perf-journal: raw_sync baseline: %v\n", err)
			return exitCannot
		}
		res.RawSyncPerSec, res.RawSyncP50us = rate(lat), pct(lat, 0.50)
		bw, err := ps.RawBandwidth(ctx, *url, *size, *baseline)
		if err != nil {
			fmt.Fprintf(stderr, "tandem perf-journal: raw_bw baseline: %v\n", err)
			return exitCannot
		}
		res.RawBWMBPerSec = bw / 1e6
		if j, cleanup, err = ps.Open(ctx, *url); err != nil {
			fmt.Fprintf(stderr, "tandem perf-journal: %v\n", err)
			return exitCannot
		}
	}
	var stopProfile func()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "tandem perf-journal: %v\n", err)
			return exitCannot
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "tandem perf-journal: cpu profile: %v\n", err)
			return exitCannot
		}
		stopProfile = pprof.StopCPUProfile
	}
	err := runPerf(ctx, j, *writers, *size, *duration, *count, &res)
	if stopProfile != nil {
		stopProfile()
	}
	if cerr := j.Close(); err == nil {
		err = cerr
	}
	if cerr := cleanup(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "tandem perf-journal: %v\n", err)
		if errors.Is(err, journal.ErrClosed) || j.Err() != nil {
			return exitHalted
		}
		return exitFailed
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(res); err != nil {
			return exitCannot
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "backend %s, %d writers, %d-byte records: %d records in %.2fs\n", res.Backend, res.Writers, res.Size, res.Records, res.DurationSeconds)
	fmt.Fprintf(stdout, "  %.0f records/s, %.1f MB/s, latency p50 %.0f us, p99 %.0f us, p99.9 %.0f us\n", res.RecordsPerSec, res.MBPerSec, res.P50us, res.P99us, res.P999us)
	fmt.Fprintf(stdout, "  %.0f fsyncs/s, %.1f records per fsync\n", res.FsyncsPerSec, res.MeanBatch)
	fmt.Fprintf(stdout, "  raw baselines: O_DSYNC %d-byte appends %.0f/s (p50 %.0f us); 1 MiB appends + fdatasync %.1f MB/s\n", res.Size, res.RawSyncPerSec, res.RawSyncP50us, res.RawBWMBPerSec)
	return exitOK
}

// runPerf loads j and runs the writers.
func runPerf(ctx context.Context, j journal.Journal, writers, size int, d time.Duration, count int64, res *perfResult) error {
	lr, err := j.Load(ctx)
	if err != nil {
		return err
	}
	nextID := atomic.Uint64{}
	nextID.Store(lr.MaxID)
	lr = nil
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	var issued atomic.Int64
	lats := make([][]time.Duration, writers)
	errs := make(chan error, writers)
	var st0 journal.Stats
	sj, hasStats := j.(statser)
	if hasStats {
		st0 = sj.Stats()
	}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, 1<<16)
			for {
				if count > 0 {
					if issued.Add(1) > count {
						break
					}
				} else if time.Now().After(deadline) {
					break
				}
				id := nextID.Add(1)
				t0 := time.Now()
				if err := journal.AppendSync(ctx, j, journal.Entry{Kind: journal.KindAdd, ID: id, Type: 1, Data: data}); err != nil {
					errs <- err
					return
				}
				l = append(l, time.Since(t0))
			}
			lats[w] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	res.Records = int64(len(all))
	res.DurationSeconds = elapsed
	res.RecordsPerSec = float64(len(all)) / elapsed
	res.MBPerSec = float64(len(all)) * float64(size) / elapsed / 1e6
	res.P50us, res.P99us, res.P999us = pctSorted(all, 0.50), pctSorted(all, 0.99), pctSorted(all, 0.999)
	if hasStats {
		st := sj.Stats()
		syncs := st.Syncs - st0.Syncs
		res.FsyncsPerSec = float64(syncs) / elapsed
		if syncs > 0 {
			res.MeanBatch = float64(len(all)) / float64(syncs)
		}
	}
	return nil
}

func pct(l []time.Duration, p float64) float64 {
	s := slices.Clone(l)
	slices.Sort(s)
	return pctSorted(s, p)
}

func pctSorted(s []time.Duration, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := min(int(float64(len(s))*p), len(s)-1)
	return float64(s[i].Nanoseconds()) / 1e3
}

func rate(l []time.Duration) float64 {
	var total time.Duration
	for _, d := range l {
		total += d
	}
	if total == 0 {
		return 0
	}
	return float64(len(l)) / total.Seconds()
}

// checkPerfDir accepts a missing or empty directory, or one holding only
// a journal (segment files, possibly lock files).
func checkPerfDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if isSegmentFile(n) || strings.HasSuffix(n, ".lock") {
			continue
		}
		return fmt.Errorf("%s holds %s: --dir must be empty or hold a journal", dir, n)
	}
	return nil
}

func isSegmentFile(name string) bool {
	base := strings.TrimSuffix(name, ".tmp")
	for _, nm := range []journal.Naming{{Prefix: journal.DefaultPrefix, Ext: journal.DefaultExt}, {Prefix: journal.BindingsPrefix, Ext: journal.BindingsExt}} {
		if strings.HasPrefix(base, nm.Prefix+"-") && strings.HasSuffix(base, "."+nm.Ext) {
			return true
		}
	}
	return false
}

func removeSegments(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if isSegmentFile(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// fileBaselines measures raw_sync and raw_bw in a temporary directory
// next to dir (the same file system), removed afterwards.
func fileBaselines(dir string, size int, d time.Duration, res *perfResult) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	parent := filepath.Dir(abs)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".tandem-perf-baseline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lat, err := rawSync(filepath.Join(tmp, "raw-sync"), size, d)
	if err != nil {
		return err
	}
	res.RawSyncPerSec, res.RawSyncP50us = rate(lat), pct(lat, 0.50)
	bw, err := rawBandwidth(filepath.Join(tmp, "raw-bw"), d)
	if err != nil {
		return err
	}
	res.RawBWMBPerSec = bw / 1e6
	return nil
}

// rawSync appends size-byte records to a growing file opened with O_DSYNC.
func rawSync(path string, size int, d time.Duration) ([]time.Duration, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_APPEND|unix.O_DSYNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, size)
	var lat []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) || len(lat) < 10 {
		t0 := time.Now()
		if _, err := unix.Write(fd, buf); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

// rawBandwidth appends 1 MiB writes to a growing file, fdatasync after
// each, and returns bytes per second.
func rawBandwidth(path string, d time.Duration) (float64, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_APPEND|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	var n int64
	start := time.Now()
	end := start.Add(d)
	for time.Now().Before(end) || n < 8 {
		if _, err := unix.Write(fd, buf); err != nil {
			return 0, fmt.Errorf("write %s: %w", path, err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			return 0, fmt.Errorf("fdatasync %s: %w", path, err)
		}
		n++
		if n >= 1024 { // 1 GiB is enough
			break
		}
	}
	return float64(n<<20) / time.Since(start).Seconds(), nil
}
