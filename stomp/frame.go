package stomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Header is one frame header, as sent (escapes decoded).
type Header struct{ Key, Value string }

// Frame is one STOMP frame.
type Frame struct {
	Command string
	Headers []Header
	Body    []byte
}

// Get returns the value of the first header named key (STOMP 1.2: of
// repeated headers the first counts).
func (f *Frame) Get(key string) (string, bool) {
	for _, h := range f.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

// Value returns the first header named key, or "".
func (f *Frame) Value(key string) string {
	v, _ := f.Get(key)
	return v
}

// Set appends a header.
func (f *Frame) Set(key, value string) { f.Headers = append(f.Headers, Header{key, value}) }

// Limits bound what a Decoder accepts; a frame beyond one is refused
// before the memory for it is allocated.
type Limits struct {
	// MaxBody is the largest body (default 1 MiB, the broker's message
	// limit).
	MaxBody int
	// MaxHeaderBytes bounds the command and header lines together
	// (default 64 KiB).
	MaxHeaderBytes int
	// MaxHeaders bounds the number of headers (default 1000).
	MaxHeaders int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBody <= 0 {
		l.MaxBody = 1 << 20
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = 1000
	}
	return l
}

// FrameError is a malformed or oversized frame: the connection cannot go
// on (the stream's framing is lost). Offset is the position in the
// stream, from the connection's first byte.
type FrameError struct {
	Offset int64
	Reason string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("stomp: malformed frame at byte %d: %s", e.Offset, e.Reason)
}

// Decoder reads frames from a stream.
type Decoder struct {
	r   *bufio.Reader
	lim Limits
	off int64 // bytes consumed
}

// NewDecoder returns a decoder reading r (which should be at least 4 KiB
// of buffer; a header line longer than its buffer is read in parts).
func NewDecoder(r *bufio.Reader, lim Limits) *Decoder {
	return &Decoder{r: r, lim: lim.withDefaults()}
}

// Offset returns how many bytes the decoder has consumed.
func (d *Decoder) Offset() int64 { return d.off }

func (d *Decoder) errorf(format string, args ...any) error {
	return &FrameError{Offset: d.off, Reason: fmt.Sprintf(format, args...)}
}

// Next returns the next frame, or (nil, nil) for a heart-beat (an EOL
// between frames). I/O errors are returned as they are (io.EOF at a
// frame boundary, io.ErrUnexpectedEOF inside one); a bad frame is a
// *FrameError.
func (d *Decoder) Next() (*Frame, error) {
	b, err := d.r.ReadByte()
	if err != nil {
		return nil, err
	}
	d.off++
	switch b {
	case '\n':
		return nil, nil
	case '\r':
		c, err := d.r.ReadByte()
		if err != nil {
			return nil, unexpected(err)
		}
		d.off++
		if c != '\n' {
			return nil, d.errorf("carriage return not followed by a line feed")
		}
		return nil, nil
	}
	if err := d.r.UnreadByte(); err != nil {
		return nil, err
	}
	d.off--
	budget := d.lim.MaxHeaderBytes
	line, err := d.line(&budget)
	if err != nil {
		return nil, err
	}
	cmd := string(line)
	if err := checkCommand(cmd); err != nil {
		return nil, d.errorf("%v", err)
	}
	f := &Frame{Command: cmd}
	escaped := cmd != "CONNECT" && cmd != "CONNECTED" // STOMP 1.2: those are never escaped
	for {
		line, err := d.line(&budget)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if len(f.Headers) == d.lim.MaxHeaders {
			return nil, d.errorf("more than %d headers", d.lim.MaxHeaders)
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return nil, d.errorf("header line %q has no colon", clip(line))
		}
		h := Header{Key: string(k), Value: string(v)}
		if escaped {
			if h.Key, err = unescape(k); err != nil {
				return nil, d.errorf("header name %q: %v", clip(k), err)
			}
			if h.Value, err = unescape(v); err != nil {
				return nil, d.errorf("header %q: %v", clip(k), err)
			}
		}
		f.Headers = append(f.Headers, h)
	}
	if cl, ok := f.Get("content-length"); ok {
		n, err := strconv.ParseUint(strings.TrimSpace(cl), 10, 63)
		if err != nil {
			return nil, d.errorf("content-length %q is not a number of bytes", clip([]byte(cl)))
		}
		if n > uint64(d.lim.MaxBody) {
			return nil, d.errorf("content-length %d exceeds the largest body, %d bytes", n, d.lim.MaxBody)
		}
		if f.Body, err = readBody(d.r, int(n)); err != nil {
			return nil, unexpected(err)
		}
		d.off += int64(n)
		nul, err := d.r.ReadByte()
		if err != nil {
			return nil, unexpected(err)
		}
		if nul != 0 {
			return nil, d.errorf("the body of content-length %d is not followed by a NUL byte", n)
		}
		d.off++
		return f, nil
	}
	// No content-length: the body ends at the first NUL.
	var body []byte
	for {
		chunk, err := d.r.ReadSlice(0)
		if len(body)+len(chunk) > d.lim.MaxBody+1 {
			return nil, d.errorf("body exceeds the largest body, %d bytes (and has no NUL within it)", d.lim.MaxBody)
		}
		body = append(body, chunk...)
		d.off += int64(len(chunk))
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, unexpected(err)
		}
	}
	f.Body = body[:len(body)-1]
	return f, nil
}

// bodyChunk is the buffer a body starts in; it doubles as bytes arrive.
const bodyChunk = 4 << 10

// readBody reads an n-byte body into a buffer that grows with the bytes
// received (at most twice what arrived), never to the announced length at
// once: a client announcing a large content-length and stalling costs
// what it sent.
func readBody(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, 0, min(n, bodyChunk))
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n, 2*cap(b))-len(b))
		}
		m, err := r.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil && len(b) < n {
			return nil, err
		}
	}
	return b, nil
}

// line reads one line (EOL stripped), charging it to budget.
func (d *Decoder) line(budget *int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := d.r.ReadSlice('\n')
		if len(chunk) > *budget {
			return nil, d.errorf("headers exceed %d bytes", d.lim.MaxHeaderBytes)
		}
		*budget -= len(chunk)
		d.off += int64(len(chunk))
		if err == nil {
			if out == nil {
				out = chunk
			} else {
				out = append(out, chunk...)
			}
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, unexpected(err)
		}
		out = append(out, chunk...)
	}
	out = out[:len(out)-1]
	if n := len(out); n > 0 && out[n-1] == '\r' {
		out = out[:n-1]
	}
	if bytes.IndexByte(out, 0) >= 0 {
		return nil, d.errorf("NUL byte in the frame's headers")
	}
	return out, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func checkCommand(cmd string) error {
	if cmd == "" {
		return errors.New("empty command")
	}
	if len(cmd) > 32 {
		return fmt.Errorf("command %q is too long", cmd[:32])
	}
	for i := 0; i < len(cmd); i++ {
		if c := cmd[i]; c < 'A' || c > 'Z' {
			return fmt.Errorf("command %q is not a STOMP command", clip([]byte(cmd)))
		}
	}
	return nil
}

// clip shortens b for an error message.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// unescape decodes STOMP 1.2's header escapes (\r \n \c \\); any other
// escape is an error.
func unescape(b []byte) (string, error) {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b), nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(b) {
			return "", errors.New("ends in a lone backslash")
		}
		switch b[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 'c':
			out = append(out, ':')
		case '\\':
			out = append(out, '\\')
		default:
			return "", fmt.Errorf("undefined escape \\%c", b[i])
		}
	}
	return string(out), nil
}

// appendEscaped appends s with STOMP 1.2's header escapes.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r':
			b = append(b, '\\', 'r')
		case '\n':
			b = append(b, '\\', 'n')
		case ':':
			b = append(b, '\\', 'c')
		case '\\':
			b = append(b, '\\', '\\')
		default:
			b = append(b, c)
		}
	}
	return b
}

// AppendFrame appends f's encoding to b: headers escaped (except in
// CONNECT and CONNECTED frames, where STOMP 1.2 forbids it) and a
// content-length header added when f has a body and none.
func AppendFrame(b []byte, f *Frame) []byte {
	return appendFrame(b, f, f.Command != "CONNECT" && f.Command != "CONNECTED")
}

// appendFrame encodes f, escaping headers when escape is set (STOMP 1.0
// has no escapes).
func appendFrame(b []byte, f *Frame, escape bool) []byte {
	b = append(b, f.Command...)
	b = append(b, '\n')
	hasLen := false
	for _, h := range f.Headers {
		if escape {
			b = appendEscaped(b, h.Key)
			b = append(b, ':')
			b = appendEscaped(b, h.Value)
		} else {
			b = append(b, h.Key...)
			b = append(b, ':')
			b = append(b, h.Value...)
		}
		b = append(b, '\n')
		hasLen = hasLen || h.Key == "content-length"
	}
	if !hasLen && len(f.Body) > 0 {
		b = append(b, "content-length:"...)
		b = strconv.AppendInt(b, int64(len(f.Body)), 10)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, f.Body...)
	return append(b, 0)
}
