package bench

import (
	"bufio"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/stomp"
)

// fakeStompPeer is a minimal STOMP 1.2 broker standing in for another
// vendor's (bench/peers.sh): it receipts every frame that asks, hands
// every SEND to the subscriber as a MESSAGE carrying the SEND's headers,
// and records the SEND and SUBSCRIBE frames it got.
type fakeStompPeer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	frames  []*stomp.Frame // SEND and SUBSCRIBE, as received
	sub     func(*stomp.Frame) error
	subID   string
	pending []*stomp.Frame
	nextID  int
}

func startFakeStompPeer(t *testing.T) *fakeStompPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeStompPeer{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.sub = nil
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *fakeStompPeer) serve(nc net.Conn) {
	defer nc.Close()
	var wmu sync.Mutex
	write := func(f *stomp.Frame) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := nc.Write(stomp.AppendFrame(nil, f))
		return err
	}
	dec := stomp.NewDecoder(bufio.NewReader(nc), stomp.Limits{})
	for {
		f, err := dec.Next()
		if err != nil {
			return
		}
		if f == nil {
			continue
		}
		switch f.Command {
		case "CONNECT", "STOMP":
			r := &stomp.Frame{Command: "CONNECTED"}
			r.Set("version", "1.2")
			err = write(r)
		case "SUBSCRIBE":
			p.mu.Lock()
			p.frames = append(p.frames, f)
			p.sub, p.subID = write, f.Value("id")
			pending := p.pending
			p.pending = nil
			p.mu.Unlock()
			for _, m := range pending {
				m.Set("subscription", f.Value("id"))
				err = errors.Join(err, write(m))
			}
		case "SEND":
			m := &stomp.Frame{Command: "MESSAGE", Body: f.Body}
			for _, h := range f.Headers {
				if h.Key != "receipt" {
					m.Headers = append(m.Headers, h)
				}
			}
			p.mu.Lock()
			p.frames = append(p.frames, f)
			p.nextID++
			id := strconv.Itoa(p.nextID)
			m.Set("message-id", id)
			m.Set("ack", id)
			sub, subID := p.sub, p.subID
			if sub == nil {
				p.pending = append(p.pending, m)
			}
			p.mu.Unlock()
			if sub != nil {
				m.Set("subscription", subID)
				if sub(m) != nil {
					return
				}
			}
		}
		if id := f.Value("receipt"); id != "" && err == nil {
			r := &stomp.Frame{Command: "RECEIPT"}
			r.Set("receipt-id", id)
			err = write(r)
		}
		if err != nil || f.Command == "DISCONNECT" {
			return
		}
	}
}

// A STOMP run against another vendor's broker names the destination as
// that broker spells it (--stomp-destination /queue/NAME) and adds the
// headers it needs (--stomp-header x-queue-type:quorum) to every SEND and
// SUBSCRIBE; without them the frames carry the queue's name as Tandem
// takes it.
func TestRunStompPeerDestinationAndHeaders(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dest     string
		headers  []stomp.Header
		wantDest string
	}{
		{"tandem", "", nil, "peer"},
		{"peer", "/queue/peer", []stomp.Header{{Key: "x-queue-type", Value: "quorum"}, {Key: "durable", Value: "true"}}, "/queue/peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startFakeStompPeer(t)
			res := run(t, Config{URL: "tcp://" + p.ln.Addr().String(), Protocol: ProtocolStomp, Destination: client.Queue("peer"),
				StompDestination: tc.dest, StompHeaders: tc.headers, Count: 60, Window: 4, Producers: 2, Size: 10})
			if !res.OK() || res.Produced != 60 || res.Consumed != 60 || *res.Lost != 0 || *res.Duplicated != 0 {
				t.Fatalf("result %+v", res)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			var sends, subs int
			for _, f := range p.frames {
				if f.Command == "SEND" {
					sends++
				} else {
					subs++
				}
				if got := f.Value("destination"); got != tc.wantDest {
					t.Errorf("%s destination %q, want %q", f.Command, got, tc.wantDest)
				}
				for _, h := range tc.headers {
					if got, ok := f.Get(h.Key); !ok || got != h.Value {
						t.Errorf("%s header %s = %q, want %q", f.Command, h.Key, got, h.Value)
					}
				}
				if f.Command == "SEND" && f.Value("persistent") != "true" {
					t.Errorf("SEND without persistent:true: %v", f.Headers)
				}
			}
			if sends != 60 || subs != 1 {
				t.Fatalf("%d SENDs and %d SUBSCRIBEs, want 60 and 1", sends, subs)
			}
		})
	}
}
