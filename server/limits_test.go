package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// waitFor polls cond until it holds; after a generous deadline (a broken
// bound, never a slow machine) it fails with what.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listenSmall is listen with small kernel socket buffers on the broker's
// side (accepted sockets inherit the listener's SO_SNDBUF), so that a
// client that does not read fills them quickly.
func listenSmall(t *testing.T, b *broker, opts NetOptions) *Acceptor {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := b.s.Serve(ln, opts)
	t.Cleanup(func() { a.Close(wire.CodeShuttingDown, "test over") })
	return a
}

// rawHello dials a and sends a Hello; the test never reads from it unless
// it says so. Its receive buffer is small.
func rawHello(t *testing.T, a *Acceptor, clientID string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: smallReceiveBuffer}
	nc, err := d.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	writeFrames(t, nc, &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: clientID})
	return nc
}

func writeFrames(t *testing.T, nc net.Conn, fs ...wire.Frame) {
	t.Helper()
	var b []byte
	for i, f := range fs {
		var err error
		if b, err = wire.AppendFrame(b, uint64(i+1), f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
}

// flood writes Pings to nc until the write fails or stop closes; it never
// reads.
func flood(nc net.Conn, stop <-chan struct{}) {
	var batch []byte
	for i := 1; i <= 4096; i++ {
		batch, _ = wire.AppendFrame(batch, uint64(i), &wire.Ping{})
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		nc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := nc.Write(batch); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return
			}
		}
	}
}

// onlyConn returns the acceptor's one connection.
func onlyConn(t *testing.T, a *Acceptor) *conn {
	t.Helper()
	var c *conn
	waitFor(t, "no connection", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		for x := range a.conns {
			c = x
		}
		return c != nil
	})
	return c
}

// A client that sends Pings as fast as it can and never reads the Pongs:
// once the Pongs queued pass the high water mark the connection stops
// reading, so what is queued stays near the mark (the broker grew to 4 GB).
func TestNeverReadingClientPausesReader(t *testing.T) {
	b := newBroker(t, Options{})
	a := listenSmall(t, b, NetOptions{WriteTimeout: -1})
	nc := rawHello(t, a, "flood")
	c := onlyConn(t, a)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); flood(nc, stop) }()
	defer func() { close(stop); <-done }()
	// Once the kernel's socket buffers are full, the output stays blocked
	// (before, the reader may pause and resume as they fill).
	waitFor(t, "the reader never paused", func() bool { return a.Stats().ReadPauses > 0 && c.out.blocked.Load() })
	// The reader checks before each frame: at most one answer past the mark.
	if q := c.out.queued(); q > DefaultHighWaterMark+64 {
		t.Fatalf("%d bytes queued for a client that does not read, bound %d", q, DefaultHighWaterMark)
	}
}

// A connection whose client takes no byte for the write timeout is closed,
// with a log line and a counter; its deliveries go back to the queue.
func TestWriteTimeoutClosesStuckConnection(t *testing.T) {
	logs := &syncBuffer{}
	b := newBroker(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	a := listenSmall(t, b, NetOptions{WriteTimeout: 200 * time.Millisecond})
	nc := rawHello(t, a, "stuck")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); flood(nc, stop) }()
	defer func() { close(stop); <-done }()
	waitFor(t, "the stuck connection was not closed", func() bool { return a.Stats().WriteTimeouts == 1 && a.Connections() == 0 })
	if !strings.Contains(logs.String(), "closing connection: the client does not read") {
		t.Fatalf("no log line for the write timeout:\n%s", logs)
	}
	// A client that reads, even after a pause, is not cut off.
	c := dial(t, a, "", "")
	c.write(7, &wire.Ping{})
	c.expect(wire.TypePong)
}

// A consumer granting 2^32-1 credit on a queue of 25 MiB that never reads
// its deliveries gets only what the connection can write: its window
// stops being topped up once the output is blocked, so the queue is not
// copied into the connection (550 MB for a 100 MB queue).
func TestHugeCreditConsumerBounded(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	const n, size = 400, 64 << 10
	body := bytes.Repeat([]byte("m"), size)
	for i := 0; i < n; i++ {
		mustSend(t, ss, Destination{Name: "big", Routing: Anycast}, &Message{Body: body})
	}
	a := listenSmall(t, b, NetOptions{WriteTimeout: -1})
	d := net.Dialer{Control: smallReceiveBuffer}
	nc, err := d.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	writeFrames(t, nc, &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: "greedy"},
		&wire.CreateSession{Session: 1},
		&wire.CreateConsumer{Session: 1, Consumer: 1, Queue: "big", Routing: wire.RoutingAnycast, InitialCredit: 1<<32 - 1})
	c := onlyConn(t, a)
	var fl *flow
	waitFor(t, "the consumer's credit was never held back", func() bool {
		c.starveMu.Lock()
		defer c.starveMu.Unlock()
		if len(c.starved) > 0 {
			fl = c.starved[0]
		}
		return fl != nil
	})
	fl.mu.Lock()
	granted, want := fl.granted, fl.want
	fl.mu.Unlock()
	delivered := b.s.Stats().Deliveries
	t.Logf("delivered %d of %d, %d bytes queued, %d credit outstanding, %d held back", delivered, n, c.out.queued(), granted, want)
	if q := c.out.queued(); q > DefaultHighWaterMark+maxWindow*(size+128) {
		t.Fatalf("%d bytes queued for a consumer that does not read", q)
	}
	// The kernel's socket buffers (a few MiB) took some; the rest waits in
	// the queue.
	if delivered >= n/2 {
		t.Fatalf("%d of %d messages delivered to a consumer that does not read", delivered, n)
	}
	if want < 1<<32-1-n {
		t.Fatalf("credit held back %d, want nearly all of 2^32-1", want)
	}
	// Reading resumes the deliveries: all n arrive.
	dec := wire.NewDecoder(nc)
	got := 0
	for got < n {
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		h, err := dec.Next()
		if err != nil {
			t.Fatalf("after %d deliveries: %v", got, err)
		}
		if h.Type == wire.TypeDeliver {
			got++
		}
	}
}

// connectionsAllowed refuses connections over it with an Error frame
// (CodeUnavailable) and a close; the connections already open keep
// working, and a slot freed is used again.
func TestConnectionsAllowed(t *testing.T) {
	logs := &syncBuffer{}
	b := newBroker(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	a := listen(t, b, NetOptions{ConnectionsAllowed: 2})
	c1 := dial(t, a, "", "")
	c2 := dial(t, a, "", "")
	for i := 0; i < 20; i++ {
		c3 := dialRaw(t, a)
		if f := c3.expectClosed(); f == nil || f.(*wire.Error).Code != wire.CodeUnavailable {
			t.Fatalf("connection over the limit: last frame %+v, want Error unavailable", f)
		}
	}
	if got := a.Stats().Refused; got != 20 {
		t.Fatalf("refused %d, want 20", got)
	}
	if n := strings.Count(logs.String(), "connection refused"); n != logBurst {
		t.Fatalf("%d log lines for 20 refusals, want %d (rate-limited)\n%s", n, logBurst, logs)
	}
	c1.write(9, &wire.Ping{})
	c1.expect(wire.TypePong)
	c2.nc.Close()
	waitFor(t, "the closed connection was not forgotten", func() bool { return a.Connections() == 1 })
	c4 := dial(t, a, "", "")
	c4.write(9, &wire.Ping{})
	c4.expect(wire.TypePong)
}

// A ConnectionBudget is shared by the acceptors given it.
func TestConnectionBudgetShared(t *testing.T) {
	b := newBroker(t, Options{})
	budget := NewConnectionBudget(1)
	a1 := listen(t, b, NetOptions{Budget: budget})
	a2 := listen(t, b, NetOptions{Budget: budget})
	dial(t, a1, "", "")
	c := dialRaw(t, a2)
	if f := c.expectClosed(); f == nil || f.(*wire.Error).Code != wire.CodeUnavailable {
		t.Fatalf("second connection of a budget of 1: last frame %+v", f)
	}
}

// The TTL a client asks for is capped by TTLMax (a client could keep an
// idle connection for 49 days).
func TestTTLMax(t *testing.T) {
	b := newBroker(t, Options{})
	for _, tc := range []struct {
		opts NetOptions
		ask  uint32
		want time.Duration
	}{
		{NetOptions{}, 1<<32 - 1, DefaultTTLMax},
		{NetOptions{TTLMax: 2 * time.Second}, 60000, 2 * time.Second},
		{NetOptions{TTLMax: 2 * time.Second}, 1000, time.Second},
		{NetOptions{TTLMax: -1}, 1<<32 - 1, (1<<32 - 1) * time.Millisecond},
		{NetOptions{TTLMax: 2 * time.Second, TTLOverride: 5 * time.Second}, 60000, 5 * time.Second},
	} {
		a := listen(t, b, tc.opts)
		c := dialRaw(t, a)
		c.write(1, &wire.Hello{MinVersion: 1, MaxVersion: 1, ConnectionTTL: tc.ask})
		w := c.expect(wire.TypeWelcome).(*wire.Welcome)
		if got := time.Duration(w.ConnectionTTL) * time.Millisecond; got != tc.want {
			t.Errorf("%+v asking %d ms: TTL %v, want %v", tc.opts, tc.ask, got, tc.want)
		}
	}
}

// A Ping with payload bytes is refused (the format says its payload is
// empty): it was answered with a Pong.
func TestPingWithPayloadRefused(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{})
	c := dial(t, a, "", "")
	ping := binary.BigEndian.AppendUint32(nil, 1+1+8+1+4)
	ping = append(ping, wire.Version, byte(wire.TypePing))
	ping = binary.BigEndian.AppendUint64(ping, 5)
	ping = append(ping, 0xAA) // one payload byte
	ping = binary.BigEndian.AppendUint32(ping, crc32.Checksum(ping, crc32.MakeTable(crc32.Castagnoli)))
	if _, err := c.nc.Write(ping); err != nil {
		t.Fatal(err)
	}
	f := c.expectClosed()
	if e, ok := f.(*wire.Error); !ok || e.Code != wire.CodeProtocol || !strings.Contains(e.Message, "trailing") {
		t.Fatalf("Ping with a payload: last frame %+v, want a protocol Error about trailing bytes", f)
	}
}

// Client-supplied strings are clipped in log lines, and lines about
// rejected connections are rate-limited with a count: a client ID (up to
// 2 MB then) was repeated on every line of its connection, and every
// rejection logged.
func TestRejectionLogsClippedAndRateLimited(t *testing.T) {
	logs := &syncBuffer{}
	b := newBroker(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	a := listen(t, b, NetOptions{})
	a.logs.mu.Lock()
	a.logs.window = 300 * time.Millisecond
	a.logs.mu.Unlock()
	id := strings.Repeat("C", 6<<10)
	const conns = 40
	for i := 0; i < conns; i++ {
		c := dialRaw(t, a)
		c.write(1, &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: id, User: id})
		c.expect(wire.TypeWelcome)
		c.write(2, &wire.Welcome{Version: 1}) // a server frame: protocol error
		c.expectClosed()
	}
	waitFor(t, "the suppressed lines were never counted in the log", func() bool {
		return strings.Contains(logs.String(), fmt.Sprintf("and %d more", conns-logBurst))
	})
	out := logs.String()
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if len(l) > 1024 {
			t.Fatalf("log line of %d bytes: %.200s...", len(l), l)
		}
	}
	if n := strings.Count(out, "protocol error"); n > 2*logBurst+2 {
		t.Fatalf("%d log lines about %d protocol errors:\n%s", n, conns, out)
	}
	if !strings.Contains(out, "client="+strings.Repeat("C", logStringMax)+"...") {
		t.Fatalf("client ID not clipped to %d bytes:\n%.2000s", logStringMax, out)
	}
	if got := a.Stats().LogSuppressed; got < conns-logBurst {
		t.Fatalf("suppressed lines counted %d, want at least %d", got, conns-logBurst)
	}
}

// The limiter logs burst lines per window and kind, then the count of the
// rest once the window ends.
func TestLogLimiter(t *testing.T) {
	logs := &syncBuffer{}
	lg := slog.New(slog.NewTextHandler(logs, nil))
	l := newLogLimiter()
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	defer l.stop()
	for i := 0; i < 12; i++ {
		l.log(lg, slog.LevelWarn, "a", "refused", "i", i)
	}
	l.log(lg, slog.LevelWarn, "b", "other")
	if n := strings.Count(logs.String(), "refused"); n != logBurst {
		t.Fatalf("%d lines logged in a window, want %d", n, logBurst)
	}
	now = now.Add(logWindow)
	l.log(lg, slog.LevelWarn, "a", "refused", "i", 12)
	out := logs.String()
	if !strings.Contains(out, "refused: and 7 more in the last 10s") || !strings.Contains(out, "i=12") || !strings.Contains(out, "other") {
		t.Fatalf("log:\n%s", out)
	}
}

func TestClip(t *testing.T) {
	if clip("short") != "short" {
		t.Fatal("short string changed")
	}
	long := strings.Repeat("é", 100) // 2 bytes each: a cut inside one is moved back
	got := clip(long)
	if len(got) > logStringMax+3 || !strings.HasSuffix(got, "...") || !strings.HasPrefix(long, strings.TrimSuffix(got, "...")) {
		t.Fatalf("clip: %q", got)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// smallReceiveBuffer is a Dialer.Control that shrinks the socket's
// receive buffer, so little of what the broker writes hides in the kernel.
func smallReceiveBuffer(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	return errors.Join(err, serr)
}

// Before the handshake a connection may send no frame over MaxHelloSize:
// a 2 MB Hello is refused from its length.
func TestHelloSizeLimit(t *testing.T) {
	b := newBroker(t, Options{})
	a := listen(t, b, NetOptions{})
	c := dialRaw(t, a)
	c.write(1, &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: strings.Repeat("I", 2<<20)})
	f := c.expectClosed()
	if e, ok := f.(*wire.Error); !ok || e.Code != wire.CodeProtocol || !strings.Contains(e.Message, "limit") {
		t.Fatalf("a 2 MB Hello: last frame %+v, want a protocol Error about the limit", f)
	}
	// After the handshake, frames up to wire.MaxFrameSize are read.
	c2 := dial(t, a, "", "")
	if code := c2.call(&wire.CreateSession{Session: 1}); code != wire.CodeOK {
		t.Fatal(code)
	}
	c2.write(2, &wire.Send{Session: 1, Message: wire.Message{Address: "q", Body: bytes.Repeat([]byte("b"), wire.MaxBodySize)}})
	if r := c2.expect(wire.TypeSendResult).(*wire.SendResult); r.Code != wire.CodeOK {
		t.Fatalf("a maximal send after the handshake: %+v", r)
	}
}

// ttlProto records the TTLs its connections are given and echoes lines.
type ttlProto struct {
	echoProto
	got chan ProtocolConn
}

func (p ttlProto) Serve(ctx context.Context, c ProtocolConn) {
	p.got <- c
	p.echoProto.Serve(ctx, c)
}

// Connections of other protocols (STOMP, AMQP) count against
// connectionsAllowed and the broker-wide budget like Tandem's own, free
// their slot when they end, and are given the TTL cap for the TTL their
// clients choose.
func TestProtocolConnectionsUnderLimits(t *testing.T) {
	b := newBroker(t, Options{})
	p := ttlProto{echoProto{"ECHO", "ECHO"}, make(chan ProtocolConn, 4)}
	b.s.RegisterProtocol(p)
	budget := NewConnectionBudget(2)
	a := listen(t, b, NetOptions{ConnectionsAllowed: 1, Budget: budget, TTLMax: 3 * time.Second})
	other := listen(t, b, NetOptions{Budget: budget})

	nc, br := dialLine(t, a, "ECHO one\n")
	if l, err := br.ReadString('\n'); err != nil || l != "ECHO one\n" {
		t.Fatalf("echo: %q, %v", l, err)
	}
	if pc := <-p.got; pc.TTLMax != 3*time.Second {
		t.Fatalf("the handler got TTLMax %v, want 3s", pc.TTLMax)
	}
	// The acceptor's one slot is taken: a second connection, of either
	// protocol, is refused.
	for _, first := range []string{"ECHO two\n", "\x00"} {
		_, br2 := dialLine(t, a, first)
		expectRefused(t, br2, "two")
	}
	if got := a.Stats().Refused; got != 2 {
		t.Fatalf("refused %d, want 2", got)
	}
	// The budget of 2 has one left: the other acceptor takes one protocol
	// connection, then refuses.
	_, br3 := dialLine(t, other, "ECHO three\n")
	if l, err := br3.ReadString('\n'); err != nil || l != "ECHO three\n" {
		t.Fatalf("echo on the other acceptor: %q, %v", l, err)
	}
	<-p.got
	_, br4 := dialLine(t, other, "ECHO four\n")
	expectRefused(t, br4, "four")
	// A protocol connection that ends frees its slot.
	nc.Close()
	waitFor(t, "the ended protocol connection kept its slot", func() bool { return a.Connections() == 0 })
	_, br5 := dialLine(t, a, "ECHO five\n")
	if l, err := br5.ReadString('\n'); err != nil || l != "ECHO five\n" {
		t.Fatalf("echo after a slot was freed: %q, %v", l, err)
	}
}

// expectRefused reads a refused connection to its end (a close, or a
// reset when the broker closed it with the client's bytes unread) and
// fails if it was served (its echo came back).
func expectRefused(t *testing.T, r io.Reader, echo string) {
	t.Helper()
	rest, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("refused connection: %v", err)
	}
	if bytes.Contains(rest, []byte(echo)) {
		t.Fatalf("a connection over the limit was served: %q", rest)
	}
}

// A replication connection is handed to its handler with every byte the
// connection's decoder received after Hello: a replica that pipelines its
// registration behind its Hello (in one write) loses nothing, whether the
// acceptor detected the protocol first or not.
func TestReplicaHandOffKeepsPipelinedBytes(t *testing.T) {
	for _, detect := range []bool{false, true} {
		t.Run(fmt.Sprintf("detect=%v", detect), func(t *testing.T) {
			b := newBroker(t, Options{})
			if detect {
				b.s.RegisterProtocol(echoProto{"ECHO", "ECHO"})
			}
			type handed struct {
				f   wire.Frame
				err error
			}
			got := make(chan handed, 1)
			b.s.SetReplicaHandler(&ReplicaHandler{User: "cluster", Password: "secret",
				Serve: func(nc net.Conn, r *bufio.Reader, hello *wire.Hello, corr uint64) {
					_, f, err := wire.NewDecoder(r).Read()
					if err == nil {
						var w []byte
						w, err = wire.AppendFrame(nil, corr, &wire.Welcome{Version: 1, NodeID: "live"})
						if err == nil {
							_, err = nc.Write(w)
						}
					}
					got <- handed{f, err}
				}})
			a := listen(t, b, NetOptions{})
			nc, err := net.Dial("tcp", a.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			var enc wire.Encoder
			enc.Encode(7, &wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: wire.ReplicaClientID, User: "cluster", Password: "secret"})
			enc.Encode(0, &wire.ReplicaRegister{URL: "tcp://replica:1"})
			if _, err := nc.Write(enc.Bytes()); err != nil {
				t.Fatal(err)
			}
			var h handed
			select {
			case h = <-got:
			case <-time.After(30 * time.Second):
				t.Fatal("the handler never read the frame pipelined behind Hello")
			}
			if h.err != nil {
				t.Fatal(h.err)
			}
			if r, ok := h.f.(*wire.ReplicaRegister); !ok || r.URL != "tcp://replica:1" {
				t.Fatalf("the handler read %#v, want the ReplicaRegister", h.f)
			}
			nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			hdr, f, err := wire.NewDecoder(nc).Read()
			if err != nil || hdr.Corr != 7 || f.Type() != wire.TypeWelcome {
				t.Fatalf("answer: %v %v %v", hdr, f, err)
			}
			waitFor(t, "the handed-off connection still counts", func() bool { return a.Connections() == 0 })
		})
	}
}
