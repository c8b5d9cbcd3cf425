package amqp

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
)

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// FuzzDecodeValue: the generic decoder never panics, stays within its
// budget, agrees with skip on where a value ends, and what it decodes
// encodes back to something that decodes to the same value.
func FuzzDecodeValue(f *testing.F) {
	for _, v := range []any{uint32(1), "s", Map{{Symbol("k"), []any{int64(1), nil}}}, Array{Symbol("a")},
		Described{Descriptor: uint64(0x10), Value: []any{"c"}}} {
		b, _ := appendValue(nil, v)
		f.Add(b)
	}
	f.Add([]byte{codeArray32, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, codeNull})
	f.Fuzz(func(t *testing.T, in []byte) {
		d := newDecoder(in)
		v := d.value()
		if d.budget < -1 {
			t.Fatalf("budget overrun: %d", d.budget)
		}
		s := newDecoder(in)
		s.skip()
		if (d.err == nil) != (s.err == nil) || (d.err == nil && d.off != s.off) {
			t.Fatalf("value (err %v, off %d) and skip (err %v, off %d) disagree", d.err, d.off, s.err, s.off)
		}
		if d.err != nil {
			return
		}
		b, err := appendValue(nil, v)
		if err != nil {
			return // e.g. an array of compounds, which the broker never sends
		}
		d2 := newDecoder(b)
		v2 := d2.value()
		if d2.err != nil {
			t.Fatalf("re-decode of %#v: %v", v, d2.err)
		}
		if !reflect.DeepEqual(v, v2) && !hasNaN(v) {
			t.Fatalf("round trip: %#v became %#v", v, v2)
		}
	})
}

func hasNaN(v any) bool {
	switch x := v.(type) {
	case float32:
		return x != x
	case float64:
		return x != x
	case []any:
		for _, e := range x {
			if hasNaN(e) {
				return true
			}
		}
	case Array:
		for _, e := range x {
			if hasNaN(e) {
				return true
			}
		}
	case Map:
		for _, e := range x {
			if hasNaN(e.Key) || hasNaN(e.Value) {
				return true
			}
		}
	case Described:
		return hasNaN(x.Descriptor) || hasNaN(x.Value)
	}
	return false
}

// FuzzPerformatives: every performative decoder accepts or refuses any
// frame body without panicking.
func FuzzPerformatives(f *testing.F) {
	f.Add((&Open{ContainerID: "c", MaxFrameSize: 512}).append(nil))
	f.Add((&Attach{Name: "l", Source: &Terminus{Address: "q", HasAddress: true}, Target: &Terminus{Coordinator: true}}).append(nil))
	f.Add((&Transfer{Handle: 1, DeliveryID: 2, HasDeliveryID: true, DeliveryTag: []byte{1}}).append(nil))
	f.Add((&Disposition{Role: true, First: 1, State: DeliveryState{Kind: descTransactionalState, TxnID: []byte{1}, Outcome: &DeliveryState{Kind: descAccepted}}}).append(nil))
	f.Add((&Flow{HasHandle: true, LinkCredit: 5}).append(nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, dec := range []func(*decoder){
			func(d *decoder) { var o Open; o.decode(d) },
			func(d *decoder) { var o Begin; o.decode(d) },
			func(d *decoder) { var o Attach; o.decode(d) },
			func(d *decoder) { var o Flow; o.decode(d) },
			func(d *decoder) { var o Transfer; o.decode(d) },
			func(d *decoder) { var o Disposition; o.decode(d) },
			func(d *decoder) { var o Detach; o.decode(d) },
			func(d *decoder) { decodeErrorOnly(d) },
			func(d *decoder) { var o SASLInit; o.decode(d) },
		} {
			d := newDecoder(in)
			d.descriptor()
			dec(d)
		}
		in2, err := decodeMessage(in, true)
		if err != nil {
			return
		}
		out := appendMessage(nil, in2.m, 1)
		in3, err := decodeMessage(out, false)
		if err != nil {
			t.Fatalf("re-decode of an accepted message: %v", err)
		}
		if !bytes.Equal(in3.m.Body, in2.m.Body) || in3.m.Durable != in2.m.Durable {
			t.Fatalf("message changed: %+v became %+v", in2.m, in3.m)
		}
	})
}

// FuzzConnection runs a whole connection on fuzzed client bytes after a
// valid header and open: it must end (the input ends) without a panic,
// whatever the frames say.
func FuzzConnection(f *testing.F) {
	open := appendFrame(nil, frameAMQP, 0, &Open{ContainerID: "fuzz", MaxFrameSize: 4096}, nil)
	begin := appendFrame(nil, frameAMQP, 0, &Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100}, nil)
	attachSnd := appendFrame(nil, frameAMQP, 0, &Attach{Name: "s", Handle: 0, Role: false, Target: &Terminus{Address: "q", HasAddress: true}}, nil)
	attachRcv := appendFrame(nil, frameAMQP, 0, &Attach{Name: "r", Handle: 1, Role: true, Source: &Terminus{Address: "q", HasAddress: true}}, nil)
	flow := appendFrame(nil, frameAMQP, 0, &Flow{IncomingWindow: 100, OutgoingWindow: 100, HasHandle: true, Handle: 1, LinkCredit: 10}, nil)
	msg := appendMessage(nil, &server.Message{Durable: true, Body: []byte("x")}, 1)
	transfer := appendFrame(nil, frameAMQP, 0, &Transfer{Handle: 0, DeliveryID: 0, HasDeliveryID: true, DeliveryTag: []byte{0}}, msg)
	f.Add(begin)
	f.Add(append(append(append([]byte{}, begin...), attachSnd...), transfer...))
	f.Add(append(append(append(append([]byte{}, begin...), attachSnd...), attachRcv...), append(flow, transfer...)...))
	srv := server.New(server.Options{Messages: journal.NewMemory(), Bindings: journal.NewMemory(), Logger: testLogger()})
	if err := srv.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		cl, sv := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer sv.Close()
			serve(context.Background(), config{srv: srv, login: func(string, string) error { return nil }, anonymous: func() bool { return true },
				log: testLogger(), idleTimeout: time.Minute, handshake: 5 * time.Second}, sv, nil)
		}()
		go func() { // the client reads everything and discards it
			var buf [4096]byte
			for {
				if _, err := cl.Read(buf[:]); err != nil {
					return
				}
			}
		}()
		w := append(append(append([]byte{}, headerAMQP[:]...), open...), in...)
		cl.SetWriteDeadline(time.Now().Add(5 * time.Second))
		cl.Write(w)
		cl.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection did not end after its input ended")
		}
	})
}
