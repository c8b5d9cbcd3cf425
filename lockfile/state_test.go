package lockfile

import (
	"errors"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	id, err := NewNodeID()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Record{
		{State: StateActive, NodeID: id, Epoch: 1, Heartbeat: time.Unix(0, 12345), Seq: 9},
		{State: StateFailingBack, NodeID: id, Epoch: 1 << 62, Seq: 1},
		{State: StatePaused, NodeID: id},
		{State: StateNotStarted, NodeID: id, Epoch: 7},
		{State: StateFirstStart, NodeID: id},
	} {
		got, err := DecodeRecord("x", r.Encode())
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		if got != r {
			t.Fatalf("round trip: got %+v, want %+v", got, r)
		}
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	good := Record{State: StateActive, Epoch: 3}.Encode()
	flip := func(off int) []byte {
		b := append([]byte(nil), good...)
		b[off] ^= 0x01
		return b
	}
	for _, tc := range []struct {
		name   string
		b      []byte
		offset int64
	}{
		{"short", good[:10], 10},
		{"long", append(append([]byte(nil), good...), 0), RecordSize},
		{"magic", flip(2), 1},
		{"version", flip(5), 4},
		{"epoch bit", flip(30), crcOffset},
		{"crc", flip(50), crcOffset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRecord("server.lock", tc.b)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want *FormatError", err)
			}
			if fe.Offset != tc.offset || fe.File != "server.lock" {
				t.Fatalf("got %+v, want offset %d", fe, tc.offset)
			}
		})
	}
	r, err := DecodeRecord("x", nil)
	if err != nil || r.State != StateFirstStart || !r.NodeID.IsZero() {
		t.Fatalf("empty file: %+v %v", r, err)
	}
}

func TestNodeIDString(t *testing.T) {
	id := NodeID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 1, 2, 3, 4, 5, 6, 7}
	if got, want := id.String(), "01234567-89ab-cdef-0001-020304050607"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(Record{State: StateActive, Epoch: 3, Seq: 1}.Encode())
	f.Add([]byte{})
	f.Add([]byte("L00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord("fuzz", b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if len(b) == 0 {
			return
		}
		if got := r.Encode(); string(got) != string(b) {
			t.Fatalf("decoded record re-encodes differently")
		}
	})
}
