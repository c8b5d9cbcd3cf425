package jdbcstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"time"
)

// copyHeader starts PostgreSQL's binary COPY format: signature, flags,
// header extension length.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// encodeCopy writes rows in binary COPY format for the columns (seq, kind,
// id, tx_id, user_type, data, epoch, crc).
func encodeCopy(buf *bytes.Buffer, rows []row) {
	buf.Write(copyHeader)
	var b [8]byte
	i16 := func(v int16) {
		buf.Write([]byte{0, 0, 0, 2})
		binary.BigEndian.PutUint16(b[:2], uint16(v))
		buf.Write(b[:2])
	}
	i64 := func(v int64) {
		buf.Write([]byte{0, 0, 0, 8})
		binary.BigEndian.PutUint64(b[:], uint64(v))
		buf.Write(b[:])
	}
	for i := range rows {
		r := &rows[i]
		buf.Write([]byte{0, 8}) // field count
		i64(r.seq)
		i16(int16(r.kind))
		i64(int64(r.id))
		i64(int64(r.txID))
		i16(int16(r.userType))
		if r.data == nil {
			buf.Write([]byte{0xff, 0xff, 0xff, 0xff})
		} else {
			binary.BigEndian.PutUint32(b[:4], uint32(len(r.data)))
			buf.Write(b[:4])
			buf.Write(r.data)
		}
		i64(int64(r.epoch))
		i64(int64(r.crc))
	}
	buf.Write([]byte{0xff, 0xff}) // trailer
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// on, which commitCopy checks).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// commitCopy writes one batch as a single simple-protocol query: the fence
// check, a binary COPY of the rows, the DELETE and the meta update. The
// statements of one query string run in one implicit transaction: an error
// in any of them skips the rest (the server ignores the COPY data that
// follows an error) and commits nothing. One round trip, and COPY's bulk
// insert path instead of one INSERT per row: used for larger batches.
func (j *Journal) commitCopy(b *batch, meta bool, newID, newEpoch uint64) error {
	var q strings.Builder
	if j.sqlFence != "" {
		q.WriteString("SELECT " + fenceFunc(j.opts.Fence.Table) + "(" + quoteLiteral(j.opts.Fence.Group) + ", " + strconv.FormatInt(int64(j.opts.Fence.Epoch), 10) + ");\n")
	}
	q.WriteString("COPY " + ident(j.table) + " (seq, kind, id, tx_id, user_type, data, epoch, crc) FROM STDIN (FORMAT binary);\n")
	if len(b.dels) > 0 {
		q.WriteString("DELETE FROM " + ident(j.table) + " WHERE seq = ANY('{")
		for i, s := range b.dels {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(strconv.FormatInt(s, 10))
		}
		q.WriteString("}'::bigint[]);\n")
	}
	if meta {
		q.WriteString("UPDATE " + ident(MetaTable) + " SET max_id = " + strconv.FormatInt(int64(newID), 10) +
			", max_epoch = " + strconv.FormatInt(int64(newEpoch), 10) + " WHERE name = " + quoteLiteral(j.table) + ";\n")
	}
	j.copyBuf.Reset()
	encodeCopy(&j.copyBuf, b.rows)
	pc := j.conn.PgConn()
	nc := pc.Conn()
	_ = nc.SetDeadline(time.Now().Add(j.opts.BatchTimeout))
	defer nc.SetDeadline(time.Time{})
	_, err := pc.CopyFrom(context.Background(), bytes.NewReader(j.copyBuf.Bytes()), q.String())
	if j.copyBuf.Cap() > 16<<20 {
		j.copyBuf = bytes.Buffer{}
	}
	if err != nil {
		return fenceError(err)
	}
	return nil
}

// useCopy reports whether a batch of n rows goes through commitCopy.
func (j *Journal) useCopy(n int) bool {
	t := j.opts.CopyThreshold
	if t == 0 {
		t = defaultCopyThreshold
	}
	return t > 0 && n >= t && j.conn.PgConn().ParameterStatus("standard_conforming_strings") == "on"
}

// defaultCopyThreshold is the smallest batch written with COPY.
const defaultCopyThreshold = 8
