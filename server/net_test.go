package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// oversizedSend encodes by hand a Send whose body is one byte over the
// limit (the wire encoder refuses to).
func oversizedSend(corr, session uint64, addr string) []byte {
	var p []byte
	p = binary.BigEndian.AppendUint64(p, session)
	p = append(p, 1, byte(wire.RoutingAnycast))
	p = binary.AppendUvarint(p, uint64(len(addr)))
	p = append(p, addr...)
	p = append(p, 0)                                // duplicate ID ""
	p = binary.BigEndian.AppendUint64(p, 0)         // timestamp
	p = append(p, 0)                                // no properties
	p = binary.AppendUvarint(p, wire.MaxBodySize+1) // body
	p = append(p, make([]byte, wire.MaxBodySize+1)...)
	f := binary.BigEndian.AppendUint32(nil, uint32(1+1+8+len(p)+4))
	f = append(f, wire.Version, byte(wire.TypeSend))
	f = binary.BigEndian.AppendUint64(f, corr)
	f = append(f, p...)
	return binary.BigEndian.AppendUint32(f, crc32.Checksum(f, crc32.MakeTable(crc32.Castagnoli)))
}

// tclient is a minimal protocol client for tests, speaking wire directly.
type tclient struct {
	t      *testing.T
	nc     net.Conn
	frames chan tframe
	corr   uint64
}

type tframe struct {
	h wire.Header
	f wire.Frame
}

func listen(t *testing.T, b *broker, opts NetOptions) *Acceptor {
	t.Helper()
	a, err := b.s.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(wire.CodeShuttingDown, "test over") })
	return a
}

func dialRaw(t *testing.T, a *Acceptor) *tclient {
	t.Helper()
	nc, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := &tclient{t: t, nc: nc, frames: make(chan tframe, 1024)}
	go func() {
		defer close(c.frames)
		dec := wire.NewDecoder(nc)
		for {
			h, f, err := dec.Read()
			if err != nil {
				return
			}
			// Byte slices alias the decoder's buffer until the next Read.
			switch f := f.(type) {
			case *wire.Deliver:
				f.Body = bytes.Clone(f.Body)
			case *wire.ManageResult:
				f.Body = bytes.Clone(f.Body)
			}
			c.frames <- tframe{h, f}
		}
	}()
	t.Cleanup(func() { nc.Close() })
	return c
}

func dial(t *testing.T, a *Acceptor, user, password string) *tclient {
	t.Helper()
	c := dialRaw(t, a)
	c.write(c.next(), &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: "test", User: user, Password: password})
	if f := c.expect(wire.TypeWelcome); f.(*wire.Welcome).NodeID == "" {
		t.Fatal("Welcome without node ID")
	}
	return c
}

func (c *tclient) next() uint64 { c.corr++; return c.corr }

// writeRefused writes a frame the broker refuses from its header: it may
// close the connection before the rest is written (a broken pipe or a
// reset here is the refusal working; what it answered is checked next).
func (c *tclient) writeRefused(corr uint64, f wire.Frame) {
	c.t.Helper()
	if err := c.send(corr, f); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatal(err)
	}
}

func (c *tclient) write(corr uint64, f wire.Frame) {
	c.t.Helper()
	if err := c.send(corr, f); err != nil {
		c.t.Fatal(err)
	}
}

// send encodes f and writes it, returning the write's error.
func (c *tclient) send(corr uint64, f wire.Frame) error {
	c.t.Helper()
	b, err := wire.AppendFrame(nil, corr, f)
	if err != nil {
		c.t.Fatal(err)
	}
	_, err = c.nc.Write(b)
	return err
}

func (c *tclient) expect(typ wire.Type) wire.Frame {
	c.t.Helper()
	select {
	case tf, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection closed, want %v", typ)
		}
		if tf.h.Type != typ {
			c.t.Fatalf("got %v %+v, want %v", tf.h.Type, tf.f, typ)
		}
		return tf.f
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no %v within 10s", typ)
	}
	return nil
}

// expectClosed waits until the server closes the connection, skipping
// frames, and returns the last frame seen.
func (c *tclient) expectClosed() wire.Frame {
	c.t.Helper()
	var last wire.Frame
	deadline := time.After(10 * time.Second)
	for {
		select {
		case tf, ok := <-c.frames:
			if !ok {
				return last
			}
			last = tf.f
		case <-deadline:
			c.t.Fatal("connection still open after 10s")
		}
	}
}

func (c *tclient) call(f wire.Frame) wire.Code {
	c.t.Helper()
	c.write(c.next(), f)
	return c.expect(wire.TypeResult).(*wire.Result).Code
}

func TestNetRoundTrip(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{})
	c := dial(t, a, "", "")
	if code := c.call(&wire.CreateSession{Session: 1}); code != wire.CodeOK {
		t.Fatalf("create session: %v", code)
	}
	for i := 1; i <= 3; i++ {
		c.write(c.next(), &wire.Send{Session: 1, Message: wire.Message{Address: "q", Routing: wire.RoutingAnycast, Durable: true,
			DuplicateID: fmt.Sprint("d", i), Properties: []wire.Property{wire.Int64Prop("n", int64(i))}, Body: []byte(fmt.Sprint("m", i))}})
	}
	for i := 1; i <= 3; i++ {
		if r := c.expect(wire.TypeSendResult).(*wire.SendResult); r.Code != wire.CodeOK || r.Duplicate {
			t.Fatalf("send result %+v", r)
		}
	}
	// A resend with a stored duplicate ID is confirmed as a duplicate.
	c.write(c.next(), &wire.Send{Session: 1, Message: wire.Message{Address: "q", Durable: true, DuplicateID: "d1", Body: []byte("again")}})
	if r := c.expect(wire.TypeSendResult).(*wire.SendResult); r.Code != wire.CodeOK || !r.Duplicate {
		t.Fatalf("duplicate send result %+v", r)
	}
	// Too large.
	c.nc.Write(oversizedSend(c.next(), 1, "q"))
	if r := c.expect(wire.TypeSendResult).(*wire.SendResult); r.Code != wire.CodeTooLarge {
		t.Fatalf("oversized send result %+v", r)
	}
	c.write(c.next(), &wire.CreateConsumer{Session: 1, Consumer: 7, Queue: "q", Routing: wire.RoutingAnycast, InitialCredit: 2})
	if cc := c.expect(wire.TypeConsumerCreated).(*wire.ConsumerCreated); cc.Code != wire.CodeOK || cc.Queue != "q" {
		t.Fatalf("consumer created %+v", cc)
	}
	d1 := c.expect(wire.TypeDeliver).(*wire.Deliver)
	d2 := c.expect(wire.TypeDeliver).(*wire.Deliver)
	if string(d1.Body) != "m1" || string(d2.Body) != "m2" || d1.Consumer != 7 || d1.DeliveryCount != 1 || d1.Properties[0].Int != 1 {
		t.Fatalf("deliveries %+v %+v", d1, d2)
	}
	c.write(c.next(), &wire.Ack{Consumer: 7, MessageIDs: []uint64{d1.MessageID, d2.MessageID, 999}})
	if ac := c.expect(wire.TypeAckConfirm).(*wire.AckConfirm); ac.Code != wire.CodeOK || len(ac.Failed) != 1 || ac.Failed[0] != 999 {
		t.Fatalf("ack confirm %+v", ac)
	}
	c.write(0, &wire.Credit{Consumer: 7, N: 5})
	d3 := c.expect(wire.TypeDeliver).(*wire.Deliver)
	if string(d3.Body) != "m3" {
		t.Fatalf("third delivery %q", d3.Body)
	}
	c.write(42, &wire.Ping{})
	if tf := <-c.frames; tf.h.Type != wire.TypePong || tf.h.Corr != 42 {
		t.Fatalf("ping answered by %v corr %d", tf.h.Type, tf.h.Corr)
	}
	// Closing the connection redelivers m3.
	c.nc.Close()
	c2 := dial(t, a, "", "")
	c2.call(&wire.CreateSession{Session: 1})
	c2.write(c2.next(), &wire.CreateConsumer{Session: 1, Consumer: 1, Queue: "q", Routing: wire.RoutingAnycast, InitialCredit: 10})
	c2.expect(wire.TypeConsumerCreated)
	if d := c2.expect(wire.TypeDeliver).(*wire.Deliver); string(d.Body) != "m3" || d.DeliveryCount != 2 {
		t.Fatalf("redelivery %q count %d", d.Body, d.DeliveryCount)
	}
}

func TestNetTransaction(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{})
	c := dial(t, a, "", "")
	c.call(&wire.CreateSession{Session: 1, Transacted: true})
	c.write(c.next(), &wire.Send{Session: 1, Message: wire.Message{Address: "q", Durable: true, Body: []byte("tx")}})
	c.expect(wire.TypeSendResult)
	if qi, _ := b.s.Queue("q"); qi.Depth != 0 {
		t.Fatalf("uncommitted message visible")
	}
	if code := c.call(&wire.Commit{Session: 1}); code != wire.CodeOK {
		t.Fatalf("commit: %v", code)
	}
	if qi, _ := b.s.Queue("q"); qi.Depth != 1 {
		t.Fatalf("depth after commit %d", qi.Depth)
	}
	if code := c.call(&wire.Commit{Session: 99}); code != wire.CodeNotFound {
		t.Fatalf("commit of unknown session: %v", code)
	}
}

func TestNetTopicAndQueueAdmin(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{})
	c := dial(t, a, "", "")
	c.call(&wire.CreateSession{Session: 1})
	if code := c.call(&wire.CreateQueue{Address: "x", Queue: "x", Routing: wire.RoutingAnycast, Durable: true}); code != wire.CodeOK {
		t.Fatalf("create queue: %v", code)
	}
	if code := c.call(&wire.DeleteQueue{Queue: "x"}); code != wire.CodeOK {
		t.Fatalf("delete queue: %v", code)
	}
	if code := c.call(&wire.DeleteQueue{Queue: "x"}); code != wire.CodeNotFound {
		t.Fatalf("delete missing queue: %v", code)
	}
	c.write(c.next(), &wire.CreateConsumer{Session: 1, Consumer: 1, Address: "news", Routing: wire.RoutingMulticast, InitialCredit: 10})
	sub := c.expect(wire.TypeConsumerCreated).(*wire.ConsumerCreated)
	if sub.Code != wire.CodeOK || sub.Queue == "" {
		t.Fatalf("subscription %+v", sub)
	}
	c.write(c.next(), &wire.Send{Session: 1, Message: wire.Message{Address: "news", Routing: wire.RoutingMulticast, Body: []byte("hi")}})
	c.expect(wire.TypeSendResult)
	if d := c.expect(wire.TypeDeliver).(*wire.Deliver); string(d.Body) != "hi" {
		t.Fatalf("topic delivery %q", d.Body)
	}
	if code := c.call(&wire.CloseConsumer{Consumer: 1}); code != wire.CodeOK {
		t.Fatalf("close consumer: %v", code)
	}
	if _, ok := b.s.Queue(sub.Queue); ok {
		t.Fatal("subscription queue outlived its consumer")
	}
}

func TestNetAuthentication(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{Users: map[string]string{"alice": "secret"}})
	dial(t, a, "alice", "secret")
	for _, tc := range []struct{ user, pw string }{{"alice", "wrong"}, {"", ""}, {"bob", "secret"}} {
		c := dialRaw(t, a)
		c.write(1, &wire.Hello{MinVersion: 1, MaxVersion: 1, User: tc.user, Password: tc.pw})
		if e, ok := c.expectClosed().(*wire.Error); !ok || e.Code != wire.CodeAuthFailed {
			t.Fatalf("user %q: got %+v, want Error auth failed", tc.user, e)
		}
	}
}

func TestNetMalformedFrames(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{})
	good, _ := wire.AppendFrame(nil, 1, &wire.CreateSession{Session: 1})
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 0xff
	tests := []struct {
		name  string
		bytes []byte
	}{
		{"bad CRC", badCRC},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}},
		{"short length", []byte{0, 0, 0, 1, 0}},
		{"Hello again", func() []byte { b, _ := wire.AppendFrame(nil, 1, &wire.Hello{MinVersion: 1, MaxVersion: 1}); return b }()},
		{"server frame", func() []byte { b, _ := wire.AppendFrame(nil, 1, &wire.Welcome{}); return b }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, a, "", "")
			if _, err := c.nc.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if e, ok := c.expectClosed().(*wire.Error); !ok || e.Code != wire.CodeProtocol {
				t.Fatalf("got %+v, want Error protocol", e)
			}
		})
	}
	// Before the handshake.
	c := dialRaw(t, a)
	c.write(1, &wire.CreateSession{Session: 1})
	if e, ok := c.expectClosed().(*wire.Error); !ok || e.Code != wire.CodeProtocol {
		t.Fatalf("frame before Hello: got %+v", e)
	}
}

func TestNetConnectionTTL(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{TTLOverride: 200 * time.Millisecond})
	c := dial(t, a, "", "")
	c.call(&wire.CreateSession{Session: 1})
	// Silent: the server gives up after the TTL and says why.
	if d, ok := c.expectClosed().(*wire.Disconnect); !ok || d.Code != wire.CodeTimeout {
		t.Fatalf("got %+v, want Disconnect timeout", d)
	}
	var buf [1]byte
	c.nc.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.nc.Read(buf[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("read after TTL: %v, want EOF", err)
	}
}

func TestNetTopologyPush(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{})
	c := dialRaw(t, a)
	c.write(1, &wire.Hello{MinVersion: 1, MaxVersion: 1, WantTopology: true})
	c.expect(wire.TypeWelcome)
	b.s.SetTopology(Topology{Epoch: 3, Members: []Member{{NodeID: "n", Role: "primary", State: "active", URL: "tcp://x:1", Epoch: 3}}})
	if tp := c.expect(wire.TypeTopology).(*wire.Topology); tp.Epoch != 3 || len(tp.Members) != 1 {
		t.Fatalf("topology %+v", tp)
	}
}

func TestAcceptorCloseDisconnects(t *testing.T) {
	b := newBroker(t, Options{})
	a, err := b.s.Listen("127.0.0.1:0", NetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, a, "", "")
	a.Close(wire.CodeShuttingDown, "bye")
	if d, ok := c.expectClosed().(*wire.Disconnect); !ok || d.Code != wire.CodeShuttingDown {
		t.Fatalf("got %+v, want Disconnect shutting down", d)
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		want wire.Code
	}{
		{nil, wire.CodeOK},
		{ErrMessageTooLarge, wire.CodeTooLarge},
		{fmt.Errorf("x: %w", ErrNoSuchQueue), wire.CodeNotFound},
		{ErrUnknownDelivery, wire.CodeNotFound},
		{fmt.Errorf("%w: EIO", ErrHalted), wire.CodeUnavailable},
		{ErrNotActive, wire.CodeUnavailable},
		{ErrClosed, wire.CodeShuttingDown},
		{ErrQueueExists, wire.CodeExists},
		{ErrQueueInUse, wire.CodeInvalid},
		{fmt.Errorf("%w: 3 queues (max-queues)", ErrLimit), wire.CodeLimit},
		{errors.New("other"), wire.CodeInternal},
	}
	for _, tc := range tests {
		if got := codeOf(tc.err); got != tc.want {
			t.Errorf("codeOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
