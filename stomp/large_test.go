package stomp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
)

// patterned is a body of n bytes (NULs included) that no shift or
// truncation leaves equal.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4093)
	}
	return b
}

// sendLarge writes a SEND of body to dest with a content-length and a
// receipt.
func (r *raw) sendLarge(dest string, body []byte, receipt string) {
	r.t.Helper()
	r.write(fmt.Sprintf("SEND\ndestination:%s\npersistent:true\ncolor:red\ncontent-length:%d\nreceipt:%s\n\n", dest, len(body), receipt))
	if _, err := r.nc.Write(append(body, 0)); err != nil {
		r.t.Fatal(err)
	}
}

// waitReclaimed waits until the large-messages journal removed segment
// seq (and every older one): nothing holds their chunks any more.
func waitReclaimed(t *testing.T, b *broker, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for b.lj.Oldest() <= seq {
		if time.Now().After(deadline) {
			t.Fatalf("large-messages journal keeps segments %d to %d: segment %d's chunks are still held", b.lj.Oldest(), b.lj.DurableEnd().Seq, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLargeSend: a SEND of 3 MiB (with a content-length) streams to the
// large-messages journal, is receipted once stored, and comes back byte
// for byte to a STOMP subscriber and to a Tandem consumer (as a large
// message). Before, a body over 1 MiB was refused with an ERROR.
func TestLargeSend(t *testing.T) {
	b := newLargeBroker(t)
	body := patterned(3<<20 + 4321)
	want := sha256.Sum256(body)
	s := connect(t, b.addr)
	s.sendLarge("big", body, "r1")
	s.sendLarge("big2", body, "r2")
	for _, r := range []string{"r1", "r2"} {
		if f := s.expect("RECEIPT"); f.Value("receipt-id") != r {
			t.Fatalf("receipt %q, want %s", f.Value("receipt-id"), r)
		}
	}
	s.dec.lim.MaxBody = 8 << 20
	s.send("SUBSCRIBE", []string{"id:0", "destination:big", "ack:client"}, "")
	m := s.expect("MESSAGE")
	if sha256.Sum256(m.Body) != want || m.Value("color") != "red" || m.Value("persistent") != "true" {
		t.Fatalf("STOMP subscriber got %d bytes, color %q persistent %q", len(m.Body), m.Value("color"), m.Value("persistent"))
	}
	s.send("ACK", []string{"id:" + m.Value("ack"), "receipt:a"}, "")
	s.expect("RECEIPT")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := client.Dial(ctx, "tcp://"+b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ss, err := cc.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ss.CreateConsumer(ctx, client.Queue("big2"), client.Credit(1))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := cm.Property("color"); !bytes.Equal(cm.Body, body) || p.Str != "red" || !cm.Durable {
		t.Fatalf("Tandem consumer got %d bytes, color %q, durable %v", len(cm.Body), p.Str, cm.Durable)
	}
}

// TestLargeSendDropped: a connection lost in the middle of a large body
// stores nothing, and the chunks it wrote are released (reclaimed with
// their segments); a body without its NUL is a malformed frame.
func TestLargeSendDropped(t *testing.T) {
	b := newLargeBroker(t)
	s := connect(t, b.addr)
	start := b.lj.AppendSeq()
	s.write(fmt.Sprintf("SEND\ndestination:drop\npersistent:true\ncontent-length:%d\nreceipt:r\n\n", 64<<20))
	piece := patterned(64 << 10)
	for i := 0; i < 6*16; i++ { // 6 MiB of 64
		if _, err := s.nc.Write(piece); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for b.lj.AppendSeq() < start+2 {
		if time.Now().After(deadline) {
			t.Fatalf("large journal at segment %d after 6 MiB of a large SEND (from %d): not streamed", b.lj.AppendSeq(), start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.nc.Close()
	written := b.lj.AppendSeq() - 1

	// Another large message, sent and consumed, takes the journal on past
	// the dropped one's segments: only a hold on them keeps them.
	o := connect(t, b.addr)
	o.sendLarge("other", patterned(5<<20), "r")
	o.expect("RECEIPT")
	o.dec.lim.MaxBody = 8 << 20
	o.send("SUBSCRIBE", []string{"id:0", "destination:other", "ack:client"}, "")
	m := o.expect("MESSAGE")
	o.send("ACK", []string{"id:" + m.Value("ack"), "receipt:a"}, "")
	o.expect("RECEIPT")
	waitReclaimed(t, b, written)
	if info, ok := b.s.Queue("drop"); ok && info.Depth != 0 {
		t.Fatalf("queue drop holds %d messages after a SEND cut in its body", info.Depth)
	}

	// A streamed body not followed by its NUL: an ERROR, nothing stored.
	e := connect(t, b.addr)
	body := patterned(2 << 20)
	e.write(fmt.Sprintf("SEND\ndestination:nonul\ncontent-length:%d\nreceipt:r\n\n", len(body)))
	e.write(string(body) + "X")
	if f := e.expectError(); f.Value("message") != "malformed frame" {
		t.Fatalf("ERROR %q, want malformed frame", f.Value("message"))
	}
	if info, ok := b.s.Queue("nonul"); ok && info.Depth != 0 {
		t.Fatalf("queue nonul holds %d messages after a malformed large SEND", info.Depth)
	}
}

// TestLargeDeliveriesStreamed: large messages are written to a STOMP
// subscriber a chunk at a time from the large-messages journal, framed
// like any MESSAGE: two large ones and a small one in between arrive
// whole and in order on an ack:auto subscription, and a RECEIPT asked for
// meanwhile comes as a frame of its own (never inside a body). The
// ack:auto acks happen once each body is written: the queue ends empty.
func TestLargeDeliveriesStreamed(t *testing.T) {
	b := newLargeBroker(t)
	big1, big2 := patterned(2<<20+11), patterned(5<<20+3)
	big2[0] = 0xEE
	s := connect(t, b.addr)
	s.sendLarge("stream", big1, "r1")
	s.expect("RECEIPT")
	s.send("SEND", []string{"destination:stream", "receipt:r2"}, "small")
	s.expect("RECEIPT")
	s.sendLarge("stream", big2, "r3")
	s.expect("RECEIPT")
	s.dec.lim.MaxBody = 8 << 20
	s.send("SUBSCRIBE", []string{"id:0", "destination:stream", "ack:auto", "receipt:sub"}, "")
	var bodies [][]byte
	receipt := false
	for len(bodies) < 3 || !receipt {
		f := s.next()
		switch f.Command {
		case "MESSAGE":
			bodies = append(bodies, f.Body)
		case "RECEIPT":
			receipt = true
		default:
			t.Fatalf("unexpected %s frame", f.Command)
		}
	}
	if !bytes.Equal(bodies[0], big1) || string(bodies[1]) != "small" || !bytes.Equal(bodies[2], big2) {
		t.Fatalf("bodies of %d, %d and %d bytes, not the three sent in order", len(bodies[0]), len(bodies[1]), len(bodies[2]))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		qi, _ := b.s.Queue("stream")
		if qi.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue after ack:auto deliveries: %+v", qi)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
