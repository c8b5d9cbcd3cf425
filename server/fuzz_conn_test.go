package server

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// FuzzConnFrames feeds arbitrary bytes to a connection after a valid
// handshake and session: whatever arrives, the connection ends (or keeps
// reading) without a panic, and the broker stays usable.
func FuzzConnFrames(f *testing.F) {
	seed := func(frames ...wire.Frame) []byte {
		var b []byte
		for i, fr := range frames {
			b, _ = wire.AppendFrame(b, uint64(i+10), fr)
		}
		return b
	}
	f.Add(seed(&wire.Send{Session: 1, Message: wire.Message{Address: "q", Durable: true, Body: []byte("x")}}))
	f.Add(seed(&wire.CreateConsumer{Session: 1, Consumer: 1, Queue: "q", InitialCredit: 5}, &wire.Ack{Consumer: 1, MessageIDs: []uint64{1, 2}}))
	f.Add(seed(&wire.CreateSession{Session: 2, Transacted: true}, &wire.Commit{Session: 2}, &wire.Rollback{Session: 2}, &wire.CloseSession{Session: 2}))
	f.Add(seed(&wire.CreateQueue{Address: "a", Queue: "t", Temporary: true}, &wire.DeleteQueue{Queue: "t"}, &wire.Credit{Consumer: 9, N: 1}, &wire.Ping{}))
	f.Add([]byte{0, 0, 0, 0})

	b := newBroker(f, Options{})
	a := &Acceptor{s: b.s, opts: NetOptions{DefaultTTL: time.Minute, HandshakeTimeout: time.Second}, conns: map[*conn]struct{}{}}
	hello, _ := wire.AppendFrame(nil, 1, &wire.Hello{MinVersion: 1, MaxVersion: 1})
	hello, _ = wire.AppendFrame(hello, 2, &wire.CreateSession{Session: 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		client, srv := net.Pipe()
		c := newConn(a, srv)
		done := make(chan struct{})
		go func() {
			c.serve()
			close(done)
		}()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write(hello)
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection did not end after the client closed")
		}
	})
}
