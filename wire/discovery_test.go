package wire

import (
	"errors"
	"reflect"
	"testing"
)

func TestAnnouncementRoundTrip(t *testing.T) {
	for _, a := range []*Announcement{
		{NodeID: "n1", Name: "b1", Group: "g", Connectors: []string{"tcp://127.0.0.1:61616", "tcp://h:1"}},
		{},
	} {
		b, err := AppendAnnouncement(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseAnnouncement(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip: %+v, want %+v", got, a)
		}
		// Every truncation, every flipped bit and a trailing byte are
		// refused.
		for i := range b {
			if _, err := ParseAnnouncement(b[:i]); !errors.Is(err, ErrAnnouncement) {
				t.Fatalf("cut at %d: %v", i, err)
			}
			for bit := 0; bit < 8; bit++ {
				c := append([]byte(nil), b...)
				c[i] ^= 1 << bit
				if _, err := ParseAnnouncement(c); !errors.Is(err, ErrAnnouncement) {
					t.Fatalf("bit %d of byte %d flipped: %v", bit, i, err)
				}
			}
		}
	}
	big := &Announcement{Connectors: make([]string, 2000)}
	for i := range big.Connectors {
		big.Connectors[i] = "tcp://a-rather-long-host-name.example.com:61616"
	}
	if _, err := AppendAnnouncement(nil, big); !errors.Is(err, ErrAnnouncement) {
		t.Fatalf("an announcement over the limit: %v", err)
	}
}

// FuzzAnnouncement: arbitrary datagrams never panic the decoder, and what
// it accepts encodes to a datagram that decodes the same.
func FuzzAnnouncement(f *testing.F) {
	b, _ := AppendAnnouncement(nil, &Announcement{NodeID: "n1", Name: "b1", Group: "g", Connectors: []string{"tcp://a:1"}})
	f.Add(b)
	f.Add([]byte("TDA1\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := ParseAnnouncement(in)
		if err != nil {
			if !errors.Is(err, ErrAnnouncement) {
				t.Fatalf("error %v does not wrap ErrAnnouncement", err)
			}
			return
		}
		out, err := AppendAnnouncement(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseAnnouncement(out)
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("re-decoded %+v (%v), want %+v", b, err, a)
		}
	})
}
