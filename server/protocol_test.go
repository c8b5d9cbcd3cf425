package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// echoProto is a test protocol: connections start with "ECHO", and it
// answers every line with the same line; when ctx ends it writes "BYE".
type echoProto struct{ name, magic string }

func (p echoProto) Name() string { return p.name }
func (p echoProto) Detect(prefix []byte) bool {
	n := min(len(prefix), len(p.magic))
	return n > 0 && string(prefix[:n]) == p.magic[:n]
}
func (p echoProto) Serve(ctx context.Context, c ProtocolConn) {
	lines := make(chan string)
	go func() { // ends when the connection does (the acceptor closes it)
		defer close(lines)
		for {
			l, err := c.Reader.ReadString('\n')
			if err != nil {
				return
			}
			lines <- l
		}
	}()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return
			}
			if strings.TrimSpace(l) == "PANIC" {
				panic("asked to")
			}
			c.Conn.Write([]byte(l))
		case <-ctx.Done():
			c.Conn.Write([]byte("BYE\n"))
			return
		}
	}
}

func dialLine(t *testing.T, a *Acceptor, first string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte(first)); err != nil {
		t.Fatal(err)
	}
	return nc, bufio.NewReader(nc)
}

// TestProtocolDetection: one acceptor serves Tandem's protocol and a
// registered one, told apart by the first bytes; unknown bytes close the
// connection; Close ends a handler's connection through its context.
func TestProtocolDetection(t *testing.T) {
	b := newBroker(t, Options{})
	b.s.RegisterProtocol(echoProto{"ECHO", "ECHO"})
	a := listen(t, b, NetOptions{})

	// The prefix arrives in two writes: detection waits for more bytes
	// while the first does not decide.
	nc, br := dialLine(t, a, "EC")
	time.Sleep(20 * time.Millisecond)
	nc.Write([]byte("HO hello\n"))
	if l, err := br.ReadString('\n'); err != nil || l != "ECHO hello\n" {
		t.Fatalf("echo: %q %v", l, err)
	}

	// CORE still works on the same port.
	c := dial(t, a, "", "")
	c.write(c.next(), &wire.CreateSession{Session: 1})
	c.expect(wire.TypeResult)

	// Unknown first bytes: closed, nothing answered.
	bad, bbr := dialLine(t, a, "GET / HTTP/1.1\r\n\r\n")
	if b, err := bbr.ReadByte(); err == nil {
		t.Fatalf("unknown protocol answered %q", b)
	}
	bad.Close()

	// A handler that panics loses its connection, not the broker.
	_, pbr := dialLine(t, a, "ECHO x\nPANIC\n")
	if l, _ := pbr.ReadString('\n'); l != "ECHO x\n" {
		t.Fatalf("before panic: %q", l)
	}
	if _, err := pbr.ReadString('\n'); err == nil {
		t.Fatal("connection of a panicking handler stayed open")
	}

	// Protocol connections count as the acceptor's (its limits apply).
	for deadline := time.Now().Add(10 * time.Second); a.Connections() != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Connections() = %d, want 2 (echo and core)", a.Connections())
		}
	}
	a.Close(wire.CodeShuttingDown, "test")
	if l, err := br.ReadString('\n'); err != nil || l != "BYE\n" {
		t.Fatalf("after Close: %q %v, want BYE", l, err)
	}
	if _, err := br.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Fatalf("connection open after Close: %v", err)
	}
}

// TestProtocolsParam: protocols= restricts what an acceptor serves.
func TestProtocolsParam(t *testing.T) {
	b := newBroker(t, Options{})
	b.s.RegisterProtocol(echoProto{"ECHO", "ECHO"})
	names := []string{"ECHO"}

	ps, unknown, err := ParseProtocols("echo,MQTT", names)
	if err != nil || len(unknown) != 1 || unknown[0] != "MQTT" {
		t.Fatalf("ParseProtocols: %v %v %v", ps, unknown, err)
	}
	only := listen(t, b, NetOptions{Protocols: ps})
	if _, br := dialLine(t, only, "ECHO 1\n"); true {
		if l, err := br.ReadString('\n'); err != nil || l != "ECHO 1\n" {
			t.Fatalf("echo-only acceptor: %q %v", l, err)
		}
	}
	core := dialRaw(t, only)
	core.write(core.next(), &wire.Hello{MinVersion: 1, MaxVersion: 1})
	if f := core.expectClosed(); f != nil {
		t.Fatalf("CORE on an ECHO-only acceptor answered %+v", f)
	}

	ps, _, _ = ParseProtocols("CORE", names)
	coreOnly := listen(t, b, NetOptions{Protocols: ps})
	if _, br := dialLine(t, coreOnly, "ECHO 1\n"); true {
		if _, err := br.ReadString('\n'); err == nil {
			t.Fatal("ECHO served on a CORE-only acceptor")
		}
	}
	dial(t, coreOnly, "", "")

	for _, bad := range []string{"MQTT,OPENWIRE", ",", "AMQP"} {
		if _, _, err := ParseProtocols(bad, names); err == nil {
			t.Errorf("ParseProtocols(%q) accepted", bad)
		}
	}
}

// TestReleaseAndAckInto: Release redelivers with a higher delivery count;
// AckInto acks only when the transaction commits, and a rollback
// redelivers.
func TestReleaseAndAckInto(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("a", true))
	col := newCollector()
	cons, err := ss.CreateConsumer(context.Background(), queueDest("q"), ConsumerOptions{Credit: -1}, col.handle)
	if err != nil {
		t.Fatal(err)
	}
	d := col.wait(t, 1)[0]
	if err := ss.Release(cons.ID(), d.Message.ID); err != nil {
		t.Fatal(err)
	}
	d2 := col.wait(t, 2)[1]
	if d2.Message.ID != d.Message.ID || d2.DeliveryCount != 2 {
		t.Fatalf("after Release: message %d count %d, want %d count 2", d2.Message.ID, d2.DeliveryCount, d.Message.ID)
	}
	if err := ss.Release(cons.ID(), 999); !errors.Is(err, ErrUnknownDelivery) {
		t.Fatalf("Release of an unknown message: %v", err)
	}

	tx := b.s.NewSession(true)
	if err := ss.AckInto(tx, cons.ID(), d2.Message.ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	d3 := col.wait(t, 3)[2]
	if d3.Message.ID != d.Message.ID || d3.DeliveryCount != 3 {
		t.Fatalf("after rollback: message %d count %d", d3.Message.ID, d3.DeliveryCount)
	}
	if err := ss.AckInto(tx, cons.ID(), d3.Message.ID); err != nil {
		t.Fatal(err)
	}
	if err := commitSync(t, tx); err != nil {
		t.Fatal(err)
	}
	if info, _ := b.s.Queue("q"); info.Depth != 0 {
		t.Fatalf("depth %d after the committed ack", info.Depth)
	}
	ss.Close()
	b.restart()
	if info, _ := b.s.Queue("q"); info.Depth != 0 {
		t.Fatalf("depth %d after restart: the committed ack was not durable", info.Depth)
	}
	if err := ss.AckInto(b.s.NewSession(false), 1, 1); !errors.Is(err, ErrNotTransacted) {
		t.Fatalf("AckInto a non-transacted session: %v", err)
	}
}
