package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/stomp"
	"github.com/tandemmq/tandem/wire"
)

// Protocols `tandem bench --protocol` runs over.
const (
	ProtocolTandem = "tandem"
	ProtocolStomp  = "stomp"
)

// stompAddr returns host:port of a tcp://host:port URL (STOMP runs on the
// broker's acceptor; no failover list).
func stompAddr(u string) (string, error) {
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "tcp" || pu.Host == "" {
		return "", fmt.Errorf("%q: --protocol stomp wants tcp://host:port", u)
	}
	return pu.Host, nil
}

func (r *runner) dialStomp(ctx context.Context) (*stomp.Client, error) {
	addr, err := stompAddr(r.cfg.URL)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return stomp.Dial(dctx, addr, stomp.ClientOptions{Login: r.cfg.User, Passcode: r.cfg.Password})
}

// routingHeader is the destination's routing for STOMP.
func (r *runner) routingHeader(name string) stomp.Header {
	v := "ANYCAST"
	if r.cfg.Destination.Routing == wire.RoutingMulticast {
		v = "MULTICAST"
	}
	return stomp.Header{Key: name, Value: v}
}

// stompMessage is message seq of stream st as a SEND: persistent with the
// ID as _AMQ_DUPL_ID, or non-persistent with it as the "id" header.
func (r *runner) stompMessage(st *Stream, seq uint64) *stomp.Frame {
	id := st.ID(seq)
	hs := []stomp.Header{r.routingHeader("destination-type")}
	if r.cfg.NonDurable {
		hs = append(hs, stomp.Header{Key: "id", Value: id})
	} else {
		hs = append(hs, stomp.Header{Key: "persistent", Value: "true"}, stomp.Header{Key: "_AMQ_DUPL_ID", Value: id})
	}
	return stomp.SendFrame(r.cfg.Destination.Name, r.body, hs...)
}

// produceStomp is produce over STOMP: each send carries a receipt, at
// most Window unanswered.
func (r *runner) produceStomp(ctx context.Context, c *stomp.Client, st *Stream, h *Histogram) {
	failed := func(seq uint64, err error) {
		r.sendFailed.Add(1)
		r.fail(fmt.Errorf("send %s: %w", st.ID(seq), err))
	}
	window := make(chan struct{}, r.cfg.Window)
	var stop atomic.Bool
	for seq := uint64(1); seq <= st.n && !stop.Load(); seq++ {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			stop.Store(true)
			continue
		}
		f := r.stompMessage(st, seq)
		t0 := time.Now()
		err := c.Request(f, func(err error) {
			if err != nil {
				failed(seq, err)
				stop.Store(true)
			} else {
				h.Record(time.Since(t0))
				st.Acked(seq)
				r.produced.Add(1)
			}
			<-window
		})
		if err != nil {
			<-window
			failed(seq, err)
			break
		}
	}
	for range r.cfg.Window { // every callback has run
		select {
		case window <- struct{}{}:
		case <-c.Done():
			return
		}
	}
}

// openStompConsumer subscribes with client-individual acks.
func (r *runner) openStompConsumer(ctx context.Context, c *stomp.Client) (<-chan *stomp.Frame, error) {
	return c.Subscribe(ctx, r.cfg.Destination.Name, "0", "client-individual", r.routingHeader("subscription-type"))
}

// stompMessageID is a received MESSAGE's ID (see MessageID).
func stompMessageID(m *stomp.Frame) string {
	if v := m.Value("_AMQ_DUPL_ID"); v != "" {
		return v
	}
	if v := m.Value("id"); v != "" {
		return v
	}
	return m.Value("message-id")
}

// consumeStomp is consume over STOMP: each message acked with a receipt.
func (r *runner) consumeStomp(ctx context.Context, c *stomp.Client, msgs <-chan *stomp.Frame) {
	var inflight sync.WaitGroup
	defer inflight.Wait()
	limit := int64(r.cfg.Count)
	for {
		var m *stomp.Frame
		var ok bool
		select {
		case m, ok = <-msgs:
		case <-ctx.Done():
			return
		}
		if !ok {
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("receive: %w", errors.Join(stomp.ErrClientClosed, c.Err())))
			}
			return
		}
		if r.cfg.Phase == PhaseConsume && r.claimed.Add(1) > limit {
			return
		}
		id := stompMessageID(m)
		inflight.Add(1)
		if err := c.Ack(m, func(err error) {
			defer inflight.Done()
			r.acked(id, err)
		}); err != nil {
			inflight.Done()
			r.ackFailed.Add(1)
			r.fail(fmt.Errorf("ack %s: %w", id, err))
			return
		}
	}
}
