package amqp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/tandemmq/tandem/server"
)

// rawClient speaks AMQP frames by hand, to send what no client library
// would.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	fr frameReader
}

func dialRaw(t *testing.T, b *testBroker) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", b.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, nc: nc, fr: frameReader{r: bufio.NewReader(nc), max: 1 << 24}}
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// open sends the AMQP header and open and reads the broker's header and
// open.
func (c *rawClient) open() {
	c.t.Helper()
	c.write(append(headerAMQP[:], appendFrame(nil, frameAMQP, 0, &Open{ContainerID: "raw", MaxFrameSize: 65536}, nil)...))
	if h, err := c.fr.readHeader(); err != nil || h != headerAMQP {
		c.t.Fatalf("header %q, %v", h[:], err)
	}
	if code := c.next(); code != descOpen {
		c.t.Fatalf("first frame 0x%x, want open", code)
	}
}

// next reads frames until a performative and returns its descriptor.
func (c *rawClient) next() uint64 {
	c.t.Helper()
	code, _ := c.nextPerf()
	return code
}

// nextPerf reads frames until a performative and returns its descriptor
// and a decoder positioned after it.
func (c *rawClient) nextPerf() (uint64, *decoder) {
	c.t.Helper()
	for {
		f, err := c.fr.next()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if len(f.body) == 0 {
			continue
		}
		d := newDecoder(f.body)
		code, _ := d.descriptor()
		return code, d
	}
}

// expectClose reads until a close frame and returns its error, then
// expects the connection to end.
func (c *rawClient) expectClose() *Error {
	c.t.Helper()
	for {
		f, err := c.fr.next()
		if err != nil {
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
		if len(f.body) == 0 {
			continue
		}
		d := newDecoder(f.body)
		if code, _ := d.descriptor(); code != descClose {
			continue
		}
		e := decodeErrorOnly(d)
		if _, err := c.fr.next(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			c.t.Fatalf("after close: %v, want the connection closed", err)
		}
		return e
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

// stillServes checks that the broker serves another client.
func stillServes(t *testing.T, b *testBroker) {
	t.Helper()
	s := openSession(t, b.dial(t, nil))
	send(t, sender(t, s, "alive", nil), durable("ping"))
	r := receiver(t, s, "alive", nil)
	m := recv(t, r)
	if err := r.AcceptMessage(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
}

// TestHostileFrames: a wrong header, an oversized frame, bad type codes
// and a performative out of place each get a clear answer and a close;
// the broker goes on serving.
func TestHostileFrames(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	t.Run("wrong header", func(t *testing.T) {
		c := dialRaw(t, b)
		c.write([]byte("GET / HTTP/1.1\r\n\r\n"))
		h, err := c.fr.readHeader()
		if err != nil || h != headerAMQP {
			t.Fatalf("answer %q, %v; want the AMQP 1.0 header", h[:], err)
		}
		if _, err := c.fr.next(); err == nil {
			t.Fatal("connection still open after a wrong header")
		}
	})
	t.Run("oversized frame", func(t *testing.T) {
		c := dialRaw(t, b)
		c.open()
		c.write([]byte{0x7f, 0xff, 0xff, 0xff, 2, 0, 0, 0})
		if e := c.expectClose(); e == nil || e.Condition != ErrFramingError {
			t.Fatalf("close error %v, want %s", e, ErrFramingError)
		}
	})
	t.Run("bad type code", func(t *testing.T) {
		c := dialRaw(t, b)
		c.open()
		c.write(appendFrame(nil, frameAMQP, 0, nil, []byte{codeDescribed, codeSmallUlong, byte(descBegin), 0xee, 1, 2}))
		if e := c.expectClose(); e == nil || e.Condition != ErrDecode {
			t.Fatalf("close error %v, want %s", e, ErrDecode)
		}
	})
	t.Run("huge count", func(t *testing.T) {
		c := dialRaw(t, b)
		c.open()
		body := []byte{codeDescribed, codeSmallUlong, byte(descBegin), codeList32, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, codeArray32, 0}
		c.write(appendFrame(nil, frameAMQP, 0, nil, body))
		if e := c.expectClose(); e == nil || e.Condition != ErrDecode {
			t.Fatalf("close error %v, want %s", e, ErrDecode)
		}
	})
	t.Run("transfer without session", func(t *testing.T) {
		c := dialRaw(t, b)
		c.open()
		c.write(appendFrame(nil, frameAMQP, 7, &Transfer{Handle: 0, DeliveryID: 0, HasDeliveryID: true}, []byte("x")))
		if e := c.expectClose(); e == nil || e.Condition != ErrIllegalState {
			t.Fatalf("close error %v, want %s", e, ErrIllegalState)
		}
	})
	t.Run("garbage after open", func(t *testing.T) {
		c := dialRaw(t, b)
		c.open()
		c.write(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 64))
		if e := c.expectClose(); e == nil || e.Condition != ErrFramingError {
			t.Fatalf("close error %v, want %s", e, ErrFramingError)
		}
	})
	stillServes(t, b)
}

// TestClientNeverReads: a receiver with plenty of credit that never reads
// its socket fills the broker's output for it; the broker closes that
// connection (its messages go back to the queue) and serves others all
// along.
func TestClientNeverReads(t *testing.T) {
	b := newTestBroker(t, server.Options{}, nil)
	b.writeTimeout = time.Second
	s := openSession(t, b.dial(t, nil))
	snd := sender(t, s, "flood", nil)
	body := bytes.Repeat([]byte("z"), 256<<10)
	const n = 64 // 16 MiB: more than the socket buffers hold
	for i := 0; i < n; i++ {
		send(t, snd, &goamqp.Message{Header: &goamqp.MessageHeader{Durable: true}, Data: [][]byte{body}})
	}
	c := dialRaw(t, b)
	c.open()
	c.write(appendFrame(nil, frameAMQP, 0, &Begin{IncomingWindow: 1 << 30, OutgoingWindow: 100}, nil))
	c.write(appendFrame(nil, frameAMQP, 0, &Attach{Name: "r", Handle: 0, Role: roleReceiver, Source: &Terminus{Address: "flood", HasAddress: true}}, nil))
	c.write(appendFrame(nil, frameAMQP, 0, &Flow{IncomingWindow: 1 << 30, OutgoingWindow: 100, HasHandle: true, Handle: 0, LinkCredit: 1000}, nil))
	// Never read. Meanwhile another client works.
	stillServes(t, b)
	// The broker gives up on the stalled connection: the queue's messages
	// are all back for another consumer.
	r := receiver(t, openSession(t, b.dial(t, nil)), "flood", &goamqp.ReceiverOptions{Credit: 10})
	for i := 0; i < n; i++ {
		m := recv(t, r)
		if len(m.GetData()) != len(body) {
			t.Fatalf("message %d has %d bytes", i, len(m.GetData()))
		}
		if err := r.AcceptMessage(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
	}
}
