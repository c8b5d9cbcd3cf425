package jdbcstore

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/tandemmq/tandem/journal"
)

// Journal is the journal interface on one PostgreSQL table. One dedicated
// connection serves it: Load reads through it, then a single writer
// goroutine commits batches through it.
type Journal struct {
	opts  Options
	table string
	conn  *pgx.Conn

	sqlInsert, sqlInsertOne, sqlDelete, sqlMeta, sqlFence string

	mu      sync.Mutex
	wake    *sync.Cond
	st      *state
	nextSeq int64
	loaded  bool
	closing bool
	queue   []*pending
	err     error
	failed  chan struct{}
	stopped chan struct{}  // closed when the writer has exited
	watcher sync.WaitGroup // the lease watcher, when Options.Lease is set

	// Written by the writer only (and by Load before it starts).
	hwID, hwEpoch uint64
	copyBuf       bytes.Buffer
	stats         journal.Stats
	statsMu       sync.Mutex
}

// pending is one accepted Append waiting for its batch.
type pending struct {
	rows  []row
	dels  []int64
	maxID uint64
	size  int
	done  func(error)
}

var _ journal.Journal = (*Journal)(nil)

// Open connects to the database and makes sure the table exists with a
// schema this code understands. Call Load before Append.
func Open(ctx context.Context, opts Options) (*Journal, error) {
	o := opts.withDefaults()
	table, err := tableName(o.Table)
	if err != nil {
		return nil, err
	}
	if o.Fence.Epoch != 0 {
		if o.Fence.Table, err = tableName(o.Fence.Table); err != nil {
			return nil, err
		}
	}
	conn, err := connect(ctx, o.URL, o.StatementTimeout, o.Logger)
	if err != nil {
		return nil, err
	}
	meta, err := ensureTable(ctx, conn, table, kindJournal, journalDDL(table))
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	j := &Journal{
		opts:    o,
		table:   table,
		conn:    conn,
		failed:  make(chan struct{}),
		stopped: make(chan struct{}),
		hwID:    meta.maxID,
		hwEpoch: meta.maxEpoch,
	}
	j.wake = sync.NewCond(&j.mu)
	t := ident(table)
	j.sqlInsert = "INSERT INTO " + t + " (seq, kind, id, tx_id, user_type, data, epoch, crc) " +
		"SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bigint[], $5::smallint[], $6::bytea[], $7::bigint[], $8::bigint[])"
	j.sqlInsertOne = "INSERT INTO " + t + " (seq, kind, id, tx_id, user_type, data, epoch, crc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
	j.sqlDelete = "DELETE FROM " + t + " WHERE seq = ANY($1::bigint[])"
	j.sqlMeta = "UPDATE " + ident(MetaTable) + " SET max_id = $2, max_epoch = $3 WHERE name = $1"
	if o.Fence.Epoch != 0 {
		j.sqlFence = fenceSQL(o.Fence.Table)
	}
	return j, nil
}

// Table returns the table's (folded) name.
func (j *Journal) Table() string { return j.table }

// Stats returns the writer's counters, as the file journal reports them:
// Appends acknowledged, Batches committed (each one transaction and one
// WAL flush, so Syncs equals Batches), Bytes of row data inserted, and
// WriteSyncTime, the time from sending each committed batch to its
// commit's reply (divided by Batches: the mean commit latency).
func (j *Journal) Stats() journal.Stats {
	j.statsMu.Lock()
	defer j.statsMu.Unlock()
	return j.stats
}

// Load replays the table in sequence order, verifying every row's CRC, and
// starts the writer. Rows of transactions that never finished are deleted
// (rolled back) in one fenced transaction before Load returns.
func (j *Journal) Load(ctx context.Context) (*journal.LoadResult, error) {
	j.mu.Lock()
	if j.loaded || j.closing {
		j.mu.Unlock()
		return nil, fmt.Errorf("jdbcstore: %s: Load called twice or after Close", j.table)
	}
	j.mu.Unlock()
	if err := checkFence(ctx, j.conn, j.opts.Fence); err != nil {
		return nil, err
	}
	st, res, lastSeq, garbage, err := replay(ctx, j.conn, j.table)
	if err != nil {
		return nil, err
	}
	res.MaxID = max(res.MaxID, j.hwID)
	res.Epoch = max(res.Epoch, j.hwEpoch)
	if len(garbage) > 0 {
		b := batchOf(nil, garbage, st.maxID)
		if err := j.commit(ctx, b); err != nil {
			return nil, fmt.Errorf("jdbcstore: %s: delete rows of unfinished transactions: %w", j.table, err)
		}
	}
	j.mu.Lock()
	j.st = st
	j.nextSeq = lastSeq + 1
	j.loaded = true
	j.mu.Unlock()
	go j.writer()
	if l := j.opts.Lease; l != nil {
		j.watcher.Add(1)
		go func() {
			defer j.watcher.Done()
			j.watchLease(l)
		}()
	}
	return res, nil
}

// Append validates entries against the live set, assigns their rows
// sequence numbers and queues them for the writer. Every acknowledged
// append is committed (sync or not: the database commit is the only write).
func (j *Journal) Append(entries []journal.Entry, sync bool, done func(error)) error {
	size := 0
	for i := range entries {
		size += len(entries[i].Data) + 48
	}
	if size > j.opts.MaxAppendBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d", journal.ErrTooLarge, size, j.opts.MaxAppendBytes)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.err != nil:
		return j.err
	case j.closing:
		return journal.ErrClosed
	case !j.loaded:
		return journal.ErrNotLoaded
	}
	p := &pending{done: done, size: size}
	next, err := j.st.stage(entries, j.nextSeq, j.opts.Fence.Epoch, p)
	if err != nil {
		return err
	}
	j.nextSeq = next
	j.queue = append(j.queue, p)
	if len(j.queue) == 1 {
		j.wake.Signal()
	}
	return nil
}

// Failed is closed once the journal has met a fatal error.
func (j *Journal) Failed() <-chan struct{} { return j.failed }

// Err returns the fatal error, or nil.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Close commits what is pending, runs its callbacks, stops the writer and
// closes the connection. It returns the fatal error if the journal failed.
func (j *Journal) Close() error {
	j.mu.Lock()
	already := j.closing
	j.closing = true
	loaded := j.loaded
	j.wake.Broadcast()
	j.mu.Unlock()
	if already {
		<-j.stopped
		return j.Err()
	}
	if loaded {
		<-j.stopped
		j.watcher.Wait()
	} else {
		close(j.stopped)
	}
	_ = j.conn.Close(context.Background())
	return j.Err()
}

// fail records the sticky error, closes Failed and wakes the writer, which
// fails what is queued.
func (j *Journal) fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == nil {
		j.err = err
		close(j.failed)
		j.opts.Logger.Error("jdbcstore: journal failed; every pending and later append fails", "table", j.table, "err", err)
	}
	j.wake.Broadcast()
}
