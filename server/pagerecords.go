package server

import (
	"encoding/binary"
	"fmt"

	"github.com/tandemmq/tandem/journal"
)

// Record types of paging (issue 18). The messages journal's types are
// one space with records.go's and cluster.go's: load's switch on them does not
// compile with two equal (6 and 7 are cluster.go's).
const (
	// RecPagedMessage is the one record type of the paging journal (a log-
	// mode journal): an Add whose ID is the message ID, whose TxID is the
	// transaction it was sent in (0: none) and whose Data is
	// encodePaged's: the queues it was routed to and the message.
	RecPagedMessage uint8 = 1
	// RecPageCursor is an Add in the messages journal: every paged
	// message of queue Data[0] before page position Data[1:] is
	// acknowledged (queue ID, segment, offset: three uvarints). A queue
	// has at most one; a new one replaces it in the same append.
	RecPageCursor uint8 = 9
	// RecPageAck is an Add in the messages journal: paged message Data[1]
	// is acknowledged on queue Data[0] (two uvarints), at or after the
	// queue's cursor. Deleted when the cursor passes the message.
	RecPageAck uint8 = 10
	// RecPageTx is an Add in the messages journal: transaction Data[0]
	// committed, its paged messages (in segments up to Data[1]) count
	// (two uvarints). Deleted once the paging journal's floor passes them.
	RecPageTx uint8 = 8
)

const pagedFormat = 1

// encodePaged encodes a paged message: format(1), the queue IDs
// (uvarint count, uvarints), then the message as encodeMessage writes it.
func encodePaged(m *Message, qs []*Queue) []byte {
	body := encodeMessage(m)
	b := make([]byte, 0, 1+binary.MaxVarintLen32*(1+len(qs))+len(body))
	b = append(b, pagedFormat)
	b = binary.AppendUvarint(b, uint64(len(qs)))
	for _, q := range qs {
		b = binary.AppendUvarint(b, q.id)
	}
	return append(b, body...)
}

// maxPagedQueues bounds the queue list of a paged message (one per queue
// of an address: far above any max-queues).
const maxPagedQueues = 1 << 20

// pagedHeader is a paged message's queue list and where its message
// starts, decoded without decoding the message.
type pagedHeader struct {
	queues []uint64
	msg    []byte
}

// has reports whether the message was routed to queue id.
func (h *pagedHeader) has(id uint64) bool {
	for _, q := range h.queues {
		if q == id {
			return true
		}
	}
	return false
}

// decodePagedHeader decodes a paged message's header, reusing qbuf. It
// never panics; errors name the offset.
func decodePagedHeader(b []byte, qbuf []uint64) (pagedHeader, error) {
	d := decoder{b: b}
	if f := d.byte(); f != pagedFormat {
		if d.err != nil {
			return pagedHeader{}, fmt.Errorf("paged message: %w", d.err)
		}
		return pagedHeader{}, fmt.Errorf("paged message: unknown format %d", f)
	}
	n := d.uvarint()
	if d.err == nil && (n == 0 || n > maxPagedQueues || n > uint64(len(b))) {
		return pagedHeader{}, fmt.Errorf("paged message: offset %d: %d queues", d.off, n)
	}
	h := pagedHeader{queues: qbuf[:0]}
	for i := uint64(0); i < n && d.err == nil; i++ {
		h.queues = append(h.queues, d.uvarint())
	}
	if d.err != nil {
		return pagedHeader{}, fmt.Errorf("paged message: %w", d.err)
	}
	h.msg = b[d.off:]
	return h, nil
}

// decodePaged decodes a paged message fully (the message's body and
// properties are copied: b is a read buffer).
func decodePaged(b []byte) (pagedHeader, *Message, error) {
	h, err := decodePagedHeader(b, nil)
	if err != nil {
		return h, nil, err
	}
	m, err := decodeMessage(h.msg)
	if err != nil {
		return h, nil, fmt.Errorf("paged %w", err)
	}
	m.Body = append([]byte(nil), m.Body...)
	for i := range m.Properties {
		if p := m.Properties[i].Bytes; p != nil {
			m.Properties[i].Bytes = append([]byte(nil), p...)
		}
	}
	return h, m, nil
}

func encodeUvarints(vs ...uint64) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64*len(vs))
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

// decodeUvarints decodes exactly n uvarints.
func decodeUvarints(b []byte, n int, what string) ([]uint64, error) {
	out := make([]uint64, n)
	off := 0
	for i := range out {
		v, k := binary.Uvarint(b[off:])
		if k <= 0 {
			return nil, fmt.Errorf("%s: offset %d: bad uvarint", what, off)
		}
		out[i], off = v, off+k
	}
	if off != len(b) {
		return nil, fmt.Errorf("%s: offset %d: %d trailing bytes", what, off, len(b)-off)
	}
	return out, nil
}

func encodePageCursor(queueID uint64, pos journal.Position) []byte {
	return encodeUvarints(queueID, pos.Seq, uint64(pos.Offset))
}

func decodePageCursor(b []byte) (queueID uint64, pos journal.Position, err error) {
	v, err := decodeUvarints(b, 3, "page cursor")
	if err != nil {
		return 0, pos, err
	}
	if v[2] > journal.MaxSegmentSize {
		return 0, pos, fmt.Errorf("page cursor: offset %d beyond any segment", v[2])
	}
	return v[0], journal.Position{Seq: v[1], Offset: int64(v[2])}, nil
}

func encodePageAck(queueID, msgID uint64) []byte { return encodeUvarints(queueID, msgID) }

func decodePageAck(b []byte) (queueID, msgID uint64, err error) {
	v, err := decodeUvarints(b, 2, "page ack")
	if err != nil {
		return 0, 0, err
	}
	return v[0], v[1], nil
}

func encodePageTx(txID, lastSeq uint64) []byte { return encodeUvarints(txID, lastSeq) }

func decodePageTx(b []byte) (txID, lastSeq uint64, err error) {
	v, err := decodeUvarints(b, 2, "page transaction")
	if err != nil {
		return 0, 0, err
	}
	return v[0], v[1], nil
}

// posLess orders page positions.
func posLess(a, b journal.Position) bool {
	return a.Seq < b.Seq || a.Seq == b.Seq && a.Offset < b.Offset
}
