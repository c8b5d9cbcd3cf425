package server

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// An inline write the socket takes only in part leaves the rest to the
// writer goroutine; frames queued meanwhile follow in order.
func TestOutqPartialInlineWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.(*net.TCPConn).SetWriteBuffer(64 << 10)

	o := newOutq(srv, outqLimits{}, func(err error) { t.Errorf("write error: %v", err) })
	done := make(chan error, 1)
	go func() { done <- o.run(srv) }()

	body := bytes.Repeat([]byte("x"), 1<<20)
	// A large urgent frame: the socket cannot take it at once.
	o.mu.Lock()
	empty := o.pending.Len() == 0
	o.pending.Encode(1, &wire.Deliver{Consumer: 1, MessageID: 1, DeliveryCount: 1, Message: wire.Message{Address: "q", Body: body}})
	o.release(empty, true)
	o.mu.Lock()
	partials := o.partials
	o.mu.Unlock()
	if partials != 1 {
		t.Fatalf("inline write of 1 MiB into a 64 KiB socket buffer was not partial (%d)", partials)
	}
	for i := 2; i <= 5; i++ {
		o.sendResultFrame(uint64(i), wire.CodeOK, "", false, true)
	}
	o.close()

	dec := wire.NewDecoder(client)
	h, f, err := dec.Read()
	if err != nil || h.Type != wire.TypeDeliver || !bytes.Equal(f.(*wire.Deliver).Body, body) {
		t.Fatalf("first frame: %v %v", h, err)
	}
	for i := 2; i <= 5; i++ {
		h, _, err := dec.Read()
		if err != nil || h.Type != wire.TypeSendResult || h.Corr != uint64(i) {
			t.Fatalf("frame %d: %+v %v", i, h, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// stuckConn is a net.Conn whose socket takes first bytes at once and then
// nothing: each Write waits (on a fake clock) until its deadline.
type stuckConn struct {
	net.Conn
	now      time.Time
	deadline time.Time
	room     int // bytes the socket still takes
}

func (c *stuckConn) SetWriteDeadline(t time.Time) error { c.deadline = t; return nil }

func (c *stuckConn) Write(b []byte) (int, error) {
	n := min(len(b), c.room)
	c.room -= n
	if n == len(b) {
		return n, nil
	}
	c.now = c.deadline // blocked until the deadline
	return n, os.ErrDeadlineExceeded
}

// A client that took some bytes and then none is cut off once nothing was
// taken for the write timeout (plus at most a quarter of it): a Write that
// took bytes at its start and then waited out the whole timeout counted as
// progress, doubling the time a stuck client was kept.
func TestWriteTimeoutCountsFromLastProgress(t *testing.T) {
	start := time.Unix(1000, 0)
	c := &stuckConn{now: start, room: 100}
	const timeout = 30 * time.Second
	o := newOutq(c, outqLimits{writeTimeout: timeout}, func(error) {})
	o.now = func() time.Time { return c.now }
	err := o.write(c, make([]byte, 1000))
	var stuck *errWriteStuck
	if !errors.As(err, &stuck) {
		t.Fatalf("write to a stuck socket: %v, want errWriteStuck", err)
	}
	// The last byte was taken at start.
	if waited := c.now.Sub(start); waited > timeout+timeout/4 {
		t.Fatalf("stuck client cut off %v after its last byte, want at most %v", waited, timeout+timeout/4)
	}
}
