package server

import (
	"bytes"
	"testing"
	"time"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/config"
	"github.com/tandemmq/tandem/wire"
)

// connOf returns a's connection whose client ID is id.
func connOf(t *testing.T, a *Acceptor, id string) *conn {
	t.Helper()
	var c *conn
	waitFor(t, "no connection of client "+id, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		for x := range a.conns {
			if m := x.metaP.Load(); m != nil && m.clientID == id {
				c = x
			}
		}
		return c != nil
	})
	return c
}

// uploadLarge sends a large message of body to queue on c's session 1 and
// returns the Result of its last chunk.
func uploadLarge(c *tclient, stream uint64, queue string, body []byte) *wire.Result {
	c.t.Helper()
	c.write(0, &wire.SendLarge{Session: 1, Stream: stream, Size: uint64(len(body)),
		Message: wire.Message{Address: queue, Routing: wire.RoutingAnycast, Durable: true}})
	for len(body) > wire.MaxBodySize {
		c.write(0, &wire.LargeChunk{Stream: stream, Data: body[:wire.MaxBodySize]})
		body = body[wire.MaxBodySize:]
	}
	c.write(c.next(), &wire.LargeChunk{Stream: stream, Last: true, Data: body})
	return c.expect(wire.TypeResult).(*wire.Result)
}

// A large delivery to a consumer that does not read stays within the
// connection's water marks: its body goes out a piece at a time, each
// queued once the output is down to its low mark, so what is queued never
// passes the high mark and the connection keeps reading the client's
// requests (before, 1 MiB chunks were queued while less than 4 MiB was
// pending: the output stayed blocked, the reader paused for the whole
// delivery, and megabytes waited per connection).
func TestLargeDeliveryWithinWaterMarks(t *testing.T) {
	b := newLargeBroker(t, Options{})
	a := listenSmall(t, b, NetOptions{WriteTimeout: -1})
	body := make([]byte, 8<<20)
	for i := range body {
		body[i] = byte(i / 7)
	}
	p := dial(t, a, "", "")
	p.write(p.next(), &wire.CreateSession{Session: 1})
	p.expect(wire.TypeResult)
	if r := uploadLarge(p, 1, "big", body); r.Code != wire.CodeOK {
		t.Fatalf("upload: %v %s", r.Code, r.Message)
	}

	nc := rawHello(t, a, "slow")
	writeFrames(t, nc, &wire.CreateSession{Session: 1},
		&wire.CreateConsumer{Session: 1, Consumer: 1, Queue: "big", Routing: wire.RoutingAnycast, InitialCredit: 10})
	c := connOf(t, a, "slow")
	waitFor(t, "the large delivery never started", func() bool {
		c.lg.mu.Lock()
		defer c.lg.mu.Unlock()
		return c.lg.streaming
	})
	// The client reads nothing: the kernel's buffers fill and the
	// delivery stalls. A request still gets through.
	side, err := wire.AppendFrame(nil, 0, &wire.Send{Session: 1, Message: wire.Message{Address: "side", Routing: wire.RoutingAnycast, Body: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(side); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection stopped reading requests during a large delivery", func() bool {
		q, ok := b.s.Queue("side")
		return ok && q.Depth == 1
	})
	if q := c.out.queued(); q > DefaultHighWaterMark+1024 {
		t.Fatalf("%d bytes queued for a client that does not read, high water mark %d", q, DefaultHighWaterMark)
	}
	if n := a.Stats().ReadPauses; n != 0 {
		t.Fatalf("the reader paused %d times for a large delivery", n)
	}

	// Reading, the client gets the body whole, in pieces of at most the
	// span between the marks.
	dec := wire.NewDecoder(nc)
	var got []byte
	for done := false; !done; {
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		h, err := dec.Next()
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		switch h.Type {
		case wire.TypeDeliverLarge:
			var f wire.DeliverLarge
			if err := dec.Unmarshal(&f); err != nil {
				t.Fatal(err)
			}
			if f.Size != uint64(len(body)) {
				t.Fatalf("DeliverLarge size %d, want %d", f.Size, len(body))
			}
		case wire.TypeDeliverChunk:
			var f wire.DeliverChunk
			if err := dec.Unmarshal(&f); err != nil {
				t.Fatal(err)
			}
			if len(f.Data) > DefaultHighWaterMark-DefaultLowWaterMark {
				t.Fatalf("a DeliverChunk of %d bytes", len(f.Data))
			}
			got = append(got, f.Data...)
			done = f.Last
		}
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("received %d bytes, not the %d sent", len(got), len(body))
	}
}

// A large send needs the send permission on its address, checked when it
// begins: a client without it writes nothing to the large-messages
// journal (before, every chunk was stored and only the final send was
// refused).
func TestLargeSendNeedsSendPermission(t *testing.T) {
	cfg, _, err := config.Parse("b.xml", bytes.NewReader([]byte(`<configuration><core><security-settings>
	  <security-setting match="#"><permission type="send" roles="w"/><permission type="consume" roles="r,w"/>
	    <permission type="createDurableQueue" roles="r,w"/><permission type="createAddress" roles="r,w"/></security-setting>
	</security-settings></core></configuration>`)))
	if err != nil {
		t.Fatal(err)
	}
	g, err := auth.New(auth.Options{Users: []config.User{{Name: "reader", Password: "r", Roles: []string{"r"}},
		{Name: "writer", Password: "w", Roles: []string{"w"}}}, Settings: cfg.Security.Settings, SettingsSet: true, Interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	b := newLargeBroker(t, Options{})
	a := listen(t, b, NetOptions{Security: g})
	body := bytes.Repeat([]byte("L"), 3<<20)

	r := dial(t, a, "reader", "r")
	r.write(r.next(), &wire.CreateSession{Session: 1})
	r.expect(wire.TypeResult)
	if res := uploadLarge(r, 1, "q", body); res.Code != wire.CodeForbidden {
		t.Fatalf("a large send without the send permission: %v %q, want CodeForbidden", res.Code, res.Message)
	}
	if n := b.lj.Stats().Appends; n != 0 {
		t.Fatalf("a client without the send permission appended %d chunks to the large-messages journal", n)
	}

	w := dial(t, a, "writer", "w")
	w.write(w.next(), &wire.CreateSession{Session: 1})
	w.expect(wire.TypeResult)
	if res := uploadLarge(w, 1, "q", body); res.Code != wire.CodeOK {
		t.Fatalf("a large send with the send permission: %v %q", res.Code, res.Message)
	}
	if q, ok := b.s.Queue("q"); !ok || q.Depth != 1 {
		t.Fatal("the permitted large message is not in its queue")
	}
}

// Without a large-messages journal a large send of at most MaxBodySize is
// taken into memory: that memory grows with the bytes that arrive, not
// to the size SendLarge announces (before, each SendLarge reserved its
// announced size at once), and a connection's uploads into memory, and
// its uploads in progress, are bounded.
func TestLargeUploadsBounded(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{})
	cl := dial(t, a, "", "")
	cl.write(cl.next(), &wire.CreateSession{Session: 1})
	cl.expect(wire.TypeResult)
	c := onlyConn(t, a)
	sync := func() { // the reader handled everything before
		cl.write(cl.next(), &wire.Ping{})
		cl.expect(wire.TypePong)
	}

	// Announced 1 MiB, 100 bytes arrived.
	cl.write(0, &wire.SendLarge{Session: 1, Stream: 1, Size: wire.MaxBodySize, Message: wire.Message{Address: "q", Routing: wire.RoutingAnycast}})
	cl.write(0, &wire.LargeChunk{Stream: 1, Data: make([]byte, 100)})
	sync()
	if n := c.lg.memBytes.Load(); n > 4<<10 {
		t.Fatalf("%d bytes held for 100 bytes received", n)
	}

	// Bodies in memory: at most maxMemUploads for the connection.
	full := bytes.Repeat([]byte("m"), wire.MaxBodySize)
	for s := uint64(2); s <= 5; s++ {
		cl.write(0, &wire.SendLarge{Session: 1, Stream: s, Size: wire.MaxBodySize, Message: wire.Message{Address: "q", Routing: wire.RoutingAnycast}})
		cl.write(0, &wire.LargeChunk{Stream: s, Data: full[:wire.MaxBodySize-1]})
	}
	sync()
	if n := c.lg.memBytes.Load(); n > maxMemUploads {
		t.Fatalf("%d bytes of uploads in memory, bound %d", n, maxMemUploads)
	}
	codes := map[wire.Code]int{}
	for s := uint64(1); s <= 5; s++ {
		cl.write(cl.next(), &wire.LargeChunk{Stream: s, Last: true, Data: full[:1]})
		codes[cl.expect(wire.TypeResult).(*wire.Result).Code]++
	}
	// Stream 1 holds little: it and three of the others fit, one did
	// not; stream 1's body is short of its size.
	if codes[wire.CodeLimit] != 1 || codes[wire.CodeOK] != 3 || codes[wire.CodeInvalid] != 1 {
		t.Fatalf("outcomes %v, want 3 OK, 1 CodeLimit, 1 CodeInvalid", codes)
	}
	if n := c.lg.memBytes.Load(); n != 0 {
		t.Fatalf("%d bytes still counted after every upload ended", n)
	}

	// At most maxUploads in progress: one more is refused, the others
	// complete.
	for s := uint64(10); s < 10+maxUploads+1; s++ {
		cl.write(0, &wire.SendLarge{Session: 1, Stream: s, Size: 1, Message: wire.Message{Address: "q", Routing: wire.RoutingAnycast}})
	}
	codes = map[wire.Code]int{}
	for s := uint64(10); s < 10+maxUploads+1; s++ {
		cl.write(cl.next(), &wire.LargeChunk{Stream: s, Last: true, Data: []byte("1")})
		codes[cl.expect(wire.TypeResult).(*wire.Result).Code]++
	}
	if codes[wire.CodeOK] != maxUploads || codes[wire.CodeLimit] != 1 {
		t.Fatalf("outcomes %v, want %d OK and 1 CodeLimit", codes, maxUploads)
	}
}
