package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// stallReader returns its bytes, then err (a client that announced a frame
// and stopped sending).
type stallReader struct {
	b   []byte
	err error
}

func (r *stallReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// reserved is what the decoder holds for frames: its read buffer and its
// large-frame buffer.
func (d *Decoder) reserved() int { return cap(d.rb) + cap(d.big) }

// A frame announcing the maximum size reserves memory only as its bytes
// arrive: a client that sends the length and a few bytes and then stalls
// must not make the decoder allocate the announced size (500 such
// connections reserved 1.1 GB).
func TestDecoderReservesOnlyWhatArrived(t *testing.T) {
	announced := uint32(MaxFrameSize - 4)
	for _, sent := range []int{10, 100 << 10, 700 << 10} {
		in := binary.BigEndian.AppendUint32(nil, announced)
		in = append(in, Version, byte(TypeSend))
		in = append(in, make([]byte, sent)...)
		stalled := errors.New("stalled")
		d := NewDecoder(&stallReader{b: in, err: stalled})
		if _, err := d.Next(); !errors.Is(err, stalled) {
			t.Fatalf("sent %d: Next: %v, want the reader's error", sent, err)
		}
		// At most a full read buffer and a frame buffer of twice what
		// arrived (at least readBufMax).
		if limit := readBufMax + max(readBufMax, 2*len(in)); d.reserved() > limit {
			t.Fatalf("sent %d bytes of an announced %d-byte frame: decoder holds %d bytes, want at most %d",
				len(in), announced+4, d.reserved(), limit)
		}
	}
}

// A large frame still decodes, in one piece, when its bytes trickle in.
func TestDecoderLargeFrameInPieces(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), MaxBodySize/16)
	b1 := encodeOne(t, &Send{Session: 1, Message: Message{Address: "q", Body: body}})
	b2 := encodeOne(t, &Ping{})
	d := NewDecoder(&trickleReader{b: append(b1, b2...), step: 1000})
	h, f, err := d.Read()
	if err != nil || h.Type != TypeSend || !bytes.Equal(f.(*Send).Body, body) {
		t.Fatalf("large frame: %v %v", h, err)
	}
	if h, _, err := d.Read(); err != nil || h.Type != TypePing {
		t.Fatalf("frame after it: %v %v", h, err)
	}
	if _, _, err := d.Read(); err != io.EOF {
		t.Fatalf("end: %v, want EOF", err)
	}
	// The large buffer is not kept past the next frame.
	if cap(d.big) > bigKeep {
		t.Fatalf("decoder keeps a %d-byte frame buffer after a large frame", cap(d.big))
	}
}

// An idle connection's decoder holds a small read buffer; a busy one grows
// it up to readBufMax.
func TestDecoderReadBufferGrowsWithTraffic(t *testing.T) {
	d := NewDecoder(&stallReader{b: encodeOne(t, &Ping{}), err: io.EOF})
	if _, _, err := d.Read(); err != nil {
		t.Fatal(err)
	}
	if cap(d.rb) > readBufMin {
		t.Fatalf("read buffer %d bytes after one Ping, want at most %d", cap(d.rb), readBufMin)
	}
	var many []byte
	for i := 0; i < 20000; i++ {
		many = append(many, encodeOne(t, &Credit{Consumer: 1, N: uint32(i)})...)
	}
	d = NewDecoder(bytes.NewReader(many))
	for i := 0; i < 20000; i++ {
		if _, _, err := d.Read(); err != nil {
			t.Fatal(err)
		}
	}
	if cap(d.rb) != readBufMax {
		t.Fatalf("read buffer %d bytes after a burst, want %d", cap(d.rb), readBufMax)
	}
}

type trickleReader struct {
	b    []byte
	step int
}

func (r *trickleReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// Every frame type refuses trailing bytes after its payload, also those
// whose payload is empty (Ping and Pong) and that a caller may not
// Unmarshal: Next refuses them itself.
func TestTrailingBytesRefused(t *testing.T) {
	for _, f := range sampleFrames() {
		b := encodeOne(t, f)
		payload := b[HeaderSize : len(b)-TrailerSize]
		bad := reframe(f.Type(), append(bytes.Clone(payload), 0))
		d := NewDecoder(bytes.NewReader(bad))
		_, err := d.Next()
		if err == nil {
			err = d.Unmarshal(NewFrame(f.Type()))
		}
		var fe *FrameError
		if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "trailing") {
			t.Errorf("%v with a trailing byte: %v, want a trailing-bytes FrameError", f.Type(), err)
		}
	}
	for _, typ := range []Type{TypePing, TypePong} {
		if _, err := NewDecoder(bytes.NewReader(reframe(typ, []byte{1, 2, 3}))).Next(); err == nil {
			t.Errorf("Next accepted a %v with a payload", typ)
		}
	}
}

// Buffered counts bytes received and not yet decoded.
func TestDecoderBuffered(t *testing.T) {
	b := append(encodeOne(t, &Ping{}), encodeOne(t, &Pong{})...)
	d := NewDecoder(bytes.NewReader(b))
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	if got := d.Buffered(); got != len(b)/2 {
		t.Fatalf("Buffered %d after the first of two frames, want %d", got, len(b)/2)
	}
}

// SetMaxFrameSize refuses larger frames before reading them.
func TestDecoderSetMaxFrameSize(t *testing.T) {
	big := encodeOne(t, &Hello{MinVersion: 1, MaxVersion: 1, ClientID: strings.Repeat("c", 70<<10)})
	d := NewDecoder(bytes.NewReader(big))
	d.SetMaxFrameSize(64 << 10)
	_, err := d.Next()
	var fe *FrameError
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "limit of 65536") {
		t.Fatalf("a %d-byte frame over a 64 KiB limit: %v", len(big), err)
	}
	if d.reserved() > readBufMin {
		t.Fatalf("the refused frame reserved %d bytes", d.reserved())
	}
	d = NewDecoder(bytes.NewReader(big))
	d.SetMaxFrameSize(64 << 10)
	d.SetMaxFrameSize(0)
	if _, err := d.Next(); err != nil {
		t.Fatalf("after the limit was lifted: %v", err)
	}
}
