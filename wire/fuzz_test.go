package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder: it must never panic, and
// every frame it accepts must re-encode to a frame that decodes the same.
func FuzzDecode(f *testing.F) {
	for _, fr := range sampleFrames() {
		b, err := AppendFrame(nil, 7, fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(reframe(TypeAck, []byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}))
	f.Add([]byte{0, 0, 0, 14})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(bytes.NewReader(in))
		for {
			h, fr, err := d.Read()
			if err != nil {
				var fe *FrameError
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &fe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if h.Version > Version { // a newer Hello: extra fields are dropped
				continue
			}
			b, err := AppendFrame(nil, h.Corr, fr)
			if err != nil {
				// a decoded Send may hold a body over MaxBodySize (the
				// server answers CodeTooLarge); the encoder refuses it
				if errors.Is(err, ErrBodyTooLarge) {
					continue
				}
				t.Fatalf("re-encode %v: %v", h.Type, err)
			}
			h2, fr2, err := NewDecoder(bytes.NewReader(b)).Read()
			if err != nil {
				t.Fatalf("re-decode %v: %v", h.Type, err)
			}
			if h2.Corr != h.Corr || !reflect.DeepEqual(fr, fr2) {
				t.Fatalf("round trip changed %v:\n%+v\n%+v", h.Type, fr, fr2)
			}
		}
	})
}
