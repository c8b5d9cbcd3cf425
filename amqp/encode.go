package amqp

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The append functions encode one value at the end of b, in the smallest
// encoding the specification allows.

func appendNull(b []byte) []byte { return append(b, codeNull) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, codeTrue)
	}
	return append(b, codeFalse)
}

func appendUbyte(b []byte, v uint8) []byte { return append(b, codeUbyte, v) }

func appendUshort(b []byte, v uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, codeUshort), v)
}

func appendUint(b []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(b, codeUint0)
	case v < 256:
		return append(b, codeSmallUint, byte(v))
	}
	return binary.BigEndian.AppendUint32(append(b, codeUint), v)
}

func appendUlong(b []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(b, codeUlong0)
	case v < 256:
		return append(b, codeSmallUlong, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, codeUlong), v)
}

func appendLong(b []byte, v int64) []byte {
	if v >= -128 && v <= 127 {
		return append(b, codeSmallLong, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint64(append(b, codeLong), uint64(v))
}

func appendInt(b []byte, v int32) []byte {
	if v >= -128 && v <= 127 {
		return append(b, codeSmallInt, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint32(append(b, codeInt), uint32(v))
}

func appendTimestamp(b []byte, ms int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeTimestamp), uint64(ms))
}

func appendVar(b []byte, c8, c32 byte, v []byte) []byte {
	if len(v) < 256 {
		b = append(b, c8, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, c32), uint32(len(v)))
	}
	return append(b, v...)
}

func appendString(b []byte, s string) []byte {
	if len(s) < 256 {
		b = append(b, codeStr8, byte(len(s)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, codeStr32), uint32(len(s)))
	}
	return append(b, s...)
}

func appendSymbol(b []byte, s Symbol) []byte {
	if len(s) < 256 {
		b = append(b, codeSym8, byte(len(s)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, codeSym32), uint32(len(s)))
	}
	return append(b, s...)
}

func appendBinary(b []byte, v []byte) []byte { return appendVar(b, codeVbin8, codeVbin32, v) }

// appendSymbols encodes a "multiple" symbol field: null when empty, else
// an array of symbols (sym32 elements keep it simple and valid for any
// length).
func appendSymbols(b []byte, syms []Symbol) []byte {
	if len(syms) == 0 {
		return appendNull(b)
	}
	start := len(b)
	b = append(b, codeArray32, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(syms)))
	b = append(b, codeSym32)
	for _, s := range syms {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-5))
	return b
}

// appendDescriptor starts a described value with a numeric descriptor.
func appendDescriptor(b []byte, code uint64) []byte {
	return appendUlong(append(b, codeDescribed), code)
}

// compound builds a list or map: start reserves a list32/map32 header,
// end fills it in and compacts it to list8/map8 when it fits.
type compound struct {
	start int  // offset of the constructor
	code  byte // codeList32 or codeMap32
	count int  // elements written
	nulls int  // trailing nulls not written yet (lists only)
}

func startList(b []byte) ([]byte, compound) {
	return append(b, codeList32, 0, 0, 0, 0, 0, 0, 0, 0), compound{start: len(b), code: codeList32}
}

func startMap(b []byte) ([]byte, compound) {
	return append(b, codeMap32, 0, 0, 0, 0, 0, 0, 0, 0), compound{start: len(b), code: codeMap32}
}

// null records a null field: written only if a later field is not null,
// so a list ends at its last non-default field.
func (c *compound) null() { c.nulls++ }

// field is called before appending each non-null element.
func (c *compound) field(b []byte) []byte {
	for ; c.nulls > 0; c.nulls-- {
		b = append(b, codeNull)
		c.count++
	}
	c.count++
	return b
}

// end completes the compound.
func (c *compound) end(b []byte) []byte {
	size := len(b) - c.start - 5 // bytes after the size field: count + elements
	if c.count == 0 && c.code == codeList32 {
		return append(b[:c.start], codeList0)
	}
	if size-3 < 256 && c.count < 256 {
		// Compact: constructor, size8, count8, then the elements.
		elems := c.start + 9
		code := codeList8
		if c.code == codeMap32 {
			code = codeMap8
		}
		b[c.start] = code
		b[c.start+1] = byte(size - 3)
		b[c.start+2] = byte(c.count)
		n := copy(b[c.start+3:], b[elems:])
		return b[:c.start+3+n]
	}
	binary.BigEndian.PutUint32(b[c.start+1:], uint32(size))
	binary.BigEndian.PutUint32(b[c.start+5:], uint32(c.count))
	return b
}

// appendValue encodes a Go value of the forms value decodes (and int,
// for convenience). It returns an error for a type it cannot encode.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return appendNull(b), nil
	case bool:
		return appendBool(b, x), nil
	case uint8:
		return appendUbyte(b, x), nil
	case uint16:
		return appendUshort(b, x), nil
	case uint32:
		return appendUint(b, x), nil
	case uint64:
		return appendUlong(b, x), nil
	case int8:
		return append(b, codeByte, byte(x)), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(b, codeShort), uint16(x)), nil
	case int32:
		return appendInt(b, x), nil
	case int64:
		return appendLong(b, x), nil
	case int:
		return appendLong(b, int64(x)), nil
	case float32:
		return binary.BigEndian.AppendUint32(append(b, codeFloat), math.Float32bits(x)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(b, codeDouble), math.Float64bits(x)), nil
	case Char:
		return binary.BigEndian.AppendUint32(append(b, codeChar), uint32(x)), nil
	case Timestamp:
		return appendTimestamp(b, int64(x)), nil
	case UUID:
		return append(append(b, codeUUID), x[:]...), nil
	case Decimal32:
		return append(append(b, codeDecimal32), x[:]...), nil
	case Decimal64:
		return append(append(b, codeDecimal64), x[:]...), nil
	case Decimal128:
		return append(append(b, codeDecimal128), x[:]...), nil
	case []byte:
		return appendBinary(b, x), nil
	case string:
		return appendString(b, x), nil
	case Symbol:
		return appendSymbol(b, x), nil
	case []Symbol:
		return appendSymbols(b, x), nil
	case []any:
		b, c := startList(b)
		for _, e := range x {
			b = c.field(b)
			var err error
			if b, err = appendValue(b, e); err != nil {
				return b, err
			}
		}
		return c.end(b), nil
	case Map:
		b, c := startMap(b)
		for _, e := range x {
			var err error
			c.count += 2
			if b, err = appendValue(b, e.Key); err != nil {
				return b, err
			}
			if b, err = appendValue(b, e.Value); err != nil {
				return b, err
			}
		}
		return c.end(b), nil
	case Described:
		b = append(b, codeDescribed)
		var err error
		if b, err = appendValue(b, x.Descriptor); err != nil {
			return b, err
		}
		return appendValue(b, x.Value)
	case Array:
		return appendArray(b, x)
	}
	return b, fmt.Errorf("amqp: cannot encode a %T", v)
}

// appendArray encodes an Array whose elements all have one Go type, each
// encoded in its widest form so that one constructor fits all.
func appendArray(b []byte, a Array) ([]byte, error) {
	start := len(b)
	b = append(b, codeArray32, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(a)))
	if len(a) > 0 {
		var code byte
		switch a[0].(type) {
		case Symbol:
			code = codeSym32
		case string:
			code = codeStr32
		case []byte:
			code = codeVbin32
		case uint32:
			code = codeUint
		case uint64:
			code = codeUlong
		case int32:
			code = codeInt
		case int64:
			code = codeLong
		case bool:
			code = codeBool
		default:
			return b, fmt.Errorf("amqp: cannot encode an array of %T", a[0])
		}
		b = append(b, code)
		for _, e := range a {
			switch x := e.(type) {
			case Symbol:
				if code != codeSym32 {
					return b, fmt.Errorf("amqp: mixed array element %T", e)
				}
				b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
				b = append(b, x...)
			case string:
				if code != codeStr32 {
					return b, fmt.Errorf("amqp: mixed array element %T", e)
				}
				b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
				b = append(b, x...)
			case []byte:
				if code != codeVbin32 {
					return b, fmt.Errorf("amqp: mixed array element %T", e)
				}
				b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
				b = append(b, x...)
			case uint32:
				if code != codeUint {
					return b, fmt.Errorf("amqp: mixed array element %T", e)
				}
				b = binary.BigEndian.AppendUint32(b, x)
			case uint64:
				if code != codeUlong {
					return b, fmt.Errorf("amqp: mixed array element %T", e)
				}
				b = binary.BigEndian.AppendUint64(b, x)
			case int32:
				if code != codeInt {
					return b, fmt.Errorf("amqp: mixed array element %T", e)
				}
				b = binary.BigEndian.AppendUint32(b, uint32(x))
			case int64:
				if code != codeLong {
					return b, fmt.Errorf("amqp: mixed array element %T", e)
				}
				b = binary.BigEndian.AppendUint64(b, uint64(x))
			case bool:
				if code != codeBool {
					return b, fmt.Errorf("amqp: mixed array element %T", e)
				}
				v := byte(0)
				if x {
					v = 1
				}
				b = append(b, v)
			default:
				return b, fmt.Errorf("amqp: mixed array element %T", e)
			}
		}
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-5))
	return b, nil
}
