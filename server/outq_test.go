package server

import (
	"bytes"
	"net"
	"testing"

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
