package amqp

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// DecodeError is a malformed, oversized or unexpected encoding. Offset is
// the byte offset in the decoded buffer (a frame body: after the frame
// header) where the problem was found.
type DecodeError struct {
	Offset int
	Reason string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("amqp: decode error at offset %d: %s", e.Offset, e.Reason)
}

// maxDepth bounds the nesting of described, list, map and array values:
// the decoder recurses once per level, so a frame cannot exhaust the
// goroutine stack.
const maxDepth = 32

// decoder reads AMQP-encoded values from one buffer. It never panics and
// never allocates more than the input can justify: every length and
// count is checked against the bytes left before anything is allocated,
// and budget bounds the number of values a generic decode may produce
// (an array of zero-width elements, such as nulls, can declare many
// elements in a few bytes). The first error sticks: later reads return
// zero values.
type decoder struct {
	b      []byte
	off    int
	err    error
	budget int // values left for generic decodes
	depth  int
}

func newDecoder(b []byte) *decoder {
	d := &decoder{}
	d.reset(b)
	return d
}

// reset points d at b with a fresh budget of len(b)+16 values.
func (d *decoder) reset(b []byte) {
	*d = decoder{b: b, budget: len(b) + 16}
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = &DecodeError{Offset: d.off, Reason: fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated: want 1 more byte")
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

// take returns the next n bytes (aliasing the buffer).
func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > d.left() {
		d.fail("truncated: want %d bytes, %d left", n, d.left())
		return nil
	}
	v := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return v
}

func (d *decoder) u16() uint16 {
	b := d.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (d *decoder) u32() uint32 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (d *decoder) u64() uint64 {
	b := d.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// peek returns the next constructor byte without consuming it (0xff at
// the end, which is no valid code).
func (d *decoder) peek() byte {
	if d.err != nil || d.off >= len(d.b) {
		return 0xff
	}
	return d.b[d.off]
}

// more reports whether bytes are left (and no error).
func (d *decoder) more() bool { return d.err == nil && d.off < len(d.b) }

// size reads the size prefix of a variable-width or compound type with
// the given width and checks it against the bytes left.
func (d *decoder) size(width int) int {
	var n uint64
	if width == 1 {
		n = uint64(d.byte())
	} else {
		n = uint64(d.u32())
	}
	if d.err != nil {
		return 0
	}
	if n > uint64(d.left()) {
		d.fail("size %d larger than the %d bytes left", n, d.left())
		return 0
	}
	return int(n)
}

// nullOr consumes a null and reports true when the next value is null (a
// field left at its default), or when nothing is left.
func (d *decoder) null() bool {
	if d.err != nil {
		return true
	}
	if d.peek() == codeNull {
		d.off++
		return true
	}
	return false
}

// ---------------------------------------------------------------- typed reads

// uintVal reads any unsigned integer encoding (ubyte, ushort, uint,
// ulong and their compact forms) as a uint64.
func (d *decoder) uintVal() uint64 {
	switch c := d.byte(); c {
	case codeUint0, codeUlong0:
		return 0
	case codeUbyte, codeSmallUint, codeSmallUlong:
		return uint64(d.byte())
	case codeUshort:
		return uint64(d.u16())
	case codeUint:
		return uint64(d.u32())
	case codeUlong:
		return d.u64()
	default:
		if d.err == nil {
			d.off--
			d.fail("want an unsigned integer, got type code 0x%02x", c)
		}
		return 0
	}
}

// uint32Field reads an optional uint field: def when null.
func (d *decoder) uint32Field(def uint32) uint32 {
	if d.null() {
		return def
	}
	at := d.off
	v := d.uintVal()
	if v > math.MaxUint32 && d.err == nil {
		d.off = at
		d.fail("value %d does not fit a uint", v)
		return 0
	}
	return uint32(v)
}

// optUint32 reads an optional uint field and reports whether it was set.
func (d *decoder) optUint32() (uint32, bool) {
	if d.null() {
		return 0, false
	}
	v := d.uint32Field(0)
	return v, d.err == nil
}

func (d *decoder) uint64Field(def uint64) uint64 {
	if d.null() {
		return def
	}
	return d.uintVal()
}

func (d *decoder) boolField(def bool) bool {
	if d.null() {
		return def
	}
	switch c := d.byte(); c {
	case codeTrue:
		return true
	case codeFalse:
		return false
	case codeBool:
		switch v := d.byte(); v {
		case 0:
			return false
		case 1:
			return true
		default:
			if d.err == nil {
				d.off--
				d.fail("boolean byte %d", v)
			}
		}
	default:
		if d.err == nil {
			d.off--
			d.fail("want a boolean, got type code 0x%02x", c)
		}
	}
	return false
}

// optBool reads an optional boolean and reports whether it was set.
func (d *decoder) optBool() (v, set bool) {
	if d.null() {
		return false, false
	}
	v = d.boolField(false)
	return v, d.err == nil
}

// rawString reads a str8/str32 or sym8/sym32 (lenient: a peer that
// sends a symbol where a string is due, or the other way round, is
// understood) and returns its bytes aliasing the buffer.
func (d *decoder) rawString() []byte {
	c := d.byte()
	w := sizeWidth(c)
	if w == 0 || (c != codeStr8 && c != codeStr32 && c != codeSym8 && c != codeSym32) {
		if d.err == nil {
			d.off--
			d.fail("want a string or symbol, got type code 0x%02x", c)
		}
		return nil
	}
	return d.take(d.size(w))
}

func (d *decoder) stringField() string {
	if d.null() {
		return ""
	}
	at := d.off
	b := d.rawString()
	if d.err == nil && !utf8.Valid(b) {
		d.off = at
		d.fail("string is not valid UTF-8")
		return ""
	}
	return string(b)
}

func (d *decoder) symbolField() Symbol { return Symbol(d.stringField()) }

// binaryField reads an optional binary, aliasing the buffer.
func (d *decoder) binaryField() []byte {
	if d.null() {
		return nil
	}
	c := d.byte()
	switch c {
	case codeVbin8, codeVbin32:
		b := d.take(d.size(sizeWidth(c)))
		if b == nil && d.err == nil {
			b = []byte{}
		}
		return b
	}
	if d.err == nil {
		d.off--
		d.fail("want a binary, got type code 0x%02x", c)
	}
	return nil
}

// symbolsField reads a "multiple" symbol field: null, one symbol, or an
// array of symbols.
func (d *decoder) symbolsField() []Symbol {
	if d.null() {
		return nil
	}
	switch c := d.peek(); c {
	case codeSym8, codeSym32, codeStr8, codeStr32:
		return []Symbol{d.symbolField()}
	case codeArray8, codeArray32:
		d.off++
		w := sizeWidth(c)
		size := d.size(w)
		end := d.off + size
		var count int
		if w == 1 {
			count = int(d.byte())
		} else {
			count = int(d.u32())
		}
		if d.err != nil {
			return nil
		}
		if count == 0 {
			d.off = end
			return nil
		}
		ec := d.byte()
		ew := sizeWidth(ec)
		if ec != codeSym8 && ec != codeSym32 && ec != codeStr8 && ec != codeStr32 {
			if d.err == nil {
				d.fail("want an array of symbols, got element type 0x%02x", ec)
			}
			return nil
		}
		if count > end-d.off { // every element takes at least its size byte
			d.fail("array of %d symbols in %d bytes", count, end-d.off)
			return nil
		}
		out := make([]Symbol, 0, count)
		for i := 0; i < count && d.err == nil; i++ {
			b := d.take(d.size(ew))
			out = append(out, Symbol(b))
		}
		if d.err == nil && d.off != end {
			d.fail("array size %d does not match its elements", size)
		}
		return out
	default:
		d.fail("want symbols, got type code 0x%02x", c)
		return nil
	}
}

// ---------------------------------------------------------------- composites

// descriptor reads a described-type constructor and its descriptor, and
// returns the descriptor's numeric code (symbolic descriptors are mapped;
// an unknown one is returned as 0 with known false).
func (d *decoder) descriptor() (code uint64, known bool) {
	if c := d.byte(); c != codeDescribed {
		if d.err == nil {
			d.off--
			d.fail("want a described type, got type code 0x%02x", c)
		}
		return 0, false
	}
	switch d.peek() {
	case codeSym8, codeSym32:
		s := d.rawString()
		code, known = symbolicDescriptors[string(s)]
		return code, known
	case codeUlong, codeSmallUlong, codeUlong0:
		return d.uintVal(), true
	}
	d.skip() // some other descriptor: consume it
	return 0, false
}

// list reads a list constructor and returns its element count and the
// offset of its end. Callers read at most count fields and then set
// d.off = end (extra fields are ignored, as the specification allows for
// fields a newer version adds).
func (d *decoder) list() (count, end int) {
	c := d.byte()
	switch c {
	case codeList0:
		return 0, d.off
	case codeList8, codeList32:
		w := sizeWidth(c)
		size := d.size(w)
		end = d.off + size
		if w == 1 {
			count = int(d.byte())
		} else {
			count = int(d.u32())
		}
		if d.err == nil && count > end-d.off {
			d.fail("list of %d elements in %d bytes", count, end-d.off)
		}
		return count, end
	}
	if d.err == nil {
		d.off--
		d.fail("want a list, got type code 0x%02x", c)
	}
	return 0, d.off
}

// endList checks that the fields read stayed within the list and moves
// to its end.
func (d *decoder) endList(end int) {
	if d.err != nil {
		return
	}
	if d.off > end {
		d.fail("list element runs past the end of its list")
		return
	}
	d.off = end
}

// mapHeader reads a map constructor and returns its element count (keys
// and values) and its end.
func (d *decoder) mapHeader() (count, end int) {
	c := d.byte()
	switch c {
	case codeMap8, codeMap32:
		w := sizeWidth(c)
		size := d.size(w)
		end = d.off + size
		if w == 1 {
			count = int(d.byte())
		} else {
			count = int(d.u32())
		}
		switch {
		case d.err != nil:
		case count%2 != 0:
			d.fail("map with an odd element count %d", count)
		case count > end-d.off:
			d.fail("map of %d elements in %d bytes", count, end-d.off)
		}
		return count, end
	}
	if d.err == nil {
		d.off--
		d.fail("want a map, got type code 0x%02x", c)
	}
	return 0, d.off
}

// skip consumes one value of any type without allocating. It checks
// sizes and counts like value does, recursing into described values,
// lists, maps and arrays to validate them (bounded by maxDepth and the
// budget).
func (d *decoder) skip() {
	if d.err != nil {
		return
	}
	d.skipAs(d.byte())
}

// skipAs skips a value whose constructor c was consumed already (an
// array's elements share one).
func (d *decoder) skipAs(c byte) {
	if d.err != nil {
		return
	}
	d.budget--
	if d.budget < 0 {
		d.fail("too many values for the input size")
		return
	}
	if c == codeDescribed {
		d.enter()
		d.skip()
		d.skip()
		d.depth--
		return
	}
	if w := fixedWidth(c); w >= 0 {
		if c == codeBool {
			if v := d.byte(); v > 1 && d.err == nil {
				d.off--
				d.fail("boolean byte %d", v)
			}
			return
		}
		d.take(w)
		return
	}
	w := sizeWidth(c)
	if w == 0 {
		d.off--
		d.fail("unknown type code 0x%02x", c)
		return
	}
	size := d.size(w)
	end := d.off + size
	switch c {
	case codeVbin8, codeVbin32:
		d.off = end
	case codeStr8, codeStr32, codeSym8, codeSym32:
		if !utf8.Valid(d.b[d.off:end]) {
			d.fail("string is not valid UTF-8")
			return
		}
		d.off = end
	case codeList8, codeList32, codeMap8, codeMap32:
		count := d.count(w, end)
		switch {
		case d.err != nil:
			return
		case (c == codeMap8 || c == codeMap32) && count%2 != 0:
			d.fail("map with an odd element count %d", count)
			return
		case count > end-d.off:
			d.fail("%d elements in %d bytes", count, end-d.off)
			return
		}
		d.enter()
		for i := 0; i < count && d.err == nil; i++ {
			d.skip()
		}
		d.depth--
		d.expectEnd(end)
	case codeArray8, codeArray32:
		count := d.count(w, end)
		if d.err != nil {
			return
		}
		d.enter()
		d.skipArray(count, end)
		d.depth--
		d.expectEnd(end)
	}
}

// count reads the element count of a list, map or array of the given
// size-field width, checked against the bytes up to end.
func (d *decoder) count(w, end int) int {
	var n uint64
	if w == 1 {
		n = uint64(d.byte())
	} else {
		n = uint64(d.u32())
	}
	if d.err != nil {
		return 0
	}
	if n > uint64(d.budget) || n > uint64(len(d.b)) {
		d.fail("%d elements: too many values for the input size", n)
		return 0
	}
	if d.off > end {
		d.fail("element count runs past the end of its compound")
		return 0
	}
	return int(n)
}

func (d *decoder) enter() {
	d.depth++
	if d.depth > maxDepth && d.err == nil {
		d.fail("values nested deeper than %d", maxDepth)
	}
}

func (d *decoder) expectEnd(end int) {
	if d.err == nil && d.off != end {
		d.fail("compound size does not match its elements (end %d, at %d)", end, d.off)
	}
}

// skipArray skips the element constructor and count elements of an
// array.
func (d *decoder) skipArray(count, end int) {
	if count == 0 {
		return
	}
	ec := d.byte()
	if ec == codeDescribed {
		d.skip() // the descriptor
		ec = d.byte()
	}
	if d.err != nil {
		return
	}
	if ec == codeDescribed || (fixedWidth(ec) < 0 && sizeWidth(ec) == 0) {
		d.off--
		d.fail("bad array element type code 0x%02x", ec)
		return
	}
	if fixedWidth(ec) != 0 && count > end-d.off {
		d.fail("array of %d elements in %d bytes", count, end-d.off)
		return
	}
	for i := 0; i < count && d.err == nil; i++ {
		d.skipAs(ec)
		if d.off > end {
			d.fail("array element runs past the end of its array")
		}
	}
}

// ---------------------------------------------------------------- generic

// value decodes one value of any type into its Go form: nil, bool,
// uint8, uint16, uint32, uint64, int8, int16, int32, int64, float32,
// float64, Char, Timestamp, UUID, Decimal32/64/128, []byte, string,
// Symbol, []any (list), Map, Array or Described. Strings and binaries are
// copied (they outlive the buffer).
func (d *decoder) value() any {
	if d.err != nil {
		return nil
	}
	return d.valueAs(d.byte())
}

func (d *decoder) valueAs(c byte) any {
	if d.err != nil {
		return nil
	}
	d.budget--
	if d.budget < 0 {
		d.fail("too many values for the input size")
		return nil
	}
	switch c {
	case codeDescribed:
		d.enter()
		desc := d.value()
		v := d.value()
		d.depth--
		if d.err != nil {
			return nil
		}
		return Described{Descriptor: desc, Value: v}
	case codeNull:
		return nil
	case codeTrue:
		return true
	case codeFalse:
		return false
	case codeBool:
		switch b := d.byte(); b {
		case 0:
			return false
		case 1:
			return true
		default:
			if d.err == nil {
				d.off--
				d.fail("boolean byte %d", b)
			}
			return nil
		}
	case codeUint0:
		return uint32(0)
	case codeUlong0:
		return uint64(0)
	case codeUbyte:
		return d.byte()
	case codeSmallUint:
		return uint32(d.byte())
	case codeSmallUlong:
		return uint64(d.byte())
	case codeByte:
		return int8(d.byte())
	case codeSmallInt:
		return int32(int8(d.byte()))
	case codeSmallLong:
		return int64(int8(d.byte()))
	case codeUshort:
		return d.u16()
	case codeShort:
		return int16(d.u16())
	case codeUint:
		return d.u32()
	case codeInt:
		return int32(d.u32())
	case codeFloat:
		return math.Float32frombits(d.u32())
	case codeChar:
		return Char(d.u32())
	case codeDecimal32:
		var v Decimal32
		copy(v[:], d.take(4))
		return v
	case codeUlong:
		return d.u64()
	case codeLong:
		return int64(d.u64())
	case codeDouble:
		return math.Float64frombits(d.u64())
	case codeTimestamp:
		return Timestamp(d.u64())
	case codeDecimal64:
		var v Decimal64
		copy(v[:], d.take(8))
		return v
	case codeDecimal128:
		var v Decimal128
		copy(v[:], d.take(16))
		return v
	case codeUUID:
		var v UUID
		copy(v[:], d.take(16))
		return v
	case codeList0:
		return []any{}
	}
	w := sizeWidth(c)
	if w == 0 {
		if d.err == nil {
			d.off--
			d.fail("unknown type code 0x%02x", c)
		}
		return nil
	}
	size := d.size(w)
	end := d.off + size
	switch c {
	case codeVbin8, codeVbin32:
		return append([]byte{}, d.take(size)...)
	case codeStr8, codeStr32:
		b := d.take(size)
		if !utf8.Valid(b) {
			d.off -= size
			d.fail("string is not valid UTF-8")
			return nil
		}
		return string(b)
	case codeSym8, codeSym32:
		b := d.take(size)
		if !utf8.Valid(b) {
			d.off -= size
			d.fail("symbol is not valid UTF-8")
			return nil
		}
		return Symbol(b)
	case codeList8, codeList32:
		count := d.count(w, end)
		if count > end-d.off {
			d.fail("list of %d elements in %d bytes", count, end-d.off)
			return nil
		}
		d.enter()
		out := make([]any, 0, count)
		for i := 0; i < count && d.err == nil; i++ {
			out = append(out, d.value())
		}
		d.depth--
		d.expectEnd(end)
		if d.err != nil {
			return nil
		}
		return out
	case codeMap8, codeMap32:
		count := d.count(w, end)
		switch {
		case d.err != nil:
			return nil
		case count%2 != 0:
			d.fail("map with an odd element count %d", count)
			return nil
		case count > end-d.off:
			d.fail("map of %d elements in %d bytes", count, end-d.off)
			return nil
		}
		d.enter()
		out := make(Map, 0, count/2)
		for i := 0; i < count/2 && d.err == nil; i++ {
			k := d.value()
			v := d.value()
			out = append(out, MapEntry{k, v})
		}
		d.depth--
		d.expectEnd(end)
		if d.err != nil {
			return nil
		}
		return out
	case codeArray8, codeArray32:
		count := d.count(w, end)
		if d.err != nil {
			return nil
		}
		d.enter()
		out := d.array(count, end)
		d.depth--
		d.expectEnd(end)
		if d.err != nil {
			return nil
		}
		return out
	}
	d.fail("unknown type code 0x%02x", c)
	return nil
}

// array decodes count elements sharing one constructor.
func (d *decoder) array(count, end int) Array {
	if count == 0 {
		return Array{}
	}
	ec := d.byte()
	var desc any
	described := false
	if ec == codeDescribed {
		described = true
		desc = d.value()
		ec = d.byte()
	}
	if d.err != nil {
		return nil
	}
	if ec == codeDescribed || (fixedWidth(ec) < 0 && sizeWidth(ec) == 0) {
		d.off--
		d.fail("bad array element type code 0x%02x", ec)
		return nil
	}
	// Elements of a non-zero width need at least one byte each; zero-width
	// ones are paid for by the budget (count was checked against it).
	if fixedWidth(ec) != 0 && count > end-d.off {
		d.fail("array of %d elements in %d bytes", count, end-d.off)
		return nil
	}
	out := make(Array, 0, count)
	for i := 0; i < count && d.err == nil; i++ {
		v := d.valueAs(ec)
		if described {
			v = Described{Descriptor: desc, Value: v}
		}
		out = append(out, v)
	}
	return out
}

// fieldsMap reads an optional map (fields, annotations), decoding it
// generically.
func (d *decoder) mapField() Map {
	if d.null() {
		return nil
	}
	if c := d.peek(); c != codeMap8 && c != codeMap32 {
		d.fail("want a map, got type code 0x%02x", c)
		return nil
	}
	m, _ := d.value().(Map)
	return m
}
