package stomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func decodeAll(t testing.TB, s string, lim Limits) ([]*Frame, error) {
	t.Helper()
	d := NewDecoder(bufio.NewReaderSize(strings.NewReader(s), 16), lim)
	var out []*Frame
	for {
		f, err := d.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		if f != nil {
			out = append(out, f)
		}
	}
}

func TestDecodeFrames(t *testing.T) {
	in := "\n\r\nCONNECT\naccept-version:1.2\nhost:a:b\\c\n\n\x00\n" + // CONNECT: no unescaping
		"SEND\r\ndestination:q\\c1\\n\\r\\\\\nx:1\nx:2\n\nhello\x00" + // escapes, CRLF, repeated header
		"SEND\ndestination:q\ncontent-length:3\n\na\x00b\x00\n\n" // content-length body with a NUL
	fs, err := decodeAll(t, in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []*Frame{
		{Command: "CONNECT", Headers: []Header{{"accept-version", "1.2"}, {"host", `a:b\c`}}, Body: []byte{}},
		{Command: "SEND", Headers: []Header{{"destination", "q:1\n\r\\"}, {"x", "1"}, {"x", "2"}}, Body: []byte("hello")},
		{Command: "SEND", Headers: []Header{{"destination", "q"}, {"content-length", "3"}}, Body: []byte("a\x00b")},
	}
	if !reflect.DeepEqual(fs, want) {
		t.Fatalf("got %+v\nwant %+v", fs, want)
	}
	if fs[1].Value("x") != "1" {
		t.Fatal("the first of repeated headers must count")
	}
}

// TestDecodeErrors: every malformed or oversized frame is a *FrameError
// naming the place, never a panic, and an oversized content-length is
// refused before its body is read.
func TestDecodeErrors(t *testing.T) {
	lim := Limits{MaxBody: 100, MaxHeaderBytes: 200, MaxHeaders: 3}
	cases := map[string]string{
		"lowercase command":     "send\n\n\x00",
		"header without colon":  "SEND\ndestination\n\n\x00",
		"undefined escape":      "SEND\nd:a\\tb\n\n\x00",
		"lone backslash":        "SEND\nd:a\\\n\n\x00",
		"bad content-length":    "SEND\ncontent-length:abc\n\nabc\x00",
		"negative length":       "SEND\ncontent-length:-1\n\n\x00",
		"huge content-length":   "SEND\ncontent-length:99999999999999\n\n",
		"length over the limit": "SEND\ncontent-length:101\n\n",
		"no NUL after length":   "SEND\ncontent-length:1\n\nab\x00",
		"body over the limit":   "SEND\n\n" + strings.Repeat("x", 102) + "\x00",
		"headers over limit":    "SEND\nk:" + strings.Repeat("v", 300) + "\n\n\x00",
		"too many headers":      "SEND\na:1\nb:2\nc:3\nd:4\n\n\x00",
		"CR without LF":         "\rSEND\n\n\x00",
		"NUL in headers":        "SEND\na:\x00\n\n\x00",
		"long command":          strings.Repeat("A", 40) + "\n\n\x00",
	}
	for name, in := range cases {
		_, err := decodeAll(t, in, lim)
		var fe *FrameError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a FrameError", name, err)
			continue
		}
		if !strings.Contains(fe.Error(), "at byte") {
			t.Errorf("%s: %v does not name the place", name, err)
		}
	}
	// Truncated frames are unexpected EOFs, not frame errors.
	for _, in := range []string{"SEND\n", "SEND\n\nabc", "SEND\ncontent-length:5\n\nab"} {
		if _, err := decodeAll(t, in, lim); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: %v, want unexpected EOF", in, err)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	f := &Frame{Command: "MESSAGE", Headers: []Header{{"a:b", "c\nd\\e\r"}, {"destination", "x"}}, Body: []byte("z\x00z")}
	b := AppendFrame(nil, f)
	g, err := NewDecoder(bufio.NewReader(bytes.NewReader(b)), Limits{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	f.Headers = append(f.Headers, Header{"content-length", "3"})
	if !reflect.DeepEqual(f, g) {
		t.Fatalf("round trip: got %+v want %+v", g, f)
	}
}

// FuzzDecoder: the decoder never panics, never returns a body or headers
// beyond its limits, and what it decodes encodes back to the same frame.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		"CONNECT\naccept-version:1.2\n\n\x00",
		"SEND\ndestination:q\ncontent-length:3\n\nabc\x00\n",
		"SEND\ndestination:q\\c\\n\n\nbody\x00",
		"\r\n\nACK\nid:1-2\n\n\x00",
		"SEND\ncontent-length:5\n\nab\x00",
		"SUBSCRIBE\r\nid:0\r\ndestination:/queue/a\r\nack:client\r\n\r\n\x00",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxBody: 1 << 10, MaxHeaderBytes: 1 << 10, MaxHeaders: 16}
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(in), 16), lim)
		for i := 0; i < 64; i++ {
			fr, err := d.Next()
			if err != nil {
				var fe *FrameError
				if !errors.As(err, &fe) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				if d.Offset() > int64(len(in)) {
					t.Fatalf("offset %d beyond the input's %d bytes", d.Offset(), len(in))
				}
				return
			}
			if fr == nil {
				continue
			}
			if len(fr.Body) > lim.MaxBody || len(fr.Headers) > lim.MaxHeaders {
				t.Fatalf("limits exceeded: body %d, %d headers", len(fr.Body), len(fr.Headers))
			}
			b := AppendFrame(nil, fr)
			g, err := NewDecoder(bufio.NewReader(bytes.NewReader(b)), Limits{MaxBody: 1 << 20, MaxHeaderBytes: 1 << 20, MaxHeaders: 100}).Next()
			if err != nil {
				t.Fatalf("re-decoding %q: %v", b, err)
			}
			if g.Command != fr.Command || !bytes.Equal(g.Body, fr.Body) {
				t.Fatalf("round trip changed the frame: %+v -> %+v", fr, g)
			}
			for j, h := range fr.Headers {
				if g.Headers[j] != h {
					t.Fatalf("round trip changed header %d: %+v -> %+v", j, h, g.Headers[j])
				}
			}
		}
	})
}

// probeReader returns its bytes, then err (a peer that stopped sending),
// and records the largest buffer it was asked to fill: what the reader's
// caller had reserved for the bytes still to come.
type probeReader struct {
	b    []byte
	err  error
	maxP int
}

func (r *probeReader) Read(p []byte) (int, error) {
	r.maxP = max(r.maxP, len(p))
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// A body's memory follows the bytes that arrive, not the content-length
// announced: a client (before CONNECT, unauthenticated) announcing a
// 1 MiB body and stalling after a few bytes made the broker reserve 1 MiB
// per connection. The body still decodes when it all arrives.
func TestBodyReservedAsItArrives(t *testing.T) {
	stalled := errors.New("stalled")
	r := &probeReader{b: []byte("CONNECT\ncontent-length:1048576\n\n" + strings.Repeat("x", 100)), err: stalled}
	d := NewDecoder(bufio.NewReaderSize(r, 4096), Limits{})
	if _, err := d.Next(); !errors.Is(err, stalled) {
		t.Fatalf("Next: %v, want the reader's error", err)
	}
	if r.maxP > 16<<10 {
		t.Fatalf("a body announced at 1 MiB of which 100 bytes arrived: a read into %d bytes", r.maxP)
	}
	body := bytes.Repeat([]byte("0123456789"), 100000)
	in := fmt.Appendf(nil, "SEND\ncontent-length:%d\n\n%s\x00", len(body), body)
	d = NewDecoder(bufio.NewReaderSize(&trickle{b: in, step: 3000}, 4096), Limits{})
	f, err := d.Next()
	if err != nil || !bytes.Equal(f.Body, body) {
		t.Fatalf("a 1 MB body in pieces: %v", err)
	}
}

// trickle returns its bytes step at a time.
type trickle struct {
	b    []byte
	step int
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.b)
	r.b = r.b[n:]
	return n, nil
}
