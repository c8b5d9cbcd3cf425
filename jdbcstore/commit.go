package jdbcstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// commit writes one batch in one transaction: the fence check (when
// fencing is on), one multi-row INSERT, one DELETE, and the meta row when
// IDs leave the table. The statements go in one pipeline with one Sync, so
// PostgreSQL runs them as one implicit transaction: an error in any of
// them (the fence included) skips the rest and commits nothing. It returns
// after the commit's result arrived; with synchronous_commit on (the
// default) that is after the WAL flush.
func (j *Journal) commit(ctx context.Context, b *batch) error {
	newID, newEpoch := max(j.hwID, b.maxID), max(j.hwEpoch, j.opts.Fence.Epoch)
	meta := b.idsLeave && (newID != j.hwID || newEpoch != j.hwEpoch)
	if j.useCopy(len(b.rows)) {
		if err := j.commitCopy(b, meta, newID, newEpoch); err != nil {
			return err
		}
		j.committed(b, meta, newID, newEpoch)
		return nil
	}
	if len(b.rows) == 1 && len(b.dels) == 0 && !meta && j.sqlFence == "" {
		// One statement: a plain extended-protocol Exec, as cheap as
		// any client's autocommit INSERT.
		r := &b.rows[0]
		nc := j.conn.PgConn().Conn()
		_ = nc.SetDeadline(time.Now().Add(j.opts.BatchTimeout))
		_, err := j.conn.Exec(ctx, j.sqlInsertOne, r.seq, int16(r.kind), int64(r.id), int64(r.txID), int16(r.userType), r.data, int64(r.epoch), int64(r.crc))
		_ = nc.SetDeadline(time.Time{})
		if err != nil {
			return err
		}
		j.committed(b, meta, newID, newEpoch)
		return nil
	}
	var pb pgx.Batch
	fenced := j.sqlFence != ""
	if fenced {
		pb.Queue(j.sqlFence, j.opts.Fence.Group, int64(j.opts.Fence.Epoch))
	}
	if len(b.rows) == 1 {
		r := &b.rows[0]
		pb.Queue(j.sqlInsertOne, r.seq, int16(r.kind), int64(r.id), int64(r.txID), int16(r.userType), r.data, int64(r.epoch), int64(r.crc))
	} else if n := len(b.rows); n > 1 {
		seqs := make([]int64, n)
		kinds := make([]int16, n)
		ids := make([]int64, n)
		txs := make([]int64, n)
		types := make([]int16, n)
		datas := make([][]byte, n)
		epochs := make([]int64, n)
		crcs := make([]int64, n)
		for i := range b.rows {
			r := &b.rows[i]
			seqs[i], kinds[i], ids[i], txs[i] = r.seq, int16(r.kind), int64(r.id), int64(r.txID)
			types[i], datas[i], epochs[i], crcs[i] = int16(r.userType), r.data, int64(r.epoch), int64(r.crc)
		}
		pb.Queue(j.sqlInsert, seqs, kinds, ids, txs, types, datas, epochs, crcs)
	}
	if len(b.dels) > 0 {
		pb.Queue(j.sqlDelete, b.dels)
	}
	if meta {
		pb.Queue(j.sqlMeta, j.table, int64(newID), int64(newEpoch))
	}
	if pb.Len() == 0 {
		return nil
	}
	// The client-side bound is a deadline on the socket rather than a
	// context: a cancellable context costs pgx a watcher goroutine per
	// batch. A timed-out read breaks the connection, and the error is
	// fatal anyway.
	nc := j.conn.PgConn().Conn()
	_ = nc.SetDeadline(time.Now().Add(j.opts.BatchTimeout))
	defer nc.SetDeadline(time.Time{})
	br := j.conn.SendBatch(ctx, &pb)
	var first error
	for i := 0; i < pb.Len(); i++ {
		if _, err := br.Exec(); err != nil && first == nil {
			first = err
			if i == 0 && fenced {
				first = fenceError(err)
			}
		}
	}
	if err := br.Close(); err != nil && first == nil {
		first = err
	}
	if first != nil {
		return first
	}
	j.committed(b, meta, newID, newEpoch)
	return nil
}

// committed records a committed batch.
func (j *Journal) committed(b *batch, meta bool, newID, newEpoch uint64) {
	if meta {
		j.hwID, j.hwEpoch = newID, newEpoch
	}
	j.statsMu.Lock()
	j.stats.Batches++
	j.stats.Syncs++
	for i := range b.rows {
		j.stats.Bytes += int64(len(b.rows[i].data))
	}
	j.statsMu.Unlock()
}
