package jdbcstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// batch is what one database transaction writes.
type batch struct {
	rows     []row
	dels     []int64
	maxID    uint64
	idsLeave bool
}

// batchOf merges appends' rows and deletes. A row deleted in the same batch
// is never inserted.
func batchOf(ps []*pending, extraDels []int64, maxID uint64) *batch {
	b := &batch{maxID: maxID}
	nd := len(extraDels)
	for _, p := range ps {
		nd += len(p.dels)
		b.maxID = max(b.maxID, p.maxID)
	}
	if nd == 0 {
		if len(ps) == 1 {
			b.rows = ps[0].rows
			return b
		}
		for _, p := range ps {
			b.rows = append(b.rows, p.rows...)
		}
		return b
	}
	gone := make(map[int64]struct{}, nd)
	for _, s := range extraDels {
		gone[s] = struct{}{}
	}
	for _, p := range ps {
		for _, s := range p.dels {
			gone[s] = struct{}{}
		}
	}
	for _, p := range ps {
		for _, r := range p.rows {
			if _, ok := gone[r.seq]; ok {
				delete(gone, r.seq)
				continue
			}
			b.rows = append(b.rows, r)
		}
	}
	b.dels = make([]int64, 0, len(gone))
	for s := range gone {
		b.dels = append(b.dels, s)
	}
	// IDs leave the table (or never reach it): the meta row's high-water
	// marks must cover them.
	b.idsLeave = true
	return b
}

// writer is the group-commit loop: it takes everything pending when the
// previous transaction has finished, commits it in one transaction, and
// runs the callbacks in order. The batch grows by itself with commit
// latency; there is no timer. It owns the connection until Close.
func (j *Journal) writer() {
	defer close(j.stopped)
	for {
		j.mu.Lock()
		for len(j.queue) == 0 && !j.closing && j.err == nil {
			j.wake.Wait()
		}
		if err := j.err; err != nil {
			// Failed (here or by the lease watcher): fail what is queued,
			// in order, from this goroutine like every callback.
			q := j.queue
			j.queue = nil
			j.mu.Unlock()
			for _, p := range q {
				p.done(err)
			}
			return
		}
		if len(j.queue) == 0 {
			j.mu.Unlock()
			return // closing, nothing left
		}
		n, size := 0, 0
		for n < len(j.queue) && (n == 0 || size+j.queue[n].size <= j.opts.MaxBatchBytes) {
			size += j.queue[n].size
			n++
		}
		ps := make([]*pending, n)
		copy(ps, j.queue[:n])
		j.queue = j.queue[n:]
		if len(j.queue) == 0 {
			j.queue = nil
		}
		j.mu.Unlock()

		t0 := time.Now()
		err := j.commit(context.Background(), batchOf(ps, nil, 0))
		took := time.Since(t0)
		if err != nil {
			j.settle(err)
			err = fmt.Errorf("jdbcstore: %s: batch of %d appends not committed: %w", j.table, len(ps), err)
			j.fail(err)
		} else if ferr := j.Err(); ferr != nil {
			// Committed, but the lease was lost meanwhile: acknowledge
			// nothing more (the outcome is reported as a failure).
			err = ferr
		}
		if err != nil {
			for _, p := range ps {
				p.done(err)
			}
			continue // the top of the loop fails the rest
		}
		j.statsMu.Lock()
		j.stats.Appends += int64(len(ps))
		j.stats.WriteSyncTime += took
		j.statsMu.Unlock()
		for _, p := range ps {
			p.done(nil)
		}
		j.regroup(len(ps))
	}
}

// watchLease fails the journal when the lease is lost, so the broker,
// which halts when a journal fails, stops acknowledging before the lease
// can have expired in the database.
func (j *Journal) watchLease(l *Lease) {
	select {
	case <-l.Lost():
		err := l.Err()
		if err == nil {
			err = ErrLeaseLost
		}
		j.fail(fmt.Errorf("jdbcstore: %s: %w", j.table, err))
	case <-j.stopped:
	}
}

// settleTimeout bounds settle.
const settleTimeout = 2 * time.Second

// settle makes the failed batch's outcome final before anyone hears of the
// failure. When PostgreSQL itself reported the error, the transaction is
// already aborted. Otherwise (a timeout, a broken connection) the backend
// may still be running it and could commit later, under a restarted
// broker's feet: terminate it from a new connection, bounded by
// settleTimeout. A commit that already happened stays (the append fails
// with an outcome the caller must treat as unknown, like any database
// client's lost commit).
func (j *Journal) settle(err error) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return
	}
	pid := j.conn.PgConn().PID()
	_ = j.conn.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	conn, cerr := connect(ctx, j.opts.URL, settleTimeout, nil)
	if cerr != nil {
		j.opts.Logger.Error("jdbcstore: cannot terminate the failed batch's session; its outcome is unknown", "table", j.table, "pid", pid, "err", cerr)
		return
	}
	defer conn.Close(context.Background())
	// The two-argument form (PostgreSQL 14+) waits until the backend is
	// gone, so its transaction is aborted when this returns true.
	var ok bool
	if qerr := conn.QueryRow(ctx, "SELECT pg_terminate_backend($1, $2)", int32(pid), (settleTimeout / 2).Milliseconds()).Scan(&ok); qerr != nil {
		j.opts.Logger.Error("jdbcstore: cannot terminate the failed batch's session; its outcome is unknown", "table", j.table, "pid", pid, "err", qerr)
		return
	}
	if ok {
		j.opts.Logger.Warn("jdbcstore: terminated the session of the failed batch", "table", j.table, "pid", pid)
	}
}

// maxRegroupYields bounds regroup.
const maxRegroupYields = 8

// regroup lets the appenders just acknowledged append again before the
// next batch is taken. Without it, appenders that each wait for their
// append split into two groups that alternate (one group appends while the
// other's batch commits), and every commit carries half of what it could.
// It yields the processor (no timer, no sleep) while the queue keeps
// growing and is smaller than what was queued plus what just completed;
// a single appender costs one yield.
func (j *Journal) regroup(completed int) {
	j.mu.Lock()
	n := len(j.queue)
	stop := j.closing || j.err != nil
	j.mu.Unlock()
	want := n + completed
	for i := 0; i < maxRegroupYields && !stop && n < want; i++ {
		runtime.Gosched()
		j.mu.Lock()
		m := len(j.queue)
		stop = j.closing || j.err != nil
		j.mu.Unlock()
		if m == n {
			return
		}
		n = m
	}
}
