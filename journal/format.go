package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// On-disk format (little-endian). A segment is a fixed-size file:
//
//	segment header (SegmentHeaderSize bytes)
//	  0  magic "TNDJ"
//	  4  format version (u16)
//	  6  header size (u16)
//	  8  segment sequence (u64); the file name carries it too
//	 16  epoch (u64) of the writer that started the segment
//	 24  salt (u64), random per use of the file
//	 32  segment size (u64)
//	 40  alignment (u32) the writer padded its flushes to
//	 44  flags (u32): bit 0 = written by compaction (the segment holds
//	     part of a rewritten prefix's live state; the rewritten prefix
//	     ended right after the last segment so marked, which is how a
//	     restarted journal still refuses a stream resume inside it);
//	     other bits zero (a header with an unknown bit is refused)
//	 48  max ID (u64): the largest record or transaction ID appended
//	     before the segment began, so MaxID survives reclaim
//	 56  reserved (4 bytes), zero
//	 60  CRC32C of bytes 0..59 (u32)
//	records, one per Append call (a batch), each:
//	  0  CRC32C (u32), seeded with the segment's sequence and salt, over
//	     bytes 4..15 of this header and the payload
//	  4  payload length (u32)
//	  8  synced (u32): how far this segment was durable (fdatasync
//	     returned) when the record was encoded; replay uses it to tell a
//	     torn tail from corruption
//	 12  record kind (u8): 1 batch, 2 seal (end of segment, no payload),
//	     3 padding (the payload is zeros, not covered by the CRC)
//	 13  reserved (3 bytes), zero
//	 16  payload: the batch's entries, each
//	       kind (u8), user type (u8), uvarint ID, uvarint TxID,
//	       uvarint data length, data
//	with an alignment > 1 (O_DIRECT), each flush ends with a padding
//	record reaching the next aligned offset (at least one header long),
//	and the next flush starts there: a block holding acknowledged records
//	is never written again. A zeroed record header is the end of the data.
//
// Because the CRC is seeded with the sequence and salt, bytes left from an
// earlier use of a recycled file, or from an earlier attempt at the same
// sequence, never pass as records.
const (
	SegmentHeaderSize = 64
	RecordHeaderSize  = 16
	formatVersion     = 1
	segMagic          = "TNDJ"

	segFlagCompacted uint32 = 1 << 0
	segFlagsKnown           = segFlagCompacted

	recBatch uint8 = 1
	recSeal  uint8 = 2
	recPad   uint8 = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segHeader is a decoded segment header.
type segHeader struct {
	seq     uint64
	epoch   uint64
	salt    uint64
	size    uint64
	align   uint32
	flags   uint32
	maxID   uint64
	version uint16
}

func (h *segHeader) seed() uint32 { return recordSeed(h.seq, h.salt) }

// recordSeed is the CRC seed of records in a segment.
func recordSeed(seq, salt uint64) uint32 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[0:], seq)
	binary.LittleEndian.PutUint64(b[8:], salt)
	return crc32.Update(0, castagnoli, b[:])
}

func (h *segHeader) encode(b []byte) {
	_ = b[SegmentHeaderSize-1]
	clear(b[:SegmentHeaderSize])
	copy(b[0:4], segMagic)
	binary.LittleEndian.PutUint16(b[4:], formatVersion)
	binary.LittleEndian.PutUint16(b[6:], SegmentHeaderSize)
	binary.LittleEndian.PutUint64(b[8:], h.seq)
	binary.LittleEndian.PutUint64(b[16:], h.epoch)
	binary.LittleEndian.PutUint64(b[24:], h.salt)
	binary.LittleEndian.PutUint64(b[32:], h.size)
	binary.LittleEndian.PutUint32(b[40:], h.align)
	binary.LittleEndian.PutUint32(b[44:], h.flags)
	binary.LittleEndian.PutUint64(b[48:], h.maxID)
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
}

// Header states.
var (
	errHeaderZero = errors.New("segment header is all zeros (unused segment)")
	errHeaderBad  = errors.New("bad segment header")
)

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// decodeSegHeader decodes and checks a segment header. It returns
// errHeaderZero for a never-written header and an error wrapping
// errHeaderBad otherwise.
func decodeSegHeader(b []byte) (segHeader, error) {
	var h segHeader
	if len(b) < SegmentHeaderSize {
		return h, fmt.Errorf("%w: file shorter than a header (%d bytes)", errHeaderBad, len(b))
	}
	b = b[:SegmentHeaderSize]
	if allZero(b) {
		return h, errHeaderZero
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), crc32.Checksum(b[:60], castagnoli); got != want {
		return h, fmt.Errorf("%w: checksum mismatch (stored %08x, computed %08x)", errHeaderBad, got, want)
	}
	if string(b[0:4]) != segMagic {
		return h, fmt.Errorf("%w: magic %q, want %q", errHeaderBad, b[0:4], segMagic)
	}
	h.version = binary.LittleEndian.Uint16(b[4:])
	if h.version != formatVersion {
		return h, fmt.Errorf("%w: format version %d, this build reads %d", errHeaderBad, h.version, formatVersion)
	}
	if hs := binary.LittleEndian.Uint16(b[6:]); hs != SegmentHeaderSize {
		return h, fmt.Errorf("%w: header size %d, want %d", errHeaderBad, hs, SegmentHeaderSize)
	}
	h.seq = binary.LittleEndian.Uint64(b[8:])
	h.epoch = binary.LittleEndian.Uint64(b[16:])
	h.salt = binary.LittleEndian.Uint64(b[24:])
	h.size = binary.LittleEndian.Uint64(b[32:])
	h.align = binary.LittleEndian.Uint32(b[40:])
	h.flags = binary.LittleEndian.Uint32(b[44:])
	h.maxID = binary.LittleEndian.Uint64(b[48:])
	if unknown := h.flags &^ segFlagsKnown; unknown != 0 {
		return h, fmt.Errorf("%w: unknown flags %#x (written by a newer format?)", errHeaderBad, unknown)
	}
	if h.size < SegmentHeaderSize+RecordHeaderSize || h.size > MaxSegmentSize {
		return h, fmt.Errorf("%w: segment size %d out of range", errHeaderBad, h.size)
	}
	if h.align == 0 || h.align&(h.align-1) != 0 || uint64(h.align) > h.size/2 {
		return h, fmt.Errorf("%w: alignment %d invalid", errHeaderBad, h.align)
	}
	return h, nil
}

// MaxSegmentSize is the largest segment size: record offsets are 32-bit.
const MaxSegmentSize = 1 << 31

// entrySize is the encoded size of e.
func entrySize(e *Entry) int {
	return 2 + uvarintLen(e.ID) + uvarintLen(e.TxID) + uvarintLen(uint64(len(e.Data))) + len(e.Data)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// batchSize is the encoded size of a batch record holding entries.
func batchSize(entries []Entry) int {
	n := RecordHeaderSize
	for i := range entries {
		n += entrySize(&entries[i])
	}
	return n
}

// encodeBatch encodes a batch record into b, which must hold exactly
// batchSize(entries) bytes.
func encodeBatch(b []byte, entries []Entry, synced uint32, seed uint32) {
	p := RecordHeaderSize
	for i := range entries {
		e := &entries[i]
		b[p] = byte(e.Kind)
		b[p+1] = e.Type
		p += 2
		p += binary.PutUvarint(b[p:], e.ID)
		p += binary.PutUvarint(b[p:], e.TxID)
		p += binary.PutUvarint(b[p:], uint64(len(e.Data)))
		p += copy(b[p:], e.Data)
	}
	finishRecord(b[:p], recBatch, synced, seed)
}

// encodeSeal encodes a seal record (RecordHeaderSize bytes) into b.
func encodeSeal(b []byte, synced uint32, seed uint32) {
	finishRecord(b[:RecordHeaderSize], recSeal, synced, seed)
}

// encodePad encodes a padding record filling all of b (at least
// RecordHeaderSize bytes); the payload is zeroed.
func encodePad(b []byte, seed uint32) {
	clear(b[RecordHeaderSize:])
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-RecordHeaderSize))
	binary.LittleEndian.PutUint32(b[8:], 0)
	b[12], b[13], b[14], b[15] = recPad, 0, 0, 0
	binary.LittleEndian.PutUint32(b[0:], crc32.Update(seed, castagnoli, b[4:RecordHeaderSize]))
}

func finishRecord(b []byte, kind uint8, synced uint32, seed uint32) {
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-RecordHeaderSize))
	binary.LittleEndian.PutUint32(b[8:], synced)
	b[12], b[13], b[14], b[15] = kind, 0, 0, 0
	binary.LittleEndian.PutUint32(b[0:], crc32.Update(seed, castagnoli, b[4:]))
}

// recHeader is a decoded record header.
type recHeader struct {
	kind   uint8
	length uint32 // payload length
	synced uint32
}

// Record decoding errors (wrapped with details).
var (
	errRecZero     = errors.New("zeroed record header")
	errRecBad      = errors.New("invalid record")
	errRecChecksum = errors.New("record checksum mismatch")
)

// decodeRecord checks the record at b[0:] (b extends to the end of the
// segment's usable bytes) against seed, and returns its header. off is
// the record's offset in the segment: a valid record's synced watermark
// never exceeds it.
func decodeRecord(b []byte, off int, seed uint32) (recHeader, error) {
	if len(b) < RecordHeaderSize {
		return recHeader{}, fmt.Errorf("%w: %d bytes left, less than a record header", errRecBad, len(b))
	}
	h, crc, err := decodeRecHeader(b, int64(off), int64(len(b)))
	if err != nil {
		return h, err
	}
	if got := crcUpdate(seed, b[4:RecordHeaderSize+h.crcLen()]); got != crc {
		return h, fmt.Errorf("%w (stored %08x, computed %08x)", errRecChecksum, crc, got)
	}
	return h, nil
}

// decodeRecHeader checks the record header at b[0:RecordHeaderSize] of a
// record at off, with room bytes from off to the end of the segment's
// usable bytes, and returns it with its stored checksum. It does not
// check the checksum: see decodeRecord.
func decodeRecHeader(b []byte, off, room int64) (recHeader, uint32, error) {
	var h recHeader
	crc := binary.LittleEndian.Uint32(b[0:])
	h.length = binary.LittleEndian.Uint32(b[4:])
	h.synced = binary.LittleEndian.Uint32(b[8:])
	h.kind = b[12]
	if crc == 0 && h.length == 0 && h.synced == 0 && h.kind == 0 && b[13]|b[14]|b[15] == 0 {
		return h, crc, errRecZero
	}
	switch {
	case h.kind != recBatch && h.kind != recSeal && h.kind != recPad:
		return h, crc, fmt.Errorf("%w: kind %d", errRecBad, h.kind)
	case b[13]|b[14]|b[15] != 0:
		return h, crc, fmt.Errorf("%w: reserved header bytes not zero", errRecBad)
	case int64(h.length) > room-RecordHeaderSize:
		return h, crc, fmt.Errorf("%w: length %d runs past the segment end (%d bytes left)", errRecBad, h.length, room-RecordHeaderSize)
	case h.kind == recSeal && h.length != 0:
		return h, crc, fmt.Errorf("%w: seal record with payload", errRecBad)
	case int64(h.synced) > off:
		return h, crc, fmt.Errorf("%w: synced watermark %d beyond the record's own offset", errRecBad, h.synced)
	}
	return h, crc, nil
}

// plausibleHeader is decodeRecHeader's checks without the error values
// (the search after a bad record tries every offset).
func plausibleHeader(b []byte, off, room int64) bool {
	kind := b[12]
	length := binary.LittleEndian.Uint32(b[4:])
	return kind >= recBatch && kind <= recPad && b[13]|b[14]|b[15] == 0 &&
		int64(length) <= room-RecordHeaderSize && (kind != recSeal || length == 0) &&
		int64(binary.LittleEndian.Uint32(b[8:])) <= off
}

// crcLen is the number of payload bytes the record's checksum covers
// (a padding record's zeros are not covered).
func (h recHeader) crcLen() int {
	if h.kind == recPad {
		return 0
	}
	return int(h.length)
}

// crcUpdate is crc32.Update with the record checksum's polynomial.
func crcUpdate(seed uint32, b []byte) uint32 { return crc32.Update(seed, castagnoli, b) }

// entryReader iterates over the entries of a batch payload. Entry data
// is sliced out of the payload, not copied.
type entryReader struct {
	p   []byte
	off int
}

// next decodes the next entry into e. It returns false at the end of the
// payload, and an error for a malformed entry (which a valid checksum
// makes a bug or a forgery, not a torn write).
func (r *entryReader) next(e *Entry) (bool, error) {
	if r.off >= len(r.p) {
		return false, nil
	}
	b := r.p[r.off:]
	if len(b) < 5 {
		return false, fmt.Errorf("entry at payload offset %d: truncated", r.off)
	}
	e.Kind = Kind(b[0])
	e.Type = b[1]
	if !e.Kind.Valid() {
		return false, fmt.Errorf("entry at payload offset %d: unknown kind %d", r.off, b[0])
	}
	p := 2
	var n int
	if e.ID, n = binary.Uvarint(b[p:]); n <= 0 {
		return false, fmt.Errorf("entry at payload offset %d: bad ID varint", r.off)
	}
	p += n
	if e.TxID, n = binary.Uvarint(b[p:]); n <= 0 {
		return false, fmt.Errorf("entry at payload offset %d: bad TxID varint", r.off)
	}
	p += n
	l, n := binary.Uvarint(b[p:])
	if n <= 0 || l > uint64(len(b)-p-n) {
		return false, fmt.Errorf("entry at payload offset %d: bad data length", r.off)
	}
	p += n
	if l == 0 {
		e.Data = nil
	} else {
		e.Data = b[p : p+int(l) : p+int(l)]
	}
	r.off += p + int(l)
	return true, nil
}
