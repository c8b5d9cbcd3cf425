package wire

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

func benchSend() *Send {
	return &Send{Session: 1, Message: Message{
		Address: "bench", Routing: RoutingAnycast, Durable: true, DuplicateID: "r7f3a9c-123456",
		Timestamp: 1, Properties: []Property{StringProp("k", "v")}, Body: bytes.Repeat([]byte("x"), 1024),
	}}
}

// BenchmarkEncodeSend1KiB encodes a 1 KiB durable Send into a reused buffer.
func BenchmarkEncodeSend1KiB(b *testing.B) {
	s := benchSend()
	var e Encoder
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if e.Len() > 1<<20 {
			e.Reset()
		}
		if err := e.Encode(uint64(i+1), s); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(s.Body)))
}

// BenchmarkDecodeSend1KiB decodes a 1 KiB Send into a reused frame.
func BenchmarkDecodeSend1KiB(b *testing.B) {
	frame, err := AppendFrame(nil, 1, benchSend())
	if err != nil {
		b.Fatal(err)
	}
	src := &repeatReader{frame: frame}
	d := NewDecoder(bufio.NewReaderSize(src, 64<<10))
	var s Send
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		if _, err := d.Next(); err != nil {
			b.Fatal(err)
		}
		if err := d.Unmarshal(&s); err != nil {
			b.Fatal(err)
		}
	}
}

// repeatReader returns the same frame forever.
type repeatReader struct {
	frame []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.frame[r.off:])
		n += c
		r.off = (r.off + c) % len(r.frame)
	}
	return n, nil
}

var _ io.Reader = (*repeatReader)(nil)
