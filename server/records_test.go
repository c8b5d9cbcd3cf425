package server

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

func TestMessageEncoding(t *testing.T) {
	tests := []*Message{
		{Address: "big", Routing: Anycast, Durable: true, DuplicateID: "d", Body: []byte{}, large: &largeBody{id: 77, size: 5<<20 + 3,
			chunks: []journal.Position{{Seq: 3, Offset: 64}, {Seq: 3, Offset: 1<<20 + 128}, {Seq: 4, Offset: 64}}}},
		{Address: "q", Routing: Anycast, Body: []byte{}},
		{Address: "orders", Routing: Multicast, Durable: true, DuplicateID: "p-1", Timestamp: 1234567, Body: []byte("hello")},
		{Address: "t", Routing: Anycast, Properties: []Property{wire.StringProp("a", "1"), wire.Int64Prop("", -5), wire.BoolProp("b", true), wire.BytesProp("key", []byte("v"))}, Body: make([]byte, 5000)},
	}
	for _, m := range tests {
		got, err := decodeMessage(encodeMessage(m))
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: got %+v want %+v", got, m)
		}
	}
}

func TestRecordDecodeErrors(t *testing.T) {
	good := encodeMessage(&Message{Address: "q", DuplicateID: "d", Properties: []Property{wire.StringProp("k", "v")}, Body: []byte("body")})
	for i := 0; i < len(good); i++ {
		if _, err := decodeMessage(good[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := decodeMessage(append(good, 0)); err == nil {
		t.Fatal("trailing byte: no error")
	}
	q := encodeQueue(queueRecord{Name: "q", Address: "a", Routing: Anycast, Durable: true})
	for i := 0; i < len(q); i++ {
		if _, err := decodeQueue(q[:i]); err == nil {
			t.Fatalf("queue truncated to %d: no error", i)
		}
	}
}

func TestBindingRecordsRoundTrip(t *testing.T) {
	qr := queueRecord{Name: "q", Address: "a", Routing: Multicast, Durable: true, AutoCreated: true}
	if got, err := decodeQueue(encodeQueue(qr)); err != nil || got != qr {
		t.Fatalf("queue: %+v %v", got, err)
	}
	ar := addressRecord{Name: "a", Anycast: true, Multicast: true}
	if got, err := decodeAddress(encodeAddress(ar)); err != nil || got != ar {
		t.Fatalf("address: %+v %v", got, err)
	}
	if a, id, err := decodeDuplicateID(encodeDuplicateID("addr", "id")); err != nil || a != "addr" || id != "id" {
		t.Fatalf("dup: %q %q %v", a, id, err)
	}
	if q, n, err := decodeDeliveryCount(encodeDeliveryCount(77, 3)); err != nil || q != 77 || n != 3 {
		t.Fatalf("delivery count: %d %d %v", q, n, err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(&Message{Address: "q", DuplicateID: "d", Properties: []Property{wire.StringProp("k", "v")}, Body: []byte("body")}))
	f.Add([]byte{1, 0})
	f.Add(encodeMessage(&Message{Address: "q", Expiration: 5, large: &largeBody{id: 9, size: 3 << 20,
		chunks: []journal.Position{{Seq: 1, Offset: 64}, {Seq: 1, Offset: 1 << 20}, {Seq: 2, Offset: 64}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		if _, err := decodeMessage(encodeMessage(m)); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

func FuzzDecodeBindings(f *testing.F) {
	f.Add(encodeQueue(queueRecord{Name: "q", Address: "a", Routing: Anycast}))
	f.Add(encodeAddress(addressRecord{Name: "a", Anycast: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeQueue(b)
		decodeAddress(b)
		decodeDuplicateID(b)
		decodeDeliveryCount(b)
		decodeQueueID(b)
	})
}

// FuzzDecodePaged: the paging journal's record decoders never panic on any
// input, and what decodes re-encodes to something that decodes the same.
func FuzzDecodePaged(f *testing.F) {
	q1, q2 := &Queue{id: 7}, &Queue{id: 1 << 40}
	f.Add(encodePaged(&Message{Address: "q", DuplicateID: "d", Expiration: 9, Properties: []Property{wire.StringProp("k", "v")}, Body: []byte("body")}, []*Queue{q1, q2}))
	f.Add(encodePageCursor(3, journal.Position{Seq: 5, Offset: 4096}))
	f.Add(encodePageAck(3, 99))
	f.Add([]byte{1, 1, 7})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodePageCursor(b)
		decodePageAck(b)
		decodePageTx(b)
		messageDupID(b)
		h, m, err := decodePaged(b)
		if err != nil {
			return
		}
		qs := make([]*Queue, len(h.queues))
		for i, id := range h.queues {
			qs[i] = &Queue{id: id}
		}
		h2, m2, err := decodePaged(encodePaged(m, qs))
		if err != nil {
			t.Fatalf("re-encoded paged message does not decode: %v", err)
		}
		if !reflect.DeepEqual(h2.queues, h.queues) || m2.DuplicateID != m.DuplicateID || !bytes.Equal(m2.Body, m.Body) || m2.Expiration != m.Expiration {
			t.Fatalf("round trip differs")
		}
		if addr, id, err := messageDupID(h.msg); err != nil || addr != m.Address || id != m.DuplicateID {
			t.Fatalf("messageDupID = %q %q %v, message has %q %q", addr, id, err, m.Address, m.DuplicateID)
		}
	})
}
