package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// ErrBodyTooLarge is returned when a message body exceeds MaxBodySize.
var ErrBodyTooLarge = errors.New("wire: message body too large")

// ErrFrameTooLarge is returned when an encoded frame would exceed
// MaxFrameSize (for example, a body near the limit plus large properties).
var ErrFrameTooLarge = errors.New("wire: frame too large")

// Encoder appends frames to a reusable buffer. Encode as many frames as are
// ready, write Bytes in one call, then Reset: that batches writes without
// copying. The zero value is ready to use; once the buffer has grown,
// encoding allocates nothing.
type Encoder struct {
	buf []byte
}

// Encode appends one frame with the given correlation ID. It returns an
// error, and leaves the buffer as it was, when the frame is invalid (a body
// over MaxBodySize, an invalid routing type or property kind) or larger
// than MaxFrameSize.
func (e *Encoder) Encode(corr uint64, f Frame) error {
	switch m := f.(type) {
	case *Send:
		if err := m.Message.check(); err != nil {
			return err
		}
	case *Deliver:
		if err := m.Message.check(); err != nil {
			return err
		}
	}
	start := len(e.buf)
	b := append(e.buf, 0, 0, 0, 0, Version, byte(f.Type()))
	b = binary.BigEndian.AppendUint64(b, corr)
	b = f.appendPayload(b)
	size := len(b) - start + TrailerSize
	if size > MaxFrameSize {
		e.buf = b[:start]
		return fmt.Errorf("%w: %v frame of %d bytes, limit %d", ErrFrameTooLarge, f.Type(), size, MaxFrameSize)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(size-4))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
	e.buf = b
	return nil
}

// Bytes returns the encoded frames; valid until the next Encode or Reset.
func (e *Encoder) Bytes() []byte { return e.buf }

// Len returns the number of encoded bytes pending.
func (e *Encoder) Len() int { return len(e.buf) }

// Reset empties the buffer, keeping its capacity. A buffer that grew past
// 4 MiB (a burst of large messages) is released.
func (e *Encoder) Reset() {
	if cap(e.buf) > 4<<20 {
		e.buf = nil
		return
	}
	e.buf = e.buf[:0]
}

// AppendFrame appends one encoded frame to dst; a convenience for tests and
// one-off frames.
func AppendFrame(dst []byte, corr uint64, f Frame) ([]byte, error) {
	e := Encoder{buf: dst}
	err := e.Encode(corr, f)
	return e.buf, err
}
