package jdbcstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/tandemmq/tandem/journal"
)

// replayer applies rows in sequence order: the part of replay that does
// not read the database.
type replayer struct {
	table   string
	st      *state
	res     *journal.LoadResult
	garbage []int64
	last    int64
}

func newReplayer(table string) *replayer {
	return &replayer{table: table, st: newState(true), res: &journal.LoadResult{}}
}

// add verifies one row (its stored crc) and applies it.
func (p *replayer) add(r row, crc int64) error {
	bad := func(format string, a ...any) error {
		return &journal.CorruptionError{File: p.table, Offset: r.seq, Reason: fmt.Sprintf(format, a...)}
	}
	if crc < 0 || crc > 0xffffffff {
		return bad("crc %d is out of range", crc)
	}
	if got := r.sum(); got != uint32(crc) {
		return bad("checksum mismatch: row has crc %08x, its fields sum to %08x", uint32(crc), got)
	}
	if !r.kind.Valid() {
		return bad("kind %d is not a journal entry kind", r.kind)
	}
	e := r.entry()
	keep, err := p.st.apply(&e, r.seq, &p.garbage, nil)
	if err != nil {
		return bad("%v", err)
	}
	if !keep {
		p.garbage = append(p.garbage, r.seq)
	}
	p.res.Epoch = max(p.res.Epoch, r.epoch)
	p.last = r.seq
	return nil
}

// finish builds the load result and hands the state over to the writer,
// without the data replay needed.
func (p *replayer) finish() (*state, *journal.LoadResult, int64, []int64) {
	st := p.st
	st.result(p.res, &p.garbage)
	st.replay = false
	st.records = nil
	for _, r := range st.live {
		r.rec = nil
	}
	for _, tx := range st.open {
		tx.entries, tx.prepareData = nil, nil
	}
	return st, p.res, p.last, p.garbage
}

// replay reads the table in sequence order, verifies each row and applies
// it. It returns the state for the writer, the load result, the largest
// sequence number, and the rows nothing needs any more (unfinished
// transactions, commit rows left with nothing to commit).
func replay(ctx context.Context, conn *pgx.Conn, table string) (*state, *journal.LoadResult, int64, []int64, error) {
	// statement_timeout bounds batches, not the replay of a large table:
	// lift it for this read-only transaction only.
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, nil, 0, nil, fmt.Errorf("jdbcstore: read %s: %w", table, err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return nil, nil, 0, nil, fmt.Errorf("jdbcstore: read %s: %w", table, err)
	}
	rows, err := tx.Query(ctx, "SELECT seq, kind, id, tx_id, user_type, data, epoch, crc FROM "+ident(table)+" ORDER BY seq")
	if err != nil {
		return nil, nil, 0, nil, fmt.Errorf("jdbcstore: read %s: %w", table, err)
	}
	defer rows.Close()
	p := newReplayer(table)
	var (
		seq, id, txID, epoch, crc int64
		kind, userType            int16
		data                      []byte
	)
	for rows.Next() {
		data = nil
		if err := rows.Scan(&seq, &kind, &id, &txID, &userType, &data, &epoch, &crc); err != nil {
			return nil, nil, 0, nil, fmt.Errorf("jdbcstore: read %s after seq %d: %w", table, p.last, err)
		}
		if kind < 0 || kind > 255 || userType < 0 || userType > 255 {
			return nil, nil, 0, nil, &journal.CorruptionError{File: table, Offset: seq, Reason: fmt.Sprintf("kind %d or user_type %d out of range", kind, userType)}
		}
		r := row{seq: seq, kind: journal.Kind(kind), id: uint64(id), txID: uint64(txID), userType: uint8(userType), data: data, epoch: uint64(epoch)}
		if err := p.add(r, crc); err != nil {
			return nil, nil, 0, nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, 0, nil, fmt.Errorf("jdbcstore: read %s after seq %d: %w", table, p.last, err)
	}
	rows.Close()
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, 0, nil, fmt.Errorf("jdbcstore: read %s: %w", table, err)
	}
	st, res, last, garbage := p.finish()
	return st, res, last, garbage, nil
}
