package stomp

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// broker is an in-process server on memory journals with one acceptor
// serving STOMP (and CORE), restartable on the same stores.
type broker struct {
	t      testing.TB
	ms, bs *journal.MemoryStore
	mj, bj *journal.Memory
	s      *server.Server
	a      *server.Acceptor
	net    server.NetOptions
	hopts  Options
	addr   string
	// largeDir, when set, holds paging and large-messages journals
	// (newLargeBroker), opened at each start.
	largeDir string
	pj, lj   *journal.FileJournal
}

// newLargeBroker is newBroker with paging and large-messages journals
// (2 MiB segments) in a directory of the test's.
func newLargeBroker(t testing.TB) *broker {
	t.Helper()
	b := &broker{t: t, ms: journal.NewMemoryStore(), bs: journal.NewMemoryStore(), addr: "127.0.0.1:0", largeDir: t.TempDir()}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func newBroker(t testing.TB, netOpts server.NetOptions, hopts Options) *broker {
	t.Helper()
	b := &broker{t: t, ms: journal.NewMemoryStore(), bs: journal.NewMemoryStore(), net: netOpts, hopts: hopts, addr: "127.0.0.1:0"}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) start() {
	b.t.Helper()
	b.mj, b.bj = b.ms.Open(), b.bs.Open()
	o := server.Options{Messages: b.mj, Bindings: b.bj, Logger: slog.New(slog.DiscardHandler)}
	if b.largeDir != "" {
		var err error
		if b.pj, err = journal.Open(journal.Options{Dir: filepath.Join(b.largeDir, "paging"), Log: true, SegmentSize: 1 << 20,
			Prefix: journal.PagePrefix, Ext: journal.PageExt, Logger: o.Logger}); err != nil {
			b.t.Fatal(err)
		}
		if b.lj, err = journal.Open(journal.Options{Dir: filepath.Join(b.largeDir, "large"), Log: true, SegmentSize: 2 << 20,
			Prefix: journal.LargePrefix, Ext: journal.LargeExt, MaxPending: 8 << 20, Logger: o.Logger}); err != nil {
			b.t.Fatal(err)
		}
		o.Pages, o.Large = b.pj, b.lj
	}
	b.s = server.New(o)
	if err := b.s.Start(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	b.s.RegisterProtocol(New(b.hopts))
	a, err := b.s.Listen(b.addr, b.net)
	if err != nil {
		b.t.Fatal(err)
	}
	b.a = a
	b.addr = a.Addr().String()
}

func (b *broker) stop() {
	if b.s == nil {
		return
	}
	b.a.Close(wire.CodeShuttingDown, "test over")
	b.s.Close()
	b.mj.Close()
	b.bj.Close()
	if b.pj != nil {
		b.pj.Close()
		b.lj.Close()
		b.pj, b.lj = nil, nil
	}
	b.s = nil
}

func (b *broker) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

// raw is a STOMP connection driven frame by frame.
type raw struct {
	t   testing.TB
	nc  net.Conn
	dec *Decoder
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &raw{t: t, nc: nc, dec: NewDecoder(bufio.NewReader(nc), Limits{MaxBody: 4 << 20})}
}

// connect dials and completes CONNECT with the given extra headers.
func connect(t testing.TB, addr string, headers ...string) *raw {
	t.Helper()
	r := dialRaw(t, addr)
	r.send("CONNECT", append([]string{"accept-version:1.2", "host:/"}, headers...), "")
	if f := r.next(); f.Command != "CONNECTED" {
		t.Fatalf("CONNECT answered %s %v %q", f.Command, f.Headers, f.Body)
	}
	return r
}

func (r *raw) write(s string) {
	r.t.Helper()
	if _, err := r.nc.Write([]byte(s)); err != nil {
		r.t.Fatal(err)
	}
}

// send writes a frame: headers as "k:v" (already escaped), body as is.
func (r *raw) send(cmd string, headers []string, body string) {
	r.t.Helper()
	var sb strings.Builder
	sb.WriteString(cmd + "\n")
	for _, h := range headers {
		sb.WriteString(h + "\n")
	}
	sb.WriteString("\n" + body + "\x00")
	r.write(sb.String())
}

// next returns the next frame (heart-beats skipped) within 10 s.
func (r *raw) next() *Frame {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := r.dec.Next()
		if err != nil {
			r.t.Fatalf("reading a frame: %v", err)
		}
		if f != nil {
			return f
		}
	}
}

// expect returns the next frame, which must be cmd.
func (r *raw) expect(cmd string) *Frame {
	r.t.Helper()
	f := r.next()
	if f.Command != cmd {
		r.t.Fatalf("got %s %v %q, want %s", f.Command, f.Headers, f.Body, cmd)
	}
	return f
}

// expectError returns the ERROR frame that must come next, and checks
// that the broker closes the connection after it.
func (r *raw) expectError() *Frame {
	r.t.Helper()
	f := r.expect("ERROR")
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		g, err := r.dec.Next()
		if err != nil {
			return f
		}
		if g != nil {
			r.t.Fatalf("frame %s after ERROR", g.Command)
		}
	}
}

// closed reports whether the broker closed the connection (reading
// within d; frames are skipped).
func (r *raw) closed(d time.Duration) bool {
	r.nc.SetReadDeadline(time.Now().Add(d))
	for {
		_, err := r.dec.Next()
		if err != nil {
			ne, ok := err.(net.Error)
			return !ok || !ne.Timeout()
		}
	}
}

// sendDurable sends n persistent messages with receipts to dest and
// waits for every RECEIPT.
func (r *raw) sendDurable(dest string, n int, prefix string) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		r.send("SEND", []string{"destination:" + dest, "persistent:true", fmt.Sprintf("receipt:r%d", i)}, fmt.Sprintf("%s%d", prefix, i))
	}
	for i := 0; i < n; i++ {
		f := r.expect("RECEIPT")
		if f.Value("receipt-id") != fmt.Sprintf("r%d", i) {
			r.t.Fatalf("receipt %q, want r%d", f.Value("receipt-id"), i)
		}
	}
}
