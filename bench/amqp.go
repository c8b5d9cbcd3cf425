package bench

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/amqp"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// ProtocolAMQP runs the shapes over AMQP 1.0 (package amqp's minimal
// client: unsettled sends, accepts in rcv-settle-mode second).
const ProtocolAMQP = "amqp"

// amqpAddr returns host:port of a tcp://host:port or amqp://host:port
// URL.
func amqpAddr(u string) (string, error) {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "tcp" && pu.Scheme != "amqp") || pu.Host == "" {
		return "", fmt.Errorf("%q: --protocol amqp wants tcp://host:port or amqp://host:port", u)
	}
	return pu.Host, nil
}

func (r *runner) dialAMQP(ctx context.Context) (*amqp.Client, error) {
	addr, err := amqpAddr(r.cfg.URL)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return amqp.Dial(dctx, addr, amqp.ClientOptions{User: r.cfg.User, Password: r.cfg.Password})
}

func (r *runner) multicast() bool { return r.cfg.Destination.Routing == wire.RoutingMulticast }

// amqpMessage is message seq of stream st: durable with the ID as
// _AMQ_DUPL_ID, or non-durable with it as the "id" property.
func (r *runner) amqpMessage(st *Stream, seq uint64) *server.Message {
	id := st.ID(seq)
	m := &server.Message{Body: r.body, Durable: !r.cfg.NonDurable}
	if r.cfg.NonDurable {
		m.Properties = []wire.Property{wire.StringProp("id", id)}
	} else {
		m.Properties = []wire.Property{wire.StringProp(amqp.DuplicateIDProperty, id)}
	}
	return m
}

// produceAMQP is produce over AMQP: unsettled sends, at most Window
// unsettled.
func (r *runner) produceAMQP(ctx context.Context, c *amqp.Client, st *Stream, h *Histogram) {
	failed := func(seq uint64, err error) {
		r.sendFailed.Add(1)
		r.fail(fmt.Errorf("send %s: %w", st.ID(seq), err))
	}
	if err := c.OpenSender(ctx, r.cfg.Destination.Name, r.multicast()); err != nil {
		r.sendFailed.Add(1)
		r.fail(fmt.Errorf("producer %s: %w", st.Prefix(), err))
		return
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
		t0 := time.Now()
		err := c.Send(ctx, r.amqpMessage(st, seq), func(err error) {
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
		case <-ctx.Done():
			return
		}
	}
}

// openAMQPConsumer attaches a receiving link with the consumer window as
// its credit.
func (r *runner) openAMQPConsumer(ctx context.Context, c *amqp.Client) (<-chan *amqp.ClientMessage, error) {
	return c.Subscribe(ctx, r.cfg.Destination.Name, r.multicast(), r.cfg.Credit)
}

// consumeAMQP is consume over AMQP: each message accepted, the accept's
// outcome being the broker's settlement once the ack is durable.
func (r *runner) consumeAMQP(ctx context.Context, c *amqp.Client, msgs <-chan *amqp.ClientMessage) {
	var inflight sync.WaitGroup
	defer inflight.Wait()
	limit := int64(r.cfg.Count)
	for {
		var m *amqp.ClientMessage
		var ok bool
		select {
		case m, ok = <-msgs:
		case <-ctx.Done():
			return
		}
		if !ok {
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("receive: %w", c.Err()))
			}
			return
		}
		if r.cfg.Phase == PhaseConsume && r.claimed.Add(1) > limit {
			return
		}
		id := m.DuplicateID()
		inflight.Add(1)
		if err := c.Accept(m, func(err error) {
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
