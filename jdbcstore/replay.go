package jdbcstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/tandemmq/tandem/journal"
)

// replay reads the table in sequence order, verifies each row and applies
// it. It returns the state for the writer, the load result, the largest
// sequence number, and the rows nothing needs any more (unfinished
// transactions, commit rows left with nothing to commit).
func replay(ctx context.Context, conn *pgx.Conn, table string) (*state, *journal.LoadResult, int64, []int64, error) {
	rows, err := conn.Query(ctx, "SELECT seq, kind, id, tx_id, user_type, data, epoch, crc FROM "+ident(table)+" ORDER BY seq")
	if err != nil {
		return nil, nil, 0, nil, fmt.Errorf("jdbcstore: read %s: %w", table, err)
	}
	defer rows.Close()
	st := newState(true)
	res := &journal.LoadResult{}
	var garbage []int64
	var last int64
	var (
		seq, id, txID, epoch, crc int64
		kind, userType            int16
		data                      []byte
	)
	for rows.Next() {
		data = nil
		if err := rows.Scan(&seq, &kind, &id, &txID, &userType, &data, &epoch, &crc); err != nil {
			return nil, nil, 0, nil, fmt.Errorf("jdbcstore: read %s after seq %d: %w", table, last, err)
		}
		bad := func(format string, a ...any) error {
			return &journal.CorruptionError{File: table, Offset: seq, Reason: fmt.Sprintf(format, a...)}
		}
		if !journal.Kind(kind).Valid() || kind < 0 {
			return nil, nil, 0, nil, bad("kind %d is not a journal entry kind", kind)
		}
		if userType < 0 || userType > 255 {
			return nil, nil, 0, nil, bad("user_type %d is out of range", userType)
		}
		if crc < 0 || crc > 0xffffffff {
			return nil, nil, 0, nil, bad("crc %d is out of range", crc)
		}
		r := row{seq: seq, kind: journal.Kind(kind), id: uint64(id), txID: uint64(txID), userType: uint8(userType), data: data, epoch: uint64(epoch)}
		if got := r.sum(); got != uint32(crc) {
			return nil, nil, 0, nil, bad("checksum mismatch: row has crc %08x, its fields sum to %08x", uint32(crc), got)
		}
		e := r.entry()
		keep, err := st.apply(&e, seq, &garbage, nil)
		if err != nil {
			// The writer never leaves such a row: a record's rows go
			// together. Something else changed the table.
			return nil, nil, 0, nil, bad("%v", err)
		}
		if !keep {
			garbage = append(garbage, seq)
		}
		res.Epoch = max(res.Epoch, r.epoch)
		last = seq
	}
	if err := rows.Err(); err != nil {
		var ce *journal.CorruptionError
		if errors.As(err, &ce) {
			return nil, nil, 0, nil, err
		}
		return nil, nil, 0, nil, fmt.Errorf("jdbcstore: read %s after seq %d: %w", table, last, err)
	}
	st.result(res, &garbage)
	// Hand the state to the writer without the data replay needed.
	st.replay = false
	st.records = nil
	for _, r := range st.live {
		r.rec = nil
	}
	for _, tx := range st.open {
		tx.entries, tx.prepareData = nil, nil
	}
	return st, res, last, garbage, nil
}
