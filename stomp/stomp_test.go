package stomp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// depth returns the number of messages in queue q. An absent queue holds
// nothing: the queues these tests use are
// auto-created, and auto-deleted (address settings' defaults, as in
// Artemis) once their last consumer has left and they are empty.
func depth(t *testing.T, b *broker, q string) int64 {
	t.Helper()
	info, ok := b.s.Queue(q)
	if !ok {
		return 0
	}
	return info.Depth
}

// TestDurableRoundTrip: receipted persistent sends survive a restart; a
// client-individual subscriber gets them in order with the mapped headers;
// its receipted acks survive a restart too.
func TestDurableRoundTrip(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	p := connect(t, b.addr)
	p.send("SEND", []string{"destination:q", "persistent:true", "receipt:x", "color:red", "content-type:text/plain", "_AMQ_DUPL_ID:d0"}, "first")
	p.expect("RECEIPT")
	p.sendDurable("q", 99, "m")
	b.restart() // everything receipted is durable

	c := connect(t, b.addr)
	c.send("SUBSCRIBE", []string{"id:s1", "destination:q", "ack:client-individual", "receipt:sub"}, "")
	c.expect("RECEIPT")
	var ms []*Frame
	for i := 0; i < 100; i++ {
		ms = append(ms, c.expect("MESSAGE"))
	}
	m := ms[0]
	for k, v := range map[string]string{"subscription": "s1", "destination": "q", "persistent": "true", "color": "red",
		"content-type": "text/plain", "_AMQ_DUPL_ID": "d0", "content-length": "5"} {
		if m.Value(k) != v {
			t.Errorf("header %s = %q, want %q (frame %v)", k, m.Value(k), v, m.Headers)
		}
	}
	if string(m.Body) != "first" || m.Value("ack") == "" || m.Value("timestamp") == "" {
		t.Fatalf("message %v %q", m.Headers, m.Body)
	}
	c.send("ACK", []string{"id:" + m.Value("ack"), "receipt:a"}, "")
	c.expect("RECEIPT")
	ms = ms[1:]
	for i, m := range ms {
		if want := fmt.Sprintf("m%d", i); string(m.Body) != want {
			t.Fatalf("message %d: %q, want %q", i, m.Body, want)
		}
	}
	for _, m := range ms[:49] {
		c.send("ACK", []string{"id:" + m.Value("ack"), "receipt:a"}, "")
	}
	for range 49 {
		c.expect("RECEIPT")
	}
	b.restart() // 50 acked durably; 50 unacked stay
	if d := depth(t, b, "q"); d != 50 {
		t.Fatalf("after restart: depth %d, want 50", d)
	}
}

// TestAckClientCumulative: ACK in ack:client mode acknowledges every
// message up to it; what is unacknowledged when the connection ends is
// redelivered, marked redelivered.
func TestAckClientCumulative(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	p := connect(t, b.addr)
	p.sendDurable("cq", 10, "m")
	c := connect(t, b.addr)
	c.send("SUBSCRIBE", []string{"id:0", "destination:cq", "ack:client"}, "")
	var ms []*Frame
	for i := 0; i < 10; i++ {
		ms = append(ms, c.expect("MESSAGE"))
	}
	c.send("ACK", []string{"id:" + ms[4].Value("ack"), "receipt:r"}, "")
	c.expect("RECEIPT")
	// Acking one of the first five again is an error (they are gone).
	c.send("ACK", []string{"id:" + ms[2].Value("ack"), "receipt:again"}, "")
	if e := c.expectError(); e.Value("receipt-id") != "again" || e.Value("message") != "unknown ack id" {
		t.Fatalf("second ack: %v %q", e.Headers, e.Body)
	}
	c2 := connect(t, b.addr)
	c2.send("SUBSCRIBE", []string{"id:0", "destination:cq", "ack:auto"}, "")
	for i := 5; i < 10; i++ {
		m := c2.expect("MESSAGE")
		if string(m.Body) != fmt.Sprintf("m%d", i) || m.Value("redelivered") != "true" {
			t.Fatalf("redelivery %d: %q %v", i, m.Body, m.Headers)
		}
	}
	// ack:auto: acknowledged once written.
	c2.send("DISCONNECT", []string{"receipt:bye"}, "")
	c2.expect("RECEIPT")
	if d := depth(t, b, "cq"); d != 0 {
		t.Fatalf("depth %d after auto acks", d)
	}
}

// TestNack: NACK gives the message back; it comes again.
func TestNack(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	c := connect(t, b.addr)
	c.sendDurable("nq", 1, "m")
	c.send("SUBSCRIBE", []string{"id:0", "destination:nq", "ack:client-individual"}, "")
	m := c.expect("MESSAGE")
	c.send("NACK", []string{"id:" + m.Value("ack"), "receipt:n"}, "")
	c.expect("RECEIPT")
	m2 := c.expect("MESSAGE")
	if string(m2.Body) != "m0" || m2.Value("redelivered") != "true" {
		t.Fatalf("after NACK: %q %v", m2.Body, m2.Headers)
	}
}

// TestTransactions: a transaction's sends are delivered only after COMMIT,
// ABORT drops them, and its acks are durable with the commit or undone by
// ABORT.
func TestTransactions(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	p := connect(t, b.addr)
	p.send("BEGIN", []string{"transaction:t1"}, "")
	p.send("SEND", []string{"destination:tq", "persistent:true", "transaction:t1", "receipt:s1"}, "a")
	p.send("SEND", []string{"destination:tq", "persistent:true", "transaction:t1", "receipt:s2"}, "b")
	p.expect("RECEIPT")
	p.expect("RECEIPT")
	p.send("BEGIN", []string{"transaction:t2"}, "")
	p.send("SEND", []string{"destination:tq", "persistent:true", "transaction:t2"}, "aborted")
	p.send("ABORT", []string{"transaction:t2", "receipt:ab"}, "")
	p.expect("RECEIPT")
	if info, ok := b.s.Queue("tq"); ok && info.Depth != 0 {
		t.Fatalf("depth %d before COMMIT", info.Depth)
	}
	p.send("COMMIT", []string{"transaction:t1", "receipt:c"}, "")
	if f := p.expect("RECEIPT"); f.Value("receipt-id") != "c" {
		t.Fatalf("receipt %v", f.Headers)
	}
	b.restart()
	if d := depth(t, b, "tq"); d != 2 {
		t.Fatalf("depth %d after commit and restart, want 2", d)
	}

	c := connect(t, b.addr)
	c.send("SUBSCRIBE", []string{"id:0", "destination:tq", "ack:client-individual"}, "")
	m1, m2 := c.expect("MESSAGE"), c.expect("MESSAGE")
	c.send("BEGIN", []string{"transaction:x"}, "")
	c.send("ACK", []string{"id:" + m1.Value("ack"), "transaction:x"}, "")
	c.send("ABORT", []string{"transaction:x", "receipt:ab"}, "")
	c.expect("RECEIPT")
	again := c.expect("MESSAGE") // the aborted ack's message comes back
	if string(again.Body) != "a" {
		t.Fatalf("after ABORT: %q", again.Body)
	}
	c.send("BEGIN", []string{"transaction:y"}, "")
	c.send("ACK", []string{"id:" + again.Value("ack"), "transaction:y"}, "")
	c.send("ACK", []string{"id:" + m2.Value("ack"), "transaction:y"}, "")
	c.send("SEND", []string{"destination:out", "persistent:true", "transaction:y"}, "result")
	c.send("COMMIT", []string{"transaction:y", "receipt:cy"}, "")
	c.expect("RECEIPT")
	b.restart()
	if d, o := depth(t, b, "tq"), depth(t, b, "out"); d != 0 || o != 1 {
		t.Fatalf("after commit: tq %d out %d, want 0 and 1", d, o)
	}
	c2 := connect(t, b.addr)
	c2.send("COMMIT", []string{"transaction:nope", "receipt:z"}, "")
	if e := c2.expectError(); e.Value("message") != "no such transaction" {
		t.Fatalf("COMMIT of an unknown transaction: %v", e.Headers)
	}
}

// TestDestinations: the acceptor's prefixes choose and are stripped;
// destination-type and subscription-type choose without them; a topic
// fans out to every subscriber.
func TestDestinations(t *testing.T) {
	b := newBroker(t, server.NetOptions{Params: map[string]string{"anycastPrefix": "/queue/", "multicastPrefix": "/topic/"}}, Options{})
	s1, s2 := connect(t, b.addr), connect(t, b.addr)
	for _, s := range []*raw{s1, s2} {
		s.send("SUBSCRIBE", []string{"id:t", "destination:/topic/news", "receipt:r"}, "")
		s.expect("RECEIPT")
		s.send("SUBSCRIBE", []string{"id:m", "destination:prices", "subscription-type:MULTICAST", "receipt:r"}, "")
		s.expect("RECEIPT")
	}
	p := connect(t, b.addr)
	p.send("SEND", []string{"destination:/topic/news", "receipt:1"}, "hello")
	p.expect("RECEIPT")
	p.send("SEND", []string{"destination:prices", "destination-type:MULTICAST", "receipt:2"}, "42")
	p.expect("RECEIPT")
	p.send("SEND", []string{"destination:/queue/orders", "persistent:true", "receipt:3"}, "o1")
	p.expect("RECEIPT")
	for _, s := range []*raw{s1, s2} {
		got := map[string]string{}
		for i := 0; i < 2; i++ {
			m := s.expect("MESSAGE")
			got[m.Value("subscription")] = string(m.Body) + "@" + m.Value("destination")
		}
		if got["t"] != "hello@/topic/news" || got["m"] != "42@prices" {
			t.Fatalf("topic deliveries %v", got)
		}
	}
	if d := depth(t, b, "orders"); d != 1 {
		t.Fatalf("queue orders (prefix stripped): depth %d", d)
	}
	// A core client sees the same queue under its plain name.
	cc, err := client.Dial(context.Background(), "tcp://"+b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ss, _ := cc.CreateSession(context.Background())
	k, err := ss.CreateConsumer(context.Background(), client.Queue("orders"), client.Credit(10))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := k.Receive(ctx)
	if err != nil || string(m.Body) != "o1" || !m.Durable {
		t.Fatalf("core receive: %+v %v", m, err)
	}
	p.send("SEND", []string{"destination:x", "destination-type:BROADCAST"}, "")
	if e := p.expectError(); !strings.Contains(e.Value("message"), "destination-type") {
		t.Fatalf("bad destination-type: %v", e.Headers)
	}
}

// TestCrossProtocol: a message sent with Tandem's client is received over
// STOMP and back, with body, properties, duplicate ID and durability.
func TestCrossProtocol(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc, err := client.Dial(ctx, "tcp://"+b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ss, _ := cc.CreateSession(ctx)
	pr := ss.CreateProducer(client.Queue("x1"))
	err = pr.Send(ctx, &client.Message{Body: []byte("from core"), DuplicateID: "dup-1",
		Properties: []client.Property{wire.StringProp("s", "v"), {Key: "n", Kind: wire.KindInt64, Int: -7}, {Key: "b", Kind: wire.KindBool, Int: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	s := connect(t, b.addr)
	s.send("SUBSCRIBE", []string{"id:0", "destination:x1", "ack:client"}, "")
	m := s.expect("MESSAGE")
	for k, v := range map[string]string{"s": "v", "n": "-7", "b": "true", "persistent": "true", "_AMQ_DUPL_ID": "dup-1"} {
		if m.Value(k) != v {
			t.Errorf("core->stomp header %s = %q, want %q", k, m.Value(k), v)
		}
	}
	if string(m.Body) != "from core" {
		t.Fatalf("body %q", m.Body)
	}
	s.send("SEND", []string{"destination:x2", "persistent:true", "k:v\\c2", "_AMQ_DUPL_ID:dup-2", "receipt:r"}, "from stomp")
	s.expect("RECEIPT")
	k, err := ss.CreateConsumer(ctx, client.Queue("x2"), client.Credit(10))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := cm.Property("k"); string(cm.Body) != "from stomp" || !cm.Durable || cm.DuplicateID != "dup-2" || p.Str != "v:2" {
		t.Fatalf("stomp->core: %+v", cm)
	}
}

// TestDuplicateID: a resend with the same _AMQ_DUPL_ID is receipted but
// stored once.
func TestDuplicateID(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	p := connect(t, b.addr)
	for i := 0; i < 3; i++ {
		p.send("SEND", []string{"destination:dq", "persistent:true", "_AMQ_DUPL_ID:same", "receipt:r"}, "once")
		p.expect("RECEIPT")
	}
	if d := depth(t, b, "dq"); d != 1 {
		t.Fatalf("depth %d, want 1", d)
	}
}

// TestAuthentication: login/passcode are checked against the acceptor's
// users.
func TestAuthentication(t *testing.T) {
	b := newBroker(t, server.NetOptions{Users: map[string]string{"app": "secret"}}, Options{})
	r := dialRaw(t, b.addr)
	r.send("CONNECT", []string{"accept-version:1.2", "login:app", "passcode:wrong"}, "")
	if e := r.expectError(); e.Value("message") != "authentication failed" {
		t.Fatalf("wrong passcode: %v", e.Headers)
	}
	r = dialRaw(t, b.addr)
	r.send("STOMP", []string{"accept-version:1.2", "login:app", "passcode:secret"}, "")
	if f := r.expect("CONNECTED"); f.Value("version") != "1.2" {
		t.Fatalf("CONNECTED %v", f.Headers)
	}
	r = dialRaw(t, b.addr)
	r.send("CONNECT", []string{"accept-version:2.0"}, "")
	if e := r.expectError(); e.Value("message") != "unsupported STOMP version" {
		t.Fatalf("version 2.0: %v", e.Headers)
	}
}

// TestHeartBeats: the broker answers the negotiated heart-beats, sends
// EOLs when idle, and closes a connection silent for twice the client's
// promised interval.
func TestHeartBeats(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	r := dialRaw(t, b.addr)
	r.send("CONNECT", []string{"accept-version:1.2", "heart-beat:1000,100"}, "")
	if f := r.expect("CONNECTED"); f.Value("heart-beat") != "500,1000" {
		t.Fatalf("heart-beat %q, want 500,1000", f.Value("heart-beat"))
	}
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if f, err := r.dec.Next(); err != nil || f != nil {
		t.Fatalf("want a heart-beat EOL, got %v %v", f, err)
	}
	// Silent client: closed after 2 s (twice 1000 ms).
	if !r.closed(15 * time.Second) {
		t.Fatal("a silent client was not disconnected")
	}
}

// TestHeartBeatTTLCapped: the TTL a client's heart-beat header implies
// (twice its promised interval: a client promising one an hour would keep
// a silent connection for two) is capped by connection-ttl-max.
func TestHeartBeatTTLCapped(t *testing.T) {
	b := newBroker(t, server.NetOptions{TTLMax: time.Second}, Options{})
	r := dialRaw(t, b.addr)
	r.send("CONNECT", []string{"accept-version:1.2", "heart-beat:3600000,0"}, "")
	r.expect("CONNECTED")
	if !r.closed(15 * time.Second) {
		t.Fatal("a silent client promising a heart-beat an hour was not disconnected at the 1 s cap")
	}
}

// TestHostileFrames: each malformed frame gets an ERROR and a close, while
// another client's traffic goes on.
func TestHostileFrames(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	good := connect(t, b.addr)
	good.send("SUBSCRIBE", []string{"id:0", "destination:ok", "receipt:s"}, "")
	good.expect("RECEIPT")
	n := 0
	check := func(name string, frames string, wantMsg string) {
		t.Helper()
		r := connect(t, b.addr)
		r.write(frames)
		e := r.expectError()
		if !strings.Contains(e.Value("message"), wantMsg) {
			t.Errorf("%s: ERROR %v %q, want %q", name, e.Headers, e.Body, wantMsg)
		}
		good.send("SEND", []string{"destination:ok", "receipt:g"}, "still here")
		good.expect("RECEIPT")
		good.expect("MESSAGE")
		n++
	}
	check("wrong header", "SEND\ndestination\n\nx\x00", "malformed frame")
	check("bad escape", "SEND\ndestination:a\\qb\n\nx\x00", "malformed frame")
	check("bad content-length", "SEND\ndestination:a\ncontent-length:ten\n\nx\x00", "malformed frame")
	check("oversized content-length", "SEND\ndestination:a\ncontent-length:1073741824\n\n", "malformed frame")
	check("oversized body", "SEND\ndestination:a\n\n"+strings.Repeat("x", server.MaxBodySize+10)+"\x00", "malformed frame")
	check("huge header", "SEND\ndestination:a\nk:"+strings.Repeat("v", 70<<10)+"\n\n\x00", "malformed frame")
	check("unknown command", "PUBLISH\n\n\x00", "unknown command")
	check("no destination", "SEND\n\nx\x00", "missing destination")
	check("unknown subscription", "UNSUBSCRIBE\nid:zz\n\n\x00", "no such subscription")
	check("bad ack id", "ACK\nid:garbage\n\n\x00", "unknown ack id")
	check("second CONNECT", "CONNECT\naccept-version:1.2\n\n\x00", "already connected")
	check("bad selector", "SUBSCRIBE\nid:1\ndestination:a\nselector:x >\n\n\x00", "subscribe failed")
	check("bad expires", "SEND\ndestination:a\nexpires:soon\n\nx\x00", "bad expires header")

	// Before CONNECT: anything else is refused.
	r := dialRaw(t, b.addr)
	r.write("STOMP\naccept-version:1.2\nheart-beat:x\n\n\x00")
	if e := r.expectError(); e.Value("message") != "bad heart-beat header" {
		t.Fatalf("bad heart-beat: %v", e.Headers)
	}
	r = dialRaw(t, b.addr)
	r.write("\nCONNEC\n\n\x00") // detected as STOMP, not a STOMP command
	if e := r.expectError(); e.Value("message") != "expected CONNECT" {
		t.Fatalf("misspelt CONNECT: %v", e.Headers)
	}
}

// TestClientThatNeverReads: a subscriber that never reads a backlog far
// larger than its socket buffers, and a producer that never reads its
// receipts, are disconnected once silent for the TTL; nothing crashes and
// another client is served throughout.
func TestClientThatNeverReads(t *testing.T) {
	b := newBroker(t, server.NetOptions{Params: map[string]string{"connectionTtl": "1500"}}, Options{WriteTimeout: 2 * time.Second})
	body := strings.Repeat("x", 64<<10)
	p := connect(t, b.addr)
	for i := 0; i < 400; i++ { // 25 MiB
		p.send("SEND", []string{"destination:big", "receipt:r"}, body)
		p.expect("RECEIPT")
	}
	lazy := connect(t, b.addr)
	lazy.send("SUBSCRIBE", []string{"id:0", "destination:big", "ack:client"}, "")
	// A producer that never reads: it writes until its socket blocks.
	mute := connect(t, b.addr)
	frame := []byte("SEND\ndestination:mute\nreceipt:" + strings.Repeat("r", 4000) + "\n\n\x00")
	go func() { // ends when the broker closes the connection
		for {
			mute.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := mute.nc.Write(frame); err != nil {
				return
			}
		}
	}()
	good := connect(t, b.addr)
	good.send("SUBSCRIBE", []string{"id:0", "destination:g", "receipt:s"}, "")
	good.expect("RECEIPT")
	for i := 0; i < 20; i++ {
		good.send("SEND", []string{"destination:g", "receipt:r"}, "hi")
		good.expect("RECEIPT")
		good.expect("MESSAGE")
	}
	deadline := time.Now().Add(60 * time.Second)
	for b.a.Connections() > 2 { // p and good stay; lazy and mute go
		if time.Now().After(deadline) {
			t.Fatalf("%d connections after 60 s; the stuck clients were not disconnected", b.a.Connections())
		}
		time.Sleep(50 * time.Millisecond)
		p.write("\n") // heart-beats: the TTL applies to them too
		good.write("\n")
	}
	good.send("SEND", []string{"destination:g", "receipt:r"}, "after")
	good.expect("RECEIPT")
	if m := good.expect("MESSAGE"); string(m.Body) != "after" {
		t.Fatalf("good client got %q", m.Body)
	}
	// The lazy subscriber's unread messages are all still there.
	if d := depth(t, b, "big"); d != 400 {
		t.Fatalf("depth %d after the lazy subscriber left, want 400", d)
	}
}

// TestAcceptorCloseSaysWhy: a broker stopping sends an ERROR before
// closing, so a client knows to fail over.
func TestAcceptorCloseSaysWhy(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	c := connect(t, b.addr)
	b.a.Close(wire.CodeShuttingDown, "stopping")
	if e := c.expectError(); e.Value("message") != "broker shutting down" {
		t.Fatalf("ERROR %v", e.Headers)
	}
}

// TestRefuse: a broker that is not live answers CONNECT with an ERROR.
func TestRefuse(t *testing.T) {
	h := New(Options{})
	srv, cl := net.Pipe()
	go func() { // ends with Refuse
		defer srv.Close()
		h.Refuse(srv, bufio.NewReader(srv), "backup: not live")
	}()
	r := &raw{t: t, nc: cl, dec: NewDecoder(bufio.NewReader(cl), Limits{})}
	r.send("CONNECT", []string{"accept-version:1.2", "receipt:c"}, "")
	if e := r.expectError(); e.Value("message") != "backup: not live" {
		t.Fatalf("refusal %v", e.Headers)
	}
}

// TestSelectorAndExpires: a SUBSCRIBE selector delivers only the matching
// messages (the others wait for another subscriber); an expires header
// makes the message expire (one already expired is never delivered) and
// comes back on the MESSAGE.
func TestSelectorAndExpires(t *testing.T) {
	b := newBroker(t, server.NetOptions{}, Options{})
	p := connect(t, b.addr)
	later := time.Now().Add(time.Hour).UnixMilli()
	for _, m := range []struct{ color, expires string }{{"red", ""}, {"blue", ""}, {"red", "1"}, {"red", fmt.Sprint(later)}} {
		h := []string{"destination:q", "persistent:true", "receipt:r", "color:" + m.color}
		if m.expires != "" {
			h = append(h, "expires:"+m.expires)
		}
		p.send("SEND", h, m.color+m.expires)
		p.expect("RECEIPT")
	}
	c := connect(t, b.addr)
	c.send("SUBSCRIBE", []string{"id:s1", "destination:q", "ack:client-individual", "selector:color = 'red'"}, "")
	first, second := c.expect("MESSAGE"), c.expect("MESSAGE")
	if string(first.Body) != "red" || string(second.Body) != "red"+fmt.Sprint(later) || second.Value("expires") != fmt.Sprint(later) {
		t.Fatalf("selected %q %q (expires %q)", first.Body, second.Body, second.Value("expires"))
	}
	o := connect(t, b.addr)
	o.send("SUBSCRIBE", []string{"id:s2", "destination:q", "ack:client-individual"}, "")
	if m := o.expect("MESSAGE"); string(m.Body) != "blue" {
		t.Fatalf("other subscriber got %q", m.Body)
	}
	// The expired one was dropped (no expiry-address), not delivered.
	deadline := time.Now().Add(10 * time.Second)
	for b.s.Stats().Expired != 1 || depth(t, b, "q") != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("expired %d, depth %d; want 1 and 3", b.s.Stats().Expired, depth(t, b, "q"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
