package amqp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/tandemmq/tandem/server"
)

// patterned is a body of n bytes that no shift or truncation leaves equal.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4093)
	}
	return b
}

// tandemReceive takes one message from queue with an in-process consumer
// (what Tandem's protocol delivers: the stored message) and acks it.
func tandemReceive(t *testing.T, b *testBroker, queue string) (server.Delivery, []byte) {
	t.Helper()
	ss := b.srv.NewSession(false)
	defer ss.Close()
	got := make(chan server.Delivery, 1)
	if _, err := ss.CreateConsumer(context.Background(), server.Destination{Name: queue, Routing: server.Anycast}, server.ConsumerOptions{Credit: 1},
		func(d server.Delivery) { got <- d }); err != nil {
		t.Fatal(err)
	}
	var d server.Delivery
	select {
	case d = <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("no message on %q", queue)
	}
	body, err := b.srv.LargeBody(d.Message)
	if err != nil {
		t.Fatal(err)
	}
	return d, body
}

// waitReclaimed waits until the large-messages journal removed segment
// seq (and every older one): nothing holds their chunks any more.
func waitReclaimed(t *testing.T, b *testBroker, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for b.large.Oldest() <= seq {
		if time.Now().After(deadline) {
			t.Fatalf("large-messages journal keeps segments %d to %d: segment %d's chunks are still held", b.large.Oldest(), b.large.DurableEnd().Seq, seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLargeSend: a 3 MiB message sent in many transfers (a data section,
// and an amqp-value binary) is streamed to the large-messages journal and
// stored as a large message; an AMQP receiver gets it back byte for byte
// with its properties, and an in-process (Tandem protocol) consumer gets
// the same body. Before, any message over 1 MiB was refused
// (amqp:link:message-size-exceeded).
func TestLargeSend(t *testing.T) {
	b := newLargeTestBroker(t)
	s := openSession(t, b.dial(t, &goamqp.ConnOptions{MaxFrameSize: 32 << 10}))
	body := patterned(3<<20 + 12345)
	want := sha256.Sum256(body)

	m := goamqp.NewMessage(body)
	m.Header = &goamqp.MessageHeader{Durable: true}
	m.Properties = &goamqp.MessageProperties{Subject: ptr("big one")}
	m.ApplicationProperties = map[string]any{"color": "red", DuplicateIDProperty: "big-1"}
	snd := sender(t, s, "big", nil)
	send(t, snd, m)
	send(t, snd, m) // the same duplicate ID: dropped
	if info, _ := b.srv.Queue("big"); info.Depth != 1 {
		t.Fatalf("depth %d, want 1 (the resend has the same duplicate ID)", info.Depth)
	}
	r := receiver(t, s, "big", nil)
	got := recv(t, r)
	if sha256.Sum256(got.GetData()) != want || len(got.Data) != 1 {
		t.Fatalf("AMQP receiver got %d bytes in %d sections, not the body sent", len(got.GetData()), len(got.Data))
	}
	if got.ApplicationProperties["color"] != "red" || got.Properties == nil || got.Properties.Subject == nil || *got.Properties.Subject != "big one" ||
		got.Header == nil || !got.Header.Durable {
		t.Fatalf("AMQP receiver got header %+v properties %+v application properties %v", got.Header, got.Properties, got.ApplicationProperties)
	}
	if err := r.AcceptMessage(testCtx(t), got); err != nil {
		t.Fatal(err)
	}

	// An amqp-value holding a binary (Qpid Proton's default for bytes).
	v := &goamqp.Message{Header: &goamqp.MessageHeader{Durable: true}, Value: body}
	send(t, sender(t, s, "bigv", nil), v)
	d, tb := tandemReceive(t, b, "bigv")
	if !d.Message.IsLarge() || d.Message.LargeSize() != int64(len(body)) || !bytes.Equal(tb, body) {
		t.Fatalf("in-process consumer: large %v size %d, body equal %v", d.Message.IsLarge(), d.Message.LargeSize(), bytes.Equal(tb, body))
	}
	rv := receiver(t, s, "bigv", nil)
	gv := recv(t, rv)
	if bv, ok := gv.Value.([]byte); !ok || sha256.Sum256(bv) != want {
		t.Fatalf("AMQP receiver got a value of %T, not the binary sent", gv.Value)
	}
}

func ptr[T any](v T) *T { return &v }

// abortFrame is a transfer on handle with aborted=true (Transfer.append,
// the broker's, never sends one).
func abortFrame(handle uint32) []byte {
	b := appendDescriptor(nil, descTransfer)
	b, c := startList(b)
	b = appendUint(c.field(b), handle)
	for i := 1; i <= 8; i++ { // delivery-id ... resume
		c.null()
	}
	b = appendBool(c.field(b), true) // aborted
	b = c.end(b)
	return appendFrame(nil, frameAMQP, 0, rawPerf(b), nil)
}

// rawPerf is an encoded performative.
type rawPerf []byte

func (p rawPerf) append(b []byte) []byte { return append(b, p...) }

// rawSender is a raw connection with a session and a sending link on
// queue (the broker's credit read).
func rawSender(t *testing.T, b *testBroker, queue string) *rawClient {
	t.Helper()
	c := dialRaw(t, b)
	c.open()
	c.write(appendFrame(nil, frameAMQP, 0, &Begin{NextOutgoingID: 0, IncomingWindow: 1 << 16, OutgoingWindow: 1 << 16, HandleMax: 100}, nil))
	if code := c.next(); code != descBegin {
		t.Fatalf("got 0x%x, want begin", code)
	}
	c.attachSender(0, queue)
	return c
}

// attachSender attaches a sending link on handle to queue.
func (c *rawClient) attachSender(handle uint32, queue string) {
	c.t.Helper()
	c.write(appendFrame(nil, frameAMQP, 0, &Attach{Name: fmt.Sprintf("raw-sender-%d", handle), Handle: handle, Role: false,
		Source: &Terminus{Address: "src", HasAddress: true}, Target: &Terminus{Address: queue, HasAddress: true}}, nil))
	for _, want := range []uint64{descAttach, descFlow} {
		if code := c.next(); code != want {
			c.t.Fatalf("got 0x%x, want 0x%x", code, want)
		}
	}
}

// TestLargeSendsPerConnection: one connection streams at most 16 large
// messages at a time (as on Tandem's protocol); a 17th, on another link,
// is held in memory like any message, so past the message limit its link
// is detached, saying why it was not streamed.
func TestLargeSendsPerConnection(t *testing.T) {
	b := newLargeTestBroker(t)
	c := rawSender(t, b, "many")
	for h := uint32(1); h < maxLargeUploads; h++ {
		c.attachSender(h, "many")
	}
	for h := uint32(0); h < maxLargeUploads; h++ {
		largeTransfersOn(c, h, h, 8<<20, 4, 64<<10) // 256 KiB of 8 MiB: streaming
	}
	c.attachSender(maxLargeUploads, "many")
	largeTransfersOn(c, maxLargeUploads, maxLargeUploads, 8<<20, 20, 64<<10) // 1.25 MiB
	for {
		f, err := c.fr.next()
		if err != nil {
			t.Fatalf("no detach of the 17th large message's link: %v", err)
		}
		if len(f.body) == 0 {
			continue
		}
		d := newDecoder(f.body)
		if code, _ := d.descriptor(); code != descDetach {
			continue
		}
		var de Detach
		de.decode(d)
		if de.Handle != maxLargeUploads || de.Error == nil || de.Error.Condition != ErrMessageSizeExceeded ||
			!strings.Contains(de.Error.Description, "large messages in progress") {
			t.Fatalf("detach %+v %+v, want handle %d detached with %s naming the large messages in progress", de, de.Error, maxLargeUploads, ErrMessageSizeExceeded)
		}
		break
	}
	// One aborted frees its place: a message of 1.25 MiB on its link
	// streams again, and is stored (a disposition, not a detach).
	c.write(abortFrame(0))
	largeTransfersOn(c, 0, maxLargeUploads+1, 20*(64<<10), 20, 64<<10)
	c.write(appendFrame(nil, frameAMQP, 0, &Transfer{Handle: 0}, nil))
	for {
		f, err := c.fr.next()
		if err != nil {
			t.Fatalf("no disposition of the message after an abort: %v", err)
		}
		if len(f.body) == 0 {
			continue
		}
		d := newDecoder(f.body)
		code, _ := d.descriptor()
		if code == descDetach {
			t.Fatal("a large message after an abort was not streamed: its link is detached")
		}
		if code != descDisposition {
			continue
		}
		var di Disposition
		di.decode(d)
		if di.State.Kind != descAccepted {
			t.Fatalf("disposition %+v (error %v), want accepted", di, di.State.Error)
		}
		break
	}
	if info, _ := b.srv.Queue("many"); info.Depth != 1 {
		t.Fatalf("queue many holds %d messages, want the one completed", info.Depth)
	}
}

// largeTransfers writes the first frames of a durable message whose data
// section announces size bytes, and n more frames of its body.
func largeTransfers(c *rawClient, size int, n int, frame int) {
	largeTransfersOn(c, 0, 0, size, n, frame)
}

// largeTransfersOn is largeTransfers on link handle, delivery id.
func largeTransfersOn(c *rawClient, handle, id uint32, size int, n int, frame int) {
	msg := appendDescriptor(nil, descHeader)
	var hc compound
	msg, hc = startList(msg)
	msg = appendBool(hc.field(msg), true)
	msg = hc.end(msg)
	msg = appendDescriptor(msg, descData)
	msg = append(msg, codeVbin32, byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
	body := patterned(frame)
	first := true
	for i := 0; i < n; i++ {
		tr := &Transfer{Handle: handle, More: true}
		if first {
			tr.DeliveryID, tr.HasDeliveryID, tr.DeliveryTag, tr.HasDeliveryTag = id, true, []byte("t0"), true
			first = false
			c.write(appendFrame(nil, frameAMQP, 0, tr, append(msg, body...)))
			continue
		}
		c.write(appendFrame(nil, frameAMQP, 0, tr, body))
	}
}

// TestLargeSendAborted: a large transfer aborted by its sender, its link
// detached, or its connection dropped in the middle stores nothing: the
// chunks it wrote are released and reclaimed with their segments, and the
// broker goes on serving.
func TestLargeSendAborted(t *testing.T) {
	b := newLargeTestBroker(t)
	for _, how := range []string{"aborted", "detach", "drop"} {
		t.Run(how, func(t *testing.T) {
			c := rawSender(t, b, "abort")
			start := b.large.AppendSeq()
			largeTransfers(c, 64<<20, 6*16, 64<<10) // 6 MiB of a 64 MiB body
			// The chunks are in the journal as they come: wait for three
			// segments (2 MiB each) to be written.
			deadline := time.Now().Add(30 * time.Second)
			for b.large.AppendSeq() < start+2 {
				if time.Now().After(deadline) {
					t.Fatalf("large journal at segment %d after 6 MiB of a large transfer (from %d): not streamed", b.large.AppendSeq(), start)
				}
				time.Sleep(5 * time.Millisecond)
			}
			switch how {
			case "aborted":
				c.write(abortFrame(0))
			case "detach":
				c.write(appendFrame(nil, frameAMQP, 0, &Detach{Handle: 0, Closed: true}, nil))
			case "drop":
				c.nc.Close()
			}
			written := b.large.AppendSeq() - 1 // full segments of the upload
			// Another large message, sent and consumed, takes the journal
			// on past the upload's segments: only a hold on them keeps
			// them.
			s := openSession(t, b.dial(t, nil))
			send(t, sender(t, s, "other", nil), goamqp.NewMessage(patterned(5<<20)))
			r := receiver(t, s, "other", nil)
			if err := r.AcceptMessage(testCtx(t), recv(t, r)); err != nil {
				t.Fatal(err)
			}
			waitReclaimed(t, b, written)
			if info, ok := b.srv.Queue("abort"); ok && info.Depth != 0 {
				t.Fatalf("queue abort holds %d messages after an unfinished large transfer", info.Depth)
			}
		})
	}
	stillServes(t, b)
}

// FuzzSplitLarge: splitLarge never panics nor points outside its input,
// and for a complete message it agrees with decodeMessage: the streamed
// body is the body a small message stores, and the sections decoded
// before it give the same message.
func FuzzSplitLarge(f *testing.F) {
	for _, m := range []*server.Message{
		{Durable: true, Body: []byte("data body")},
		{Body: []byte("value"), Properties: []server.Property{{Key: SectionsProperty, Kind: 3, Bytes: []byte{sectionsFormat, bodyValueBinary}}}},
	} {
		b := appendMessage(nil, m, 1)
		f.Add(b)
	}
	big := appendDescriptor(nil, descData)
	big = append(big, codeVbin32, 0, 0, 0, 3, 'a', 'b', 'c')
	f.Add(big)
	f.Fuzz(func(t *testing.T, in []byte) {
		sp, ok, _ := splitLarge(in)
		if !ok {
			return
		}
		if sp.bodyStart >= sp.contentStart || sp.contentStart > len(in) {
			t.Fatalf("split %+v of %d bytes", sp, len(in))
		}
		head, err := decodeSections(in[:sp.bodyStart], false, int(sp.kind))
		if err != nil || uint64(len(in)-sp.contentStart) != sp.bodyLen {
			return
		}
		whole, err := decodeMessage(in, false)
		if err != nil {
			return
		}
		if !bytes.Equal(whole.m.Body, in[sp.contentStart:]) {
			t.Fatalf("streamed body %q, decodeMessage's %q", in[sp.contentStart:], whole.m.Body)
		}
		if head.m.Durable != whole.m.Durable || head.m.DuplicateID != whole.m.DuplicateID || len(head.m.Properties) != len(whole.m.Properties) {
			t.Fatalf("head decoded as %+v, the whole message as %+v", head.m, whole.m)
		}
		for i := range head.m.Properties {
			if p, q := head.m.Properties[i], whole.m.Properties[i]; p.Key != q.Key || p.Str != q.Str || p.Int != q.Int || !bytes.Equal(p.Bytes, q.Bytes) {
				t.Fatalf("property %d: %+v streamed, %+v whole", i, p, q)
			}
		}
	})
}

// TestLargeReceiveStreamed: an AMQP receiver gets a large message bigger
// than the connection's output limit (hardLimit, 64 MiB), byte for byte
// and with its properties, followed by a small message on the same link;
// a Tandem-protocol sender's large message (a data section) and an AMQP
// amqp-value string both arrive as sent. Before, a large delivery was
// encoded whole into the output buffer, and one past hardLimit closed the
// connection as a slow client (the message went back to the queue, to be
// delivered and fail again).
func TestLargeReceiveStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 80 MiB")
	}
	b := newLargeTestBroker(t)
	s := openSession(t, b.dial(t, &goamqp.ConnOptions{MaxFrameSize: 128 << 10}))
	body := patterned(hardLimit + 16<<20 + 321)
	want := sha256.Sum256(body)
	m := goamqp.NewMessage(body)
	m.Header = &goamqp.MessageHeader{Durable: true}
	m.ApplicationProperties = map[string]any{"n": int64(1)}
	snd := sender(t, s, "huge", nil)
	send(t, snd, m)
	send(t, snd, durable("small after"))
	body = nil

	r := receiver(t, s, "huge", &goamqp.ReceiverOptions{Credit: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("receiving a %d MiB large message: %v", (hardLimit+16<<20)>>20, err)
	}
	if sha256.Sum256(got.GetData()) != want || got.ApplicationProperties["n"] != int64(1) || got.Header == nil || !got.Header.Durable {
		t.Fatalf("AMQP receiver got %d bytes (sha256 equal %v), application properties %v, header %+v",
			len(got.GetData()), sha256.Sum256(got.GetData()) == want, got.ApplicationProperties, got.Header)
	}
	if err := r.AcceptMessage(testCtx(t), got); err != nil {
		t.Fatal(err)
	}
	if next := recv(t, r); string(next.GetData()) != "small after" {
		t.Fatalf("after the large message: %q", next.GetData())
	}

	// An amqp-value string, streamed as one.
	str := strings.Repeat("tandem ", 300_000)
	send(t, sender(t, s, "hugestr", nil), &goamqp.Message{Value: str})
	gs := recv(t, receiver(t, s, "hugestr", nil))
	if v, ok := gs.Value.(string); !ok || v != str {
		t.Fatalf("amqp-value string: got %T of %d bytes", gs.Value, len(fmt.Sprint(gs.Value)))
	}
}

// TestLargeDeliveryPacedAndDetached: a streamed large delivery stops at
// the client's session incoming window (the broker answers an echo with a
// flow, not a fourth transfer, after three), and a link detached in the
// middle of it gives the message back to its queue: the next receiver
// gets it whole, as a redelivery.
func TestLargeDeliveryPacedAndDetached(t *testing.T) {
	b := newLargeTestBroker(t)
	s := openSession(t, b.dial(t, nil))
	body := patterned(3<<20 + 7)
	m := goamqp.NewMessage(body)
	m.Header = &goamqp.MessageHeader{Durable: true}
	send(t, sender(t, s, "paced", nil), m)

	c := dialRaw(t, b)
	c.open()
	c.write(appendFrame(nil, frameAMQP, 0, &Begin{NextOutgoingID: 0, IncomingWindow: 3, OutgoingWindow: 1 << 16, HandleMax: 10}, nil))
	if code := c.next(); code != descBegin {
		t.Fatalf("got 0x%x, want begin", code)
	}
	c.write(appendFrame(nil, frameAMQP, 0, &Attach{Name: "raw-receiver", Handle: 0, Role: true,
		Source: &Terminus{Address: "paced", HasAddress: true}, Target: &Terminus{Address: "r", HasAddress: true}}, nil))
	if code := c.next(); code != descAttach {
		t.Fatalf("got 0x%x, want attach", code)
	}
	c.write(appendFrame(nil, frameAMQP, 0, &Flow{NextIncomingID: 0, HasNextIncomingID: true, IncomingWindow: 3, NextOutgoingID: 0, OutgoingWindow: 1 << 16,
		Handle: 0, HasHandle: true, DeliveryCount: 0, HasDeliveryCount: true, LinkCredit: 1, HasLinkCredit: true}, nil))
	for i := range 3 {
		code, d := c.nextPerf()
		if code != descTransfer {
			t.Fatalf("frame %d: got 0x%x, want a transfer", i, code)
		}
		var tr Transfer
		tr.decode(d)
		if d.err != nil || !tr.More || (i == 0) != tr.HasDeliveryID {
			t.Fatalf("transfer %d: more %v, has delivery-id %v, %v", i, tr.More, tr.HasDeliveryID, d.err)
		}
	}
	// The window is used up: the answer to an echo comes before any
	// further transfer.
	c.write(appendFrame(nil, frameAMQP, 0, &Flow{NextIncomingID: 3, HasNextIncomingID: true, IncomingWindow: 0, NextOutgoingID: 0, OutgoingWindow: 1 << 16,
		Handle: 0, HasHandle: true, DeliveryCount: 1, HasDeliveryCount: true, LinkCredit: 0, HasLinkCredit: true, Echo: true}, nil))
	if code, _ := c.nextPerf(); code != descFlow {
		t.Fatalf("got 0x%x after the window was used up, want the echoed flow", code)
	}
	c.write(appendFrame(nil, frameAMQP, 0, &Detach{Handle: 0, Closed: true}, nil))
	if code := c.next(); code != descDetach {
		t.Fatalf("got 0x%x, want detach", code)
	}

	r := receiver(t, s, "paced", nil)
	got := recv(t, r)
	if !bytes.Equal(got.GetData(), body) || got.Header == nil || got.Header.DeliveryCount != 1 {
		t.Fatalf("after the detach: %d bytes (equal %v), header %+v; want the whole body, delivered a second time",
			len(got.GetData()), bytes.Equal(got.GetData(), body), got.Header)
	}
	if err := r.AcceptMessage(testCtx(t), got); err != nil {
		t.Fatal(err)
	}
}
