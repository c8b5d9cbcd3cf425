package jdbcstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tandemmq/tandem/journal"
)

// BenchmarkAppend measures durable 1 KiB appends with W concurrent writers,
// each waiting for its append. Compare with BenchmarkRawInsert (W=1) and
// BenchmarkRawCopy (W=64) run in the same invocation:
//
//	go test ./jdbcstore -run '^$' -bench . -benchtime 2s
func BenchmarkAppend(b *testing.B) {
	for _, w := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			url := pgURL(b)
			table := uniqueName("bench")
			dropAtCleanup(b, url, table)
			j := openTable(b, url, table, nil)
			if _, err := j.Load(context.Background()); err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 1024)
			var next atomic.Uint64
			b.SetBytes(1024)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := (b.N + w - 1) / w
			for range w {
				wg.Add(1)
				go func() {
					defer wg.Done()
					done := make(chan error, 1)
					for range per {
						id := next.Add(1)
						if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: id, Type: 1, Data: data}}, true, func(err error) { done <- err }); err != nil {
							b.Error(err)
							return
						}
						if err := <-done; err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			st := j.Stats()
			if st.Batches > 0 {
				b.ReportMetric(float64(st.Appends)/float64(st.Batches), "appends/batch")
			}
		})
	}
}

// BenchmarkRawInsert is the single-row INSERT per transaction baseline.
func BenchmarkRawInsert(b *testing.B) {
	url := pgURL(b)
	table := uniqueName("braw")
	dropAtCleanup(b, url, table)
	conn := adminConn(b, url)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, journalDDL(table)[0]); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1024)
	sql := "INSERT INTO " + ident(table) + " (seq, kind, id, tx_id, user_type, data, epoch, crc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
	b.SetBytes(1024)
	b.ResetTimer()
	for i := range b.N {
		if _, err := conn.Exec(ctx, sql, rawRow(int64(i+1), data)...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawCopy is the COPY baseline: rows of 1 KiB, 10 000 per COPY.
func BenchmarkRawCopy(b *testing.B) {
	url := pgURL(b)
	table := uniqueName("bcopy")
	dropAtCleanup(b, url, table)
	conn := adminConn(b, url)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, journalDDL(table)[0]); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1024)
	cols := []string{"seq", "kind", "id", "tx_id", "user_type", "data", "epoch", "crc"}
	b.SetBytes(1024)
	b.ResetTimer()
	seq := int64(0)
	for left := b.N; left > 0; {
		n := min(left, 10000)
		i := 0
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			i++
			seq++
			return rawRow(seq, data), nil
		})); err != nil {
			b.Fatal(err)
		}
		left -= n
	}
}

// BenchmarkInterleaved1 alternates, in slices of 50, single-row INSERTs
// (one transaction each) and 1-writer journal appends of the same 1 KiB,
// so both see the same machine (the disk here is shared and its fsync
// latency drifts by 10x within a minute). It reports both rates and
// journal/insert.
func BenchmarkInterleaved1(b *testing.B) {
	url := pgURL(b)
	table, raw := uniqueName("bint"), uniqueName("bintraw")
	dropAtCleanup(b, url, table, raw)
	j := openTable(b, url, table, nil)
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		b.Fatal(err)
	}
	conn := adminConn(b, url)
	if _, err := conn.Exec(ctx, journalDDL(raw)[0]); err != nil {
		b.Fatal(err)
	}
	sql := "INSERT INTO " + ident(raw) + " (seq, kind, id, tx_id, user_type, data, epoch, crc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
	data := make([]byte, 1024)
	var tRaw, tJ time.Duration
	var nRaw, nJ int
	id := uint64(0)
	done := make(chan error, 1)
	b.ResetTimer()
	for nRaw+nJ < b.N {
		t0 := time.Now()
		for range 50 {
			id++
			if _, err := conn.Exec(ctx, sql, rawRow(int64(id), data)...); err != nil {
				b.Fatal(err)
			}
		}
		tRaw += time.Since(t0)
		nRaw += 50
		t0 = time.Now()
		for range 50 {
			id++
			if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: id, Type: 1, Data: data}}, true, func(err error) { done <- err }); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
		tJ += time.Since(t0)
		nJ += 50
	}
	b.StopTimer()
	rawRate, jRate := float64(nRaw)/tRaw.Seconds(), float64(nJ)/tJ.Seconds()
	b.ReportMetric(rawRate, "insert/s")
	b.ReportMetric(jRate, "append/s")
	b.ReportMetric(jRate/rawRate, "ratio")
}

// BenchmarkInterleaved64 alternates, on one machine at one time, three
// ways of writing 6400 rows of 1 KiB: one COPY in one transaction (the
// raw_bw baseline's shape), 64 journal writers appending 100 records each
// (each waiting for its append), and 100 COPYs of 64 rows, one transaction
// each, on one connection (raw64: what one-transaction-per-batch costs
// without the journal, the ceiling for 64 waiting writers). It reports the
// three row rates, ratio = journal/COPY (issue 6's goal), ceiling =
// raw64/COPY and efficiency = journal/raw64, and the journal's batch size,
// commit time per batch and client CPU per append.
func BenchmarkInterleaved64(b *testing.B) {
	url := pgURL(b)
	table, raw := uniqueName("bint"), uniqueName("bintraw")
	dropAtCleanup(b, url, table, raw)
	j := openTable(b, url, table, nil)
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		b.Fatal(err)
	}
	conn := adminConn(b, url)
	if _, err := conn.Exec(ctx, journalDDL(raw)[0]); err != nil {
		b.Fatal(err)
	}
	cols := []string{"seq", "kind", "id", "tx_id", "user_type", "data", "epoch", "crc"}
	data := make([]byte, 1024)
	const writers, per = 64, 100
	var tRaw, tJ, t64, cpuJ time.Duration
	var nRaw, nJ, n64 int
	var next atomic.Uint64
	seq := int64(0)
	copyRows := func(n int) (int64, error) {
		i := 0
		return conn.CopyFrom(ctx, pgx.Identifier{raw}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			i++
			seq++
			return rawRow(seq, data), nil
		}))
	}
	b.ResetTimer()
	for nRaw+nJ+n64 < b.N {
		t0 := time.Now()
		n, err := copyRows(writers * per)
		if err != nil {
			b.Fatal(err)
		}
		tRaw += time.Since(t0)
		nRaw += int(n)

		c0 := cpuTime()
		t0 = time.Now()
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan error, 1)
				for range per {
					if err := j.Append([]journal.Entry{{Kind: journal.KindAdd, ID: next.Add(1), Type: 1, Data: data}}, true, func(err error) { done <- err }); err != nil {
						b.Error(err)
						return
					}
					if err := <-done; err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		tJ += time.Since(t0)
		cpuJ += cpuTime() - c0
		nJ += writers * per

		t0 = time.Now()
		for range per {
			n, err := copyRows(writers)
			if err != nil {
				b.Fatal(err)
			}
			n64 += int(n)
		}
		t64 += time.Since(t0)
	}
	b.StopTimer()
	rawRate, jRate, rate64 := float64(nRaw)/tRaw.Seconds(), float64(nJ)/tJ.Seconds(), float64(n64)/t64.Seconds()
	b.ReportMetric(rawRate, "copy-rows/s")
	b.ReportMetric(jRate, "append/s")
	b.ReportMetric(rate64, "raw64-rows/s")
	b.ReportMetric(jRate/rawRate, "ratio")
	b.ReportMetric(rate64/rawRate, "ceiling")
	b.ReportMetric(jRate/rate64, "efficiency")
	st := j.Stats()
	batches := float64(max(st.Batches, 1))
	b.ReportMetric(float64(st.Appends)/batches, "appends/batch")
	b.ReportMetric(float64(st.WriteSyncTime.Microseconds())/batches, "commit-us/batch")
	b.ReportMetric(float64(cpuJ.Nanoseconds())/1e3/float64(max(nJ, 1)), "client-cpu-us/append")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLoad measures replay (a backup's activation reads the whole
// table): 20 000 live 1 KiB records, one Load per iteration.
func BenchmarkLoad(b *testing.B) {
	url := pgURL(b)
	table := uniqueName("bload")
	dropAtCleanup(b, url, table)
	j := openTable(b, url, table, func(o *Options) { o.CopyThreshold = 1 })
	ctx := context.Background()
	if _, err := j.Load(ctx); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1024)
	const n = 20000
	for start := 0; start < n; start += 1000 {
		es := make([]journal.Entry, 1000)
		for i := range es {
			es[i] = journal.Entry{Kind: journal.KindAdd, ID: uint64(start + i + 1), Type: 1, Data: data}
		}
		if err := journal.AppendSync(ctx, j, es...); err != nil {
			b.Fatal(err)
		}
	}
	_ = j.Close()
	b.SetBytes(n * 1024)
	b.ResetTimer()
	for range b.N {
		j := openTable(b, url, table, nil)
		res, err := j.Load(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Records) != n {
			b.Fatalf("loaded %d records, want %d", len(res.Records), n)
		}
		_ = j.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
