package wire

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Decoder reads frames from a stream. It reuses its buffers: the payload
// returned by Next (and byte slices inside frames filled by Unmarshal) are
// valid only until the following Next.
//
// Memory follows what arrives, never what a frame announces: frames up to
// readBufMax are decoded in place from a read buffer that starts at
// readBufMin and doubles (up to readBufMax) only when a read fills it, so an
// idle connection holds a few KiB; a larger frame is gathered in a buffer
// that grows as its bytes arrive (at most twice what arrived) and is
// dropped at the next Next when larger than bigKeep. A peer that announces
// a maximal frame and stalls costs at most readBufMax.
type Decoder struct {
	src   io.Reader
	rb    []byte // read buffer; rb[rpos:rend] is received and not yet decoded
	rpos  int
	rend  int
	grow  bool   // the last read filled rb: double it before the next read
	big   []byte // the current frame when it is larger than readBufMax
	off   int64  // stream offset of the next frame
	start int64  // stream offset of the current frame
	hdr   Header
	pay   []byte
	rd    reader // reused: an interface call would make a local one escape
	addr  string // last address decoded (interned)
	limit int    // largest frame accepted; 0 means MaxFrameSize
}

// Read and frame buffer sizes (see Decoder).
const (
	readBufMin = 4 << 10
	readBufMax = 64 << 10
	bigKeep    = 256 << 10
)

// NewDecoder returns a Decoder reading from r. The Decoder buffers reads
// itself; r need not be buffered.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{src: r}
}

// SetMaxFrameSize lowers the largest frame Next accepts (length field
// included) to n; 0 (or more than MaxFrameSize) restores MaxFrameSize. A
// server accepts only small frames until the handshake is done.
func (d *Decoder) SetMaxFrameSize(n int) {
	if n <= 0 || n > MaxFrameSize {
		n = 0
	}
	d.limit = n
}

// Buffered returns the number of bytes received and not yet decoded: 0
// means the next Next will read from the stream.
func (d *Decoder) Buffered() int { return d.rend - d.rpos }

// Unread returns the bytes received after the current frame and not yet
// decoded, for a caller that stops using the Decoder and goes on reading
// the stream itself (valid until the next Next).
func (d *Decoder) Unread() []byte { return d.rb[d.rpos:d.rend] }

// fill reads until at least n (<= readBufMax) bytes are buffered. It
// returns the reader's error when the stream ends or fails first.
func (d *Decoder) fill(n int) error {
	empty := 0
	for d.rend-d.rpos < n {
		if d.rpos > 0 { // make room: move the undecoded bytes to the front
			d.rend = copy(d.rb, d.rb[d.rpos:d.rend])
			d.rpos = 0
		}
		if size := len(d.rb); size < n || (d.grow && size < readBufMax) {
			size = min(max(n, 2*size, readBufMin), readBufMax)
			nb := make([]byte, size)
			copy(nb, d.rb[:d.rend])
			d.rb, d.grow = nb, false
		}
		m, err := d.src.Read(d.rb[d.rend:])
		d.rend += m
		d.grow = d.rend == len(d.rb) && len(d.rb) < readBufMax
		if d.rend-d.rpos >= n {
			return nil
		}
		if err != nil {
			return err
		}
		if m == 0 {
			if empty++; empty >= 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// readBig returns a frame of total bytes (> readBufMax), gathered in d.big
// as its bytes arrive.
func (d *Decoder) readBig(total int) ([]byte, error) {
	b := append(d.big[:0], d.rb[d.rpos:d.rend]...)
	d.rpos, d.rend = 0, 0
	empty := 0
	for len(b) < total {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(total, max(2*cap(b), readBufMax)))
			copy(nb, b)
			b = nb
		}
		m, err := d.src.Read(b[len(b):min(cap(b), total)])
		b = b[:len(b)+m]
		if len(b) == total {
			break
		}
		if err != nil {
			d.big = b
			return nil, err
		}
		if m == 0 {
			if empty++; empty >= 100 {
				d.big = b
				return nil, io.ErrNoProgress
			}
		}
	}
	d.big = b
	return b, nil
}

// Next reads the next frame and returns its header; Payload returns its
// payload. At a clean end of stream (between frames) it returns io.EOF; a
// stream cut inside a frame gives io.ErrUnexpectedEOF; other read errors
// are returned as they are. A bad length or CRC, an unknown type, or a
// payload on a frame type whose payload is empty (Ping, Pong) is a
// *FrameError: the stream cannot be read further.
func (d *Decoder) Next() (Header, error) {
	d.start = d.off
	d.pay = nil
	if cap(d.big) > bigKeep {
		d.big = nil
	}
	if err := d.fill(4); err != nil {
		if err == io.EOF && d.rend > d.rpos {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, err
	}
	length := binary.BigEndian.Uint32(d.rb[d.rpos:])
	if length < minLength {
		return Header{}, &FrameError{Offset: d.start, Reason: fmt.Sprintf("length %d shorter than the minimum %d", length, minLength)}
	}
	if uint64(length)+4 > MaxFrameSize {
		return Header{}, &FrameError{Offset: d.start, Reason: fmt.Sprintf("length %d exceeds the maximum frame size %d", uint64(length)+4, MaxFrameSize)}
	}
	if d.limit > 0 && int(length)+4 > d.limit {
		return Header{}, &FrameError{Offset: d.start, Reason: fmt.Sprintf("length %d exceeds the limit of %d bytes here", uint64(length)+4, d.limit)}
	}
	total := int(length) + 4
	var b []byte
	if total <= readBufMax {
		if err := d.fill(total); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, err
		}
		b = d.rb[d.rpos : d.rpos+total : d.rpos+total]
		d.rpos += total
	} else {
		var err error
		if b, err = d.readBig(total); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, err
		}
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
	if n := total - HeaderSize - TrailerSize; n > 0 && (h.Type == TypePing || h.Type == TypePong) {
		// Callers answer these without Unmarshal: refuse the payload here.
		return Header{}, &FrameError{Offset: d.start, Type: h.Type, Reason: fmt.Sprintf("payload: %d trailing bytes", n)}
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
