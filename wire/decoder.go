package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Decoder reads frames from a stream. It reuses one buffer: the payload
// returned by Next (and byte slices inside frames filled by Unmarshal) are
// valid only until the following Next.
type Decoder struct {
	r     *bufio.Reader
	buf   []byte
	off   int64 // stream offset of the next frame
	start int64 // stream offset of the current frame
	hdr   Header
	pay   []byte
	rd    reader // reused: an interface call would make a local one escape
	addr  string // last address decoded (interned)
}

// NewDecoder returns a Decoder reading from r (wrapped in a bufio.Reader
// unless it already is one).
func NewDecoder(r io.Reader) *Decoder {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Decoder{r: br}
}

// Next reads the next frame and returns its header; Payload returns its
// payload. At a clean end of stream (between frames) it returns io.EOF; a
// stream cut inside a frame gives io.ErrUnexpectedEOF; other read errors
// are returned as they are. A bad length or CRC, or an unknown type, is a
// *FrameError: the stream cannot be read further.
func (d *Decoder) Next() (Header, error) {
	d.start = d.off
	d.pay = nil
	var lb [4]byte
	if n, err := io.ReadFull(d.r, lb[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || (err == io.EOF && n > 0) {
			return Header{}, io.ErrUnexpectedEOF
		}
		return Header{}, err
	}
	length := binary.BigEndian.Uint32(lb[:])
	if length < minLength {
		return Header{}, &FrameError{Offset: d.start, Reason: fmt.Sprintf("length %d shorter than the minimum %d", length, minLength)}
	}
	if uint64(length)+4 > MaxFrameSize {
		return Header{}, &FrameError{Offset: d.start, Reason: fmt.Sprintf("length %d exceeds the maximum frame size %d", uint64(length)+4, MaxFrameSize)}
	}
	total := int(length) + 4
	if cap(d.buf) < total {
		d.buf = make([]byte, total, max(total, 4096))
	}
	b := d.buf[:total]
	copy(b, lb[:])
	if _, err := io.ReadFull(d.r, b[4:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, err
	}
	d.off += int64(total)
	want := binary.BigEndian.Uint32(b[total-4:])
	if got := crc32.Checksum(b[:total-4], castagnoli); got != want {
		return Header{}, &FrameError{Offset: d.start, Reason: fmt.Sprintf("CRC mismatch: computed %#08x, frame says %#08x", got, want)}
	}
	h := Header{Version: b[4], Type: Type(b[5]), Corr: binary.BigEndian.Uint64(b[6:14])}
	if h.Version == 0 {
		return Header{}, &FrameError{Offset: d.start, Type: h.Type, Reason: "version 0"}
	}
	if !h.Type.Known() {
		return Header{}, &FrameError{Offset: d.start, Reason: fmt.Sprintf("unknown frame type %d", uint8(h.Type))}
	}
	d.hdr = h
	d.pay = b[HeaderSize : total-4]
	return h, nil
}

// Payload returns the current frame's payload (valid until the next Next).
func (d *Decoder) Payload() []byte { return d.pay }

// Offset returns the stream offset of the current frame.
func (d *Decoder) Offset() int64 { return d.start }

// Unmarshal decodes the current frame's payload into f, whose type must be
// the frame's. Slices in f are reused where possible; byte slices alias the
// decoder's buffer.
func (d *Decoder) Unmarshal(f Frame) error {
	d.rd = reader{b: d.pay, last: &d.addr}
	err := unmarshal(d.hdr, f, &d.rd)
	d.rd.b = nil
	if err != nil {
		err.Offset = d.start
		return err
	}
	return nil
}

// Read reads the next frame and decodes it into a newly allocated Frame.
// Convenient where allocation does not matter; hot paths use Next and
// Unmarshal with reused frames.
func (d *Decoder) Read() (Header, Frame, error) {
	h, err := d.Next()
	if err != nil {
		return h, nil, err
	}
	f := NewFrame(h.Type)
	if err := d.Unmarshal(f); err != nil {
		return h, nil, err
	}
	return h, f, nil
}

// Unmarshal decodes a frame payload of header h into f. Errors are
// *FrameError with Offset -1.
func Unmarshal(h Header, payload []byte, f Frame) error {
	if err := unmarshal(h, f, &reader{b: payload}); err != nil {
		return err
	}
	return nil
}

func unmarshal(h Header, f Frame, r *reader) *FrameError {
	if f == nil || f.Type() != h.Type {
		return &FrameError{Offset: -1, Type: h.Type, Reason: "decoded into a frame of another type"}
	}
	if h.Version > Version && h.Type != TypeHello {
		return &FrameError{Offset: -1, Type: h.Type, Reason: fmt.Sprintf("unsupported version %d", h.Version)}
	}
	f.decodePayload(r)
	if h.Type != TypeHello || h.Version <= Version {
		// A newer client's Hello may carry fields this version does not know.
		r.end()
	}
	if r.err != nil {
		return &FrameError{Offset: -1, Type: h.Type, Reason: r.err.Error()}
	}
	return nil
}
