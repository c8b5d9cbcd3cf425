package client

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// Protocol edge cases the real broker never produces, against a scripted
// fake: each test's script gets the accepted connection and the client's
// Hello.

func fakeServer(t *testing.T, script func(nc net.Conn, dec *wire.Decoder)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		dec := wire.NewDecoder(nc)
		if _, err := dec.Next(); err != nil {
			return
		}
		script(nc, dec)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "tcp://" + ln.Addr().String()
}

func write(nc net.Conn, corr uint64, f wire.Frame) {
	b, _ := wire.AppendFrame(nil, corr, f)
	nc.Write(b)
}

func welcome(nc net.Conn) {
	write(nc, 0, &wire.Welcome{Version: 1, NodeID: "fake", ConnectionTTL: 60000})
}

func TestHandshakeRefused(t *testing.T) {
	tests := []struct {
		name string
		send func(nc net.Conn)
		code wire.Code
	}{
		{"unsupported version", func(nc net.Conn) { write(nc, 0, &wire.Error{Code: wire.CodeUnsupportedVersion, Message: "v9 only"}) }, wire.CodeUnsupportedVersion},
		{"unavailable", func(nc net.Conn) { write(nc, 0, &wire.Error{Code: wire.CodeUnavailable}) }, wire.CodeUnavailable},
		{"not a welcome", func(nc net.Conn) { write(nc, 0, &wire.Pong{}) }, 0},
		{"garbage", func(nc net.Conn) { nc.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := fakeServer(t, func(nc net.Conn, _ *wire.Decoder) { tt.send(nc) })
			_, err := Dial(testCtx(t), url)
			if err == nil {
				t.Fatal("dial succeeded")
			}
			var se *ServerError
			if tt.code != 0 && (!errors.As(err, &se) || se.Code != tt.code) {
				t.Fatalf("got %v, want code %v", err, tt.code)
			}
		})
	}
}

// A frame with a bad CRC from the broker ends the connection with a
// FrameError; calls in flight get an error, nothing panics.
func TestCorruptFrameFromBroker(t *testing.T) {
	url := fakeServer(t, func(nc net.Conn, dec *wire.Decoder) {
		welcome(nc)
		h, err := dec.Next() // CreateSession
		if err != nil {
			return
		}
		b, _ := wire.AppendFrame(nil, h.Corr, &wire.Result{})
		b[len(b)-1] ^= 1
		nc.Write(b)
		time.Sleep(time.Second)
	})
	events := make(chan Event, 4)
	c, err := Dial(testCtx(t), url, WithFailureListener(func(e Event) { events <- e }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.CreateSession(testCtx(t))
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("create session: %v, want ErrClosed", err)
	}
	e := <-events
	var fe *wire.FrameError
	if e.Kind != EventFailed || !errors.As(e.Err, &fe) {
		t.Fatalf("event %v %v, want failed with a FrameError", e.Kind, e.Err)
	}
}

// A broker that goes silent is declared dead after the check period; an
// in-flight durable send then has an unknown outcome.
func TestSilentBrokerDetected(t *testing.T) {
	url := fakeServer(t, func(nc net.Conn, dec *wire.Decoder) {
		welcome(nc)
		for {
			h, err := dec.Next()
			if err != nil {
				return
			}
			if h.Type == wire.TypeCreateSession {
				write(nc, h.Corr, &wire.Result{})
			}
			// everything else (Ping, Send) is swallowed
		}
	})
	c, err := Dial(testCtx(t), url+"?clientFailureCheckPeriod=300")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := session(t, c)
	start := time.Now()
	err = s.CreateProducer(Queue("q")).Send(testCtx(t), &Message{Body: []byte("x")})
	if !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("send: %v, want ErrUnknownOutcome", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("detected after %v", el)
	}
}

// A broker that answers a send with CodeUnavailable (it lost its lease) is
// left; the send is resent on the next broker and succeeds there.
func TestUnavailableAnswerFailsOver(t *testing.T) {
	b := newTestBroker(t)
	fake := fakeServer(t, func(nc net.Conn, dec *wire.Decoder) {
		welcome(nc)
		for {
			h, err := dec.Next()
			if err != nil {
				return
			}
			switch h.Type {
			case wire.TypeCreateSession:
				write(nc, h.Corr, &wire.Result{})
			case wire.TypeSend:
				write(nc, h.Corr, &wire.SendResult{Code: wire.CodeUnavailable, Message: "lease lost"})
			}
		}
	})
	url := "(" + fake + "," + b.url() + ")?ha=true&retryInterval=10"
	c := dial(t, url)
	s := session(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.CreateProducer(Queue("ua")).Send(ctx, &Message{Body: []byte("moved")}); err != nil {
		t.Fatal(err)
	}
	if c.Addr() != b.addr {
		t.Fatalf("connected to %s, want %s", c.Addr(), b.addr)
	}
	k := consumer(t, session(t, c), Queue("ua"))
	if got := receiveN(t, k, 1); got[0] != "moved" {
		t.Fatalf("got %v", got)
	}
}

// A broker from an older epoch than the client already saw is refused.
func TestStaleEpochRefused(t *testing.T) {
	url := fakeServer(t, func(nc net.Conn, _ *wire.Decoder) {
		write(nc, 0, &wire.Welcome{Version: 1, NodeID: "old", Topology: wire.Topology{Epoch: 3}})
	})
	c := &Conn{url: &URL{CallTimeout: time.Second}, topology: wire.Topology{Epoch: 5}}
	addr := url[len("tcp://"):]
	_, err := c.connect(testCtx(t), addr)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != wire.CodeUnavailable {
		t.Fatalf("got %v, want a refusal for the older epoch", err)
	}
}

// A broker that stops reading (a SIGSTOPped process) makes the client's
// writes block; the heartbeat check must still declare it dead and end
// the sends in flight with ErrUnknownOutcome.
func TestStoppedBrokerWithBlockedWrites(t *testing.T) {
	stop := make(chan struct{})
	url := fakeServer(t, func(nc net.Conn, dec *wire.Decoder) {
		welcome(nc)
		if h, err := dec.Next(); err == nil && h.Type == wire.TypeCreateSession {
			write(nc, h.Corr, &wire.Result{})
		}
		<-stop // read nothing more
	})
	defer close(stop)
	c, err := Dial(testCtx(t), url+"?clientFailureCheckPeriod=300&minLargeMessageSize=1048576")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := session(t, c).CreateProducer(Queue("q"), Window(64))
	body := make([]byte, wire.MaxBodySize)
	results := make(chan error, 64)
	ctx := testCtx(t)
	sent := 0
	for i := 0; i < 64; i++ {
		err := p.SendAsync(ctx, &Message{Body: body}, func(err error) { results <- err })
		if errors.Is(err, ErrClosed) {
			break // declared dead while this goroutine was blocked writing
		}
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		sent++
	}
	if sent == 0 {
		t.Fatal("no send accepted")
	}
	for i := 0; i < sent; i++ {
		select {
		case err := <-results:
			if !errors.Is(err, ErrUnknownOutcome) {
				t.Fatalf("send result %v, want ErrUnknownOutcome", err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d sends ended", i, sent)
		}
	}
}
