package jdbcstore

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/tandemmq/tandem/journal"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// row is one journal table row. IDs and epochs are unsigned in the journal
// and stored bit for bit in bigint columns.
type row struct {
	seq      int64
	kind     journal.Kind
	id       uint64
	txID     uint64
	userType uint8
	data     []byte
	epoch    uint64
	crc      uint32 // sum(), computed by Append on the caller's goroutine
}

// sum is the row's CRC32C: over seq, kind, id, tx_id, user_type, epoch, the
// data's length and the data, in that order, big-endian. Because seq is
// covered, a row's data cannot be swapped with another row's unnoticed.
func (r *row) sum() uint32 {
	var h [8 + 1 + 8 + 8 + 1 + 8 + 4]byte
	binary.BigEndian.PutUint64(h[0:], uint64(r.seq))
	h[8] = byte(r.kind)
	binary.BigEndian.PutUint64(h[9:], r.id)
	binary.BigEndian.PutUint64(h[17:], r.txID)
	h[25] = r.userType
	binary.BigEndian.PutUint64(h[26:], r.epoch)
	binary.BigEndian.PutUint32(h[34:], uint32(len(r.data)))
	c := crc32.Update(0, castagnoli, h[:])
	return crc32.Update(c, castagnoli, r.data)
}

// entry is the journal entry the row holds.
func (r *row) entry() journal.Entry {
	return journal.Entry{Kind: r.kind, ID: r.id, TxID: r.txID, Type: r.userType, Data: r.data}
}
