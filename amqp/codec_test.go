package amqp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// TestDecodeHostile feeds encodings that claim more than they hold: each
// must fail with a DecodeError naming the offset, quickly and without
// allocating what the claim says.
func TestDecodeHostile(t *testing.T) {
	deep := bytes.Repeat([]byte{codeList8, 0xff, 1}, 200)
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"list count above its size", []byte{codeList8, 2, 200, codeNull}, "200 elements"},
		{"list32 size above input", []byte{codeList32, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}, "larger than"},
		{"array of 4G nulls", []byte{codeArray32, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, codeNull}, "too many values"},
		{"array of 255 list0 in 3 bytes", []byte{codeArray8, 2, 255, codeList0}, "too many values"},
		{"nesting", deep, "nested deeper"},
		{"odd map", []byte{codeMap8, 2, 1, codeNull}, "odd"},
		{"bad utf8", []byte{codeStr8, 2, 0xff, 0xfe}, "UTF-8"},
		{"unknown code", []byte{0x99}, "unknown type code 0x99"},
		{"truncated ulong", []byte{codeUlong, 1, 2}, "truncated"},
		{"bad boolean", []byte{codeBool, 7}, "boolean"},
		{"described without value", []byte{codeDescribed, codeSmallUlong, 0x10}, "truncated"},
		{"binary size above input", []byte{codeVbin32, 0x7f, 0xff, 0xff, 0xff}, "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecoder(tc.in)
			v := d.value()
			var de *DecodeError
			if !errors.As(d.err, &de) {
				t.Fatalf("value = %v, err = %v; want a DecodeError", v, d.err)
			}
			if !strings.Contains(de.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", de, tc.want)
			}
			// skip must refuse it the same way.
			d2 := newDecoder(tc.in)
			d2.skip()
			if d2.err == nil {
				t.Fatalf("skip accepted what value refused: %v", de)
			}
		})
	}
}

// TestValueRoundTrip encodes every kind of value and decodes it back.
func TestValueRoundTrip(t *testing.T) {
	vals := []any{
		nil, true, false, uint8(7), uint16(300), uint32(0), uint32(5), uint32(1 << 20), uint64(0), uint64(9), uint64(1 << 40),
		int8(-3), int16(-300), int32(-1), int32(1 << 20), int64(-5), int64(math.MinInt64), float32(1.5), 2.25,
		Char('é'), Timestamp(1700000000000), UUID{1, 2, 3}, []byte{}, []byte("bin"), "", "héllo", strings.Repeat("x", 300),
		Symbol("sym"), []any{}, []any{uint32(1), "two", nil}, Map{{Symbol("k"), "v"}, {"n", int64(1)}},
		Described{Descriptor: uint64(0x77), Value: "x"}, Array{Symbol("a"), Symbol("b")}, Array{int64(1), int64(2)},
		Decimal32{1, 2, 3, 4}, Decimal64{1}, Decimal128{2},
	}
	for _, v := range vals {
		b, err := appendValue(nil, v)
		if err != nil {
			t.Fatalf("encode %#v: %v", v, err)
		}
		d := newDecoder(b)
		got := d.value()
		if d.err != nil || d.off != len(b) {
			t.Fatalf("decode %#v (% x): %v at %d", v, b, d.err, d.off)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("round trip of %#v gave %#v", v, got)
		}
		d = newDecoder(b)
		d.skip()
		if d.err != nil || d.off != len(b) {
			t.Fatalf("skip %#v: %v at %d of %d", v, d.err, d.off, len(b))
		}
	}
}

// TestMessageMapping checks the AMQP <-> broker message mapping: bodies of
// each kind, typed application properties, the duplicate ID property, and
// that sections the broker does not map come back verbatim.
func TestMessageMapping(t *testing.T) {
	// A go-amqp-like message: header durable, properties with message-id
	// and creation-time, application-properties including a double, an
	// amqp-value string body.
	var p []byte
	p = appendDescriptor(p, descHeader)
	p, c := startList(p)
	p = appendBool(c.field(p), true)
	p = c.end(p)
	hdrEnd := len(p)
	p = appendDescriptor(p, descProperties)
	p, c = startList(p)
	p = appendString(c.field(p), "id-1")
	for i := 0; i < 8; i++ { // user-id ... absolute-expiry-time
		c.null()
	}
	p = appendTimestamp(c.field(p), 1700000000123) // creation-time
	p = c.end(p)
	p = appendDescriptor(p, descApplicationProperties)
	p, _ = appendValue(p, Map{{"s", "v"}, {"n", int32(5)}, {"d", 1.5}, {DuplicateIDProperty, "dup-7"}})
	p = appendDescriptor(p, descAMQPValue)
	p = appendString(p, "hello")

	in, err := decodeMessage(p, false)
	if err != nil {
		t.Fatal(err)
	}
	m := in.m
	if !m.Durable || string(m.Body) != "hello" || m.DuplicateID != "dup-7" || m.Timestamp != 1700000000123e6 {
		t.Fatalf("decoded %+v", m)
	}
	if in.messageID != "id-1" {
		t.Fatalf("message-id %v", in.messageID)
	}
	want := map[string]wire.Property{"s": wire.StringProp("s", "v"), "n": wire.Int64Prop("n", 5), "d": wire.StringProp("d", "1.5")}
	for k, w := range want {
		found := false
		for _, q := range m.Properties {
			if q.Key == k {
				found = true
				if !reflect.DeepEqual(q, w) {
					t.Fatalf("property %s = %+v, want %+v", k, q, w)
				}
			}
		}
		if !found {
			t.Fatalf("property %s missing from %+v", k, m.Properties)
		}
	}
	// Back out: the properties and application-properties sections come
	// back verbatim after a new header, and the body as amqp-value.
	out := appendMessage(nil, m, 1)
	bodyAt := bytes.Index(p, []byte{codeDescribed, codeSmallUlong, byte(descAMQPValue)})
	if !bytes.Contains(out, p[hdrEnd:bodyAt]) {
		t.Fatalf("sections not kept verbatim")
	}
	in2, err := decodeMessage(out, false)
	if err != nil {
		t.Fatal(err)
	}
	if string(in2.m.Body) != "hello" || !in2.m.Durable || in2.m.DuplicateID != "dup-7" {
		t.Fatalf("re-decoded %+v", in2.m)
	}

	// A plain broker message (no AMQP sections) goes out as a data body
	// with typed application-properties.
	bm := &server.Message{Address: "q", Durable: true, Body: []byte{0, 1, 2}, Timestamp: 5e6,
		Properties: []wire.Property{wire.StringProp("a", "b"), wire.Int64Prop("i", -2), wire.BoolProp("t", true), wire.BytesProp("x", []byte("y"))}}
	out = appendMessage(nil, bm, 3)
	in3, err := decodeMessage(out, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in3.m.Body, bm.Body) || !in3.m.Durable || in3.to != "q" || in3.m.Timestamp != 5e6 {
		t.Fatalf("broker message came back as %+v (to %q)", in3.m, in3.to)
	}
	if !reflect.DeepEqual(in3.m.Properties, bm.Properties) {
		t.Fatalf("properties %+v, want %+v", in3.m.Properties, bm.Properties)
	}
}

// TestFrameReaderLimits refuses frames by their header: too large, too
// small, bad data offset.
func TestFrameReaderLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  []byte
		want string
	}{
		{"oversized", []byte{0x7f, 0xff, 0xff, 0xff, 2, 0, 0, 0}, "exceeds the max-frame-size"},
		{"undersized", []byte{0, 0, 0, 4, 2, 0, 0, 0}, "smaller than its header"},
		{"doff 1", []byte{0, 0, 0, 8, 1, 0, 0, 0}, "below 2"},
		{"doff beyond", []byte{0, 0, 0, 16, 9, 0, 0, 0}, "beyond the frame size"},
	} {
		fr := frameReader{r: bufioReader(tc.hdr), max: MaxFrameSize}
		_, err := fr.next()
		var fe *FrameError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: err %v, want a FrameError saying %q", tc.name, err, tc.want)
		}
	}
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

// A frame's memory follows the bytes that arrive, not the size its header
// announces: a client announcing a max-frame-size frame and stalling
// costs what it sent. The frame still reads whole when it all arrives.
func TestFrameReaderReservesAsBytesArrive(t *testing.T) {
	stalled := errors.New("stalled")
	hdr := []byte{0, 0, 0, 0, 2, frameAMQP, 0, 0}
	binary.BigEndian.PutUint32(hdr, MaxFrameSize)
	r := &probeReader{b: append(hdr, bytes.Repeat([]byte{1}, 100)...), err: stalled}
	fr := frameReader{r: bufio.NewReaderSize(r, 4096), max: MaxFrameSize}
	if _, err := fr.next(); !errors.Is(err, stalled) {
		t.Fatalf("next: %v, want the reader's error", err)
	}
	if r.maxP > 16<<10 {
		t.Fatalf("a %d-byte frame of which 100 bytes arrived: a read into %d bytes", MaxFrameSize, r.maxP)
	}
	for _, size := range []int{100, 60 << 10, MaxFrameSize} {
		body := bytes.Repeat([]byte("0123456789"), (size-frameHeaderSize)/10+1)[:size-frameHeaderSize]
		in := append(binary.BigEndian.AppendUint32(nil, uint32(size)), 2, frameAMQP, 0, 0)
		in = append(in, body...)
		fr := frameReader{r: bufio.NewReaderSize(&probeReader{b: in, err: io.EOF}, 4096), max: MaxFrameSize}
		f, err := fr.next()
		if err != nil || !bytes.Equal(f.body, body) {
			t.Fatalf("a %d-byte frame: %v", size, err)
		}
	}
}
