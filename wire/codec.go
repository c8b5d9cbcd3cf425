package wire

import (
	"encoding/binary"
	"fmt"
)

// Append helpers: each appends one primitive to b and returns it.

func appendU8(b []byte, v uint8) []byte   { return append(b, v) }
func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}
func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}
func appendCount(b []byte, n int) []byte { return binary.AppendUvarint(b, uint64(n)) }

// reader parses a payload with a sticky error: after the first failure every
// read returns zero values, and err names the field and payload offset.
type reader struct {
	b   []byte
	off int
	err error
	// last is the previous address decoded by the same Decoder: a stream
	// of sends to one address then allocates no address strings.
	last *string
}

func (r *reader) fail(field, why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %s at payload offset %d", field, why, r.off)
	}
}

func (r *reader) need(n int, field string) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail(field, "truncated")
		return false
	}
	return true
}

func (r *reader) u8(field string) uint8 {
	if !r.need(1, field) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16(field string) uint16 {
	if !r.need(2, field) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32(field string) uint32 {
	if !r.need(4, field) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64(field string) uint64 {
	if !r.need(8, field) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *reader) boolean(field string) bool {
	v := r.u8(field)
	if v > 1 {
		r.fail(field, fmt.Sprintf("bool value %d", v))
		return false
	}
	return v == 1
}

func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(field, "bad varint")
		return 0
	}
	r.off += n
	return v
}

// length reads a uvarint length of a byte field and checks it fits.
func (r *reader) length(field string) int {
	v := r.uvarint(field)
	if r.err != nil {
		return 0
	}
	if v > uint64(len(r.b)-r.off) {
		r.fail(field, fmt.Sprintf("length %d exceeds remaining %d bytes", v, len(r.b)-r.off))
		return 0
	}
	return int(v)
}

// count reads a list count; each element takes at least minSize bytes, so a
// count the payload cannot hold is refused before anything is allocated.
func (r *reader) count(field string, minSize int) int {
	v := r.uvarint(field)
	if r.err != nil {
		return 0
	}
	if v > uint64((len(r.b)-r.off)/minSize) {
		r.fail(field, fmt.Sprintf("count %d exceeds what %d bytes can hold", v, len(r.b)-r.off))
		return 0
	}
	return int(v)
}

func (r *reader) str(field string) string {
	n := r.length(field)
	if r.err != nil || n == 0 {
		return ""
	}
	s := string(r.b[r.off : r.off+n])
	r.off += n
	return s
}

// strInterned reads a string, reusing the previous one when equal.
func (r *reader) strInterned(field string) string {
	if r.last == nil {
		return r.str(field)
	}
	n := r.length(field)
	if r.err != nil || n == 0 {
		return ""
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	if string(b) != *r.last {
		*r.last = string(b)
	}
	return *r.last
}

// bytes returns a sub-slice of the payload (no copy); nil when empty.
func (r *reader) bytes(field string) []byte {
	n := r.length(field)
	if r.err != nil || n == 0 {
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

// end fails when bytes are left over.
func (r *reader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail("payload", fmt.Sprintf("%d trailing bytes", len(r.b)-r.off))
	}
}
