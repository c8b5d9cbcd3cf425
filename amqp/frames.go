package amqp

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// Protocol headers (part 2, section 2.2): "AMQP", a protocol ID (0 AMQP,
// 2 TLS, 3 SASL) and the version 1.0.0.
var (
	headerAMQP = [8]byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	headerSASL = [8]byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// Frame types.
const (
	frameAMQP byte = 0x00
	frameSASL byte = 0x01
)

// frameHeaderSize is the fixed part of every frame: size (4), data offset
// (1), type (1), type-specific (2, the channel for AMQP frames).
const frameHeaderSize = 8

// minMaxFrameSize is the smallest max-frame-size a peer may announce
// (MIN-MAX-FRAME-SIZE) and the limit before open is exchanged.
const minMaxFrameSize = 512

// FrameError is a framing error: the stream cannot be read further.
// Offset is the stream offset of the frame's first byte.
type FrameError struct {
	Offset int64
	Reason string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("amqp: framing error at stream offset %d: %s", e.Offset, e.Reason)
}

// frame is one frame read: its type, channel and body (the performative
// and payload after the extended header; empty for a heartbeat). body
// aliases the reader's buffer until the next read.
type frame struct {
	typ     byte
	channel uint16
	body    []byte
	offset  int64
}

// frameReader reads frames from a buffered reader, refusing a frame
// larger than max before allocating anything for it.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
	max uint32
	off int64 // stream offset of the next frame
}

// keepBuf is the largest frame buffer kept between frames; a larger frame
// gets a buffer of its own, dropped afterwards.
const keepBuf = 64 << 10

// readHeader reads an 8-byte protocol header.
func (fr *frameReader) readHeader() ([8]byte, error) {
	var h [8]byte
	_, err := io.ReadFull(fr.r, h[:])
	fr.off += 8
	return h, err
}

// read reads a frame's n bytes after its header. Its buffer grows with
// the bytes that arrive (at most twice what arrived, from 4 KiB), never to
// the size the header announces at once: a peer announcing a large frame
// and stalling costs what it sent. A buffer up to keepBuf is kept for the
// next frames.
func (fr *frameReader) read(n int) ([]byte, error) {
	b := fr.buf[:0]
	if cap(b) < min(n, 4096) {
		b = make([]byte, 0, min(n, 4096))
	}
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n, 2*cap(b))-len(b))
		}
		m, err := fr.r.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil && len(b) < n {
			if cap(b) <= keepBuf {
				fr.buf = b[:0]
			}
			return nil, err
		}
	}
	if cap(b) <= keepBuf {
		fr.buf = b[:0]
	}
	return b, nil
}

// next reads one frame.
func (fr *frameReader) next() (frame, error) {
	var h [frameHeaderSize]byte
	at := fr.off
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		return frame{}, err
	}
	size := binary.BigEndian.Uint32(h[0:4])
	doff := uint32(h[4])
	switch {
	case size < frameHeaderSize:
		return frame{}, &FrameError{at, fmt.Sprintf("frame size %d is smaller than its header", size)}
	case size > fr.max:
		return frame{}, &FrameError{at, fmt.Sprintf("frame of %d bytes exceeds the max-frame-size %d", size, fr.max)}
	case doff < 2:
		return frame{}, &FrameError{at, fmt.Sprintf("data offset %d is below 2", doff)}
	case doff*4 > size:
		return frame{}, &FrameError{at, fmt.Sprintf("data offset %d is beyond the frame size %d", doff, size)}
	}
	n := int(size) - frameHeaderSize
	b, err := fr.read(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	fr.off += int64(size)
	return frame{typ: h[5], channel: binary.BigEndian.Uint16(h[6:8]), body: b[doff*4-frameHeaderSize:], offset: at}, nil
}

// appender is a performative that encodes itself.
type appender interface {
	append(b []byte) []byte
}

// appendFrame appends one frame: header, the performative p (nil for a
// heartbeat) and payload.
func appendFrame(b []byte, typ byte, channel uint16, p appender, payload []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	if p != nil {
		b = p.append(b)
	}
	b = append(b, payload...)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}
