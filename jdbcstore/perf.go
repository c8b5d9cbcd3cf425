package jdbcstore

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tandemmq/tandem/journal"
)

// PerfOptions configure PerfJournal (tandem perf-journal --store jdbc).
type PerfOptions struct {
	URL      string
	Writers  int           // concurrent writers, each waiting for its append; 0 means 1
	Size     int           // record size in bytes; 0 means 1024
	Duration time.Duration // run length when Count is 0; 0 means 10 s
	Count    int           // total records, overriding Duration when > 0
	// Baseline is how long each raw baseline runs; 0 means 2 s.
	Baseline time.Duration
	// Clean drops the perf_ tables at the end.
	Clean  bool
	Logger *slog.Logger
}

// PerfResult is what perf-journal reports for --store jdbc; the JSON keys
// are CLI.md's.
type PerfResult struct {
	Backend       string  `json:"backend"`
	Writers       int     `json:"writers"`
	Size          int     `json:"size"`
	Records       int64   `json:"records"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	P50us         float64 `json:"p50_us"`
	P99us         float64 `json:"p99_us"`
	P999us        float64 `json:"p999_us"`
	// FsyncsPerSec is committed batch transactions per second (each one
	// WAL flush).
	FsyncsPerSec float64 `json:"fsyncs_per_sec"`
	MeanBatch    float64 `json:"mean_batch"`
	// RawSyncPerSec and RawSyncP50us: one single-row INSERT of the same
	// size per transaction, one writer.
	RawSyncPerSec float64 `json:"raw_sync_per_sec"`
	RawSyncP50us  float64 `json:"raw_sync_p50_us"`
	// RawBWMBPerSec: COPY of rows of the same size (RawBWRowsPerSec rows/s).
	RawBWMBPerSec   float64 `json:"raw_bw_mb_per_sec"`
	RawBWRowsPerSec float64 `json:"raw_bw_rows_per_sec"`
}

// Perf table names: perf-journal's own, recreated at every start.
const (
	PerfTable    = "perf_messages"
	PerfRawTable = "perf_raw"
)

// perfLockKey is the advisory lock that serialises perf-journal runs on
// one database ("tandempf").
const perfLockKey = 0x74616e64656d7066

// PerfLock takes the database's perf-journal lock on a connection of its
// own, waiting while another run (another tandem perf-journal, a test)
// holds it, and returns the function that releases it. Runs share the
// perf_ tables: two at once would drop each other's tables, and each would
// measure the other's load as its own. The lock is a session advisory
// lock, so a process that dies releases it with its connection.
func PerfLock(ctx context.Context, url string, log *slog.Logger) (release func(), err error) {
	conn, err := connect(ctx, url, 0, nil)
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(perfLockKey)).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("jdbcstore: perf: lock: %w", err)
	}
	if !ok {
		if log != nil {
			log.Info("jdbcstore: perf: another perf-journal run is using this database; waiting for it to finish")
		}
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(perfLockKey)); err != nil {
			conn.Close(context.Background())
			return nil, fmt.Errorf("jdbcstore: perf: wait for the lock: %w", err)
		}
	}
	var once sync.Once
	return func() { once.Do(func() { conn.Close(context.Background()) }) }, nil
}

// PerfOpen returns a journal, not yet loaded, on perf-journal's own table
// (perf_messages, dropped and created again) and a cleanup function that
// drops it. It takes no lease (no fencing).
func PerfOpen(ctx context.Context, url string) (*Journal, func() error, error) {
	admin, err := connect(ctx, url, 0, nil)
	if err != nil {
		return nil, nil, err
	}
	defer admin.Close(context.Background())
	if err := dropTable(ctx, admin, PerfTable); err != nil {
		return nil, nil, fmt.Errorf("jdbcstore: perf: drop %s: %w", PerfTable, err)
	}
	j, err := Open(ctx, Options{URL: url, Table: PerfTable})
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() error {
		_ = j.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := connect(ctx, url, 0, nil)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		return dropTable(ctx, c, PerfTable)
	}
	return j, cleanup, nil
}

// withRawTable runs f on a fresh perf_raw table (the journal table's
// shape), dropped afterwards.
func withRawTable(ctx context.Context, url string, f func(conn *pgx.Conn) error) error {
	conn, err := connect(ctx, url, 0, nil)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := dropTable(ctx, conn, PerfRawTable); err != nil {
		return fmt.Errorf("jdbcstore: perf: drop %s: %w", PerfRawTable, err)
	}
	if _, err := conn.Exec(ctx, journalDDL(PerfRawTable)[0]); err != nil {
		return fmt.Errorf("jdbcstore: perf: create %s: %w", PerfRawTable, err)
	}
	ferr := f(conn)
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+ident(PerfRawTable)); err != nil && ferr == nil {
		ferr = err
	}
	return ferr
}

// PerfRawSync is perf-journal's raw_sync baseline for PostgreSQL: one
// writer, one single-row INSERT of a size-byte row per transaction, for
// about d. It returns each INSERT's latency.
func PerfRawSync(ctx context.Context, url string, size int, d time.Duration) ([]time.Duration, error) {
	var r rawSyncStats
	err := withRawTable(ctx, url, func(conn *pgx.Conn) error { return r.run(ctx, conn, perfData(size), d) })
	return r.lat, err
}

// PerfRawBandwidth is perf-journal's raw_bw baseline for PostgreSQL: COPY
// of size-byte rows, 10 000 per COPY, for about d. It returns bytes of row
// data per second (rows/s times size).
func PerfRawBandwidth(ctx context.Context, url string, size int, d time.Duration) (float64, error) {
	var r rawCopyStats
	err := withRawTable(ctx, url, func(conn *pgx.Conn) error { return r.run(ctx, conn, perfData(size), d) })
	if err != nil || r.elapsed <= 0 {
		return 0, err
	}
	return float64(r.rows) * float64(size) / r.elapsed.Seconds(), nil
}

func perfData(size int) []byte {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*31 + 7)
	}
	return data
}

// PerfJournal measures the journal on PostgreSQL against the two raw
// baselines in one run, each baseline split in halves before and after
// the journal run so drift biases neither side. It takes no lease. (The
// tandem perf-journal command uses PerfOpen, PerfRawSync and
// PerfRawBandwidth through its store hook; this is the same measurement
// as a library call, used by tests.)
func PerfJournal(ctx context.Context, o PerfOptions) (*PerfResult, error) {
	if o.Writers <= 0 {
		o.Writers = 1
	}
	if o.Size <= 0 {
		o.Size = 1024
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Baseline <= 0 {
		o.Baseline = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	release, err := PerfLock(ctx, o.URL, o.Logger)
	if err != nil {
		return nil, err
	}
	defer release()
	res := &PerfResult{Backend: "jdbc", Writers: o.Writers, Size: o.Size}
	data := perfData(o.Size)
	var rs rawSyncStats
	var rc rawCopyStats
	var lat []time.Duration
	var elapsed time.Duration
	var st journal.Stats
	err = withRawTable(ctx, o.URL, func(admin *pgx.Conn) error {
		baselines := func() error {
			if err := rs.run(ctx, admin, data, o.Baseline/2); err != nil {
				return err
			}
			return rc.run(ctx, admin, data, o.Baseline/2)
		}
		if err := baselines(); err != nil {
			return err
		}
		j, cleanup, err := PerfOpen(ctx, o.URL)
		if err != nil {
			return err
		}
		if _, err := j.Load(ctx); err != nil {
			_ = cleanup()
			return err
		}
		lat, elapsed, err = perfRun(ctx, j, o, data)
		st = j.Stats()
		cerr := j.Close()
		if o.Clean {
			if err := cleanup(); cerr == nil {
				cerr = err
			}
		}
		if err != nil {
			return err
		}
		if cerr != nil {
			return cerr
		}
		return baselines()
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(rs.lat)
	res.RawSyncPerSec = float64(len(rs.lat)) / rs.elapsed.Seconds()
	res.RawSyncP50us = percentileUS(rs.lat, 0.5)
	res.RawBWRowsPerSec = float64(rc.rows) / rc.elapsed.Seconds()
	res.RawBWMBPerSec = res.RawBWRowsPerSec * float64(o.Size) / 1e6
	n := int64(len(lat))
	secs := elapsed.Seconds()
	res.Records = n
	res.RecordsPerSec = float64(n) / secs
	res.MBPerSec = float64(n) * float64(o.Size) / 1e6 / secs
	res.P50us, res.P99us, res.P999us = percentileUS(lat, 0.50), percentileUS(lat, 0.99), percentileUS(lat, 0.999)
	res.FsyncsPerSec = float64(st.Syncs) / secs
	if st.Syncs > 0 {
		res.MeanBatch = float64(st.Appends) / float64(st.Syncs)
	}
	return res, nil
}

// perfRun runs the writers and returns every append's latency.
func perfRun(ctx context.Context, j *Journal, o PerfOptions, data []byte) ([]time.Duration, time.Duration, error) {
	var (
		mu    sync.Mutex
		all   []time.Duration
		first error
		wg    sync.WaitGroup
	)
	perWriter := 0
	if o.Count > 0 {
		perWriter = (o.Count + o.Writers - 1) / o.Writers
	}
	start := time.Now()
	deadline := start.Add(o.Duration)
	for w := range o.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			done := make(chan error, 1)
			cb := func(err error) { done <- err }
			for i := 1; ; i++ {
				if perWriter > 0 && i > perWriter {
					break
				}
				if perWriter == 0 && i%16 == 1 && time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: uint64(w+1)<<40 | uint64(i), Type: 1, Data: data}}, true, cb)
				if err == nil {
					err = <-done
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					break
				}
				lat = append(lat, time.Since(t0))
				if ctx.Err() != nil {
					break
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return nil, 0, fmt.Errorf("jdbcstore: perf: %w", first)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	slices.Sort(all)
	return all, elapsed, nil
}

func percentileUS(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)) * p)
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i].Nanoseconds()) / 1e3
}

// rawRow returns the values of one baseline row (as the journal stores
// them, CRC included, so both sides do the same work per row).
func rawRow(seq int64, data []byte) []any {
	r := row{seq: seq, kind: journal.KindAdd, id: uint64(seq), userType: 1, data: data}
	return []any{seq, int16(r.kind), int64(r.id), int64(0), int16(1), data, int64(0), int64(r.sum())}
}

type rawSyncStats struct {
	lat     []time.Duration
	elapsed time.Duration
	seq     int64
}

// run: one single-row INSERT per transaction (autocommit), 1 writer.
func (r *rawSyncStats) run(ctx context.Context, conn *pgx.Conn, data []byte, d time.Duration) error {
	sql := "INSERT INTO " + ident(PerfRawTable) + " (seq, kind, id, tx_id, user_type, data, epoch, crc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
	start := time.Now()
	for time.Since(start) < d {
		r.seq++
		t0 := time.Now()
		if _, err := conn.Exec(ctx, sql, rawRow(r.seq, data)...); err != nil {
			return fmt.Errorf("jdbcstore: perf: raw INSERT: %w", err)
		}
		r.lat = append(r.lat, time.Since(t0))
	}
	r.elapsed += time.Since(start)
	return nil
}

type rawCopyStats struct {
	rows    int64
	elapsed time.Duration
	seq     int64
}

// run: COPY rows of the same size, 10 000 rows per COPY (and commit).
func (r *rawCopyStats) run(ctx context.Context, conn *pgx.Conn, data []byte, d time.Duration) error {
	const chunk = 10000
	cols := []string{"seq", "kind", "id", "tx_id", "user_type", "data", "epoch", "crc"}
	if r.seq == 0 {
		r.seq = 1 << 40
	}
	start := time.Now()
	for time.Since(start) < d {
		i := 0
		n, err := conn.CopyFrom(ctx, pgx.Identifier{PerfRawTable}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if i == chunk {
				return nil, nil
			}
			i++
			r.seq++
			return rawRow(r.seq, data), nil
		}))
		if err != nil {
			return fmt.Errorf("jdbcstore: perf: raw COPY: %w", err)
		}
		r.rows += n
	}
	r.elapsed += time.Since(start)
	return nil
}
