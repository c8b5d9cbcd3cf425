package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/wire"
)

// message returns the message with sequence number seq of stream st. Its
// ID is the duplicate ID of a durable message and the "id" property of a
// non-durable one. The body is shared and read-only.
func (r *runner) message(st *Stream, seq uint64) *client.Message {
	id := st.ID(seq)
	m := &client.Message{Body: r.body}
	if r.cfg.NonDurable {
		m.Properties = []client.Property{wire.StringProp("id", id)}
	} else {
		m.DuplicateID = id
	}
	return m
}

// produce sends stream st's messages on conn and records each send's
// latency (from handing it to the client to its acknowledgement) in h.
// The producer stops at its first failed send.
func (r *runner) produce(ctx context.Context, conn *client.Conn, st *Stream, h *Histogram) {
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		r.sendFailed.Add(1)
		r.fail(fmt.Errorf("producer %s: %w", st.Prefix(), err))
		return
	}
	// The client's window is one larger than ours so that SendAsync never
	// waits inside the client for a slot a callback is about to free.
	opts := []client.ProducerOption{client.Window(r.cfg.Window + 1), client.DuplicatePrefix(st.Prefix())}
	if r.cfg.NonDurable {
		opts = append(opts, client.NonDurable())
	}
	p := sess.CreateProducer(r.cfg.Destination, opts...)
	defer p.Close()
	failed := func(seq uint64, err error) {
		r.sendFailed.Add(1)
		r.fail(fmt.Errorf("send %s: %w", st.ID(seq), err))
	}
	if r.cfg.Window == 1 {
		for seq := uint64(1); seq <= st.n; seq++ {
			m := r.message(st, seq)
			t0 := time.Now()
			err := p.Send(ctx, m)
			if err != nil {
				failed(seq, err)
				return
			}
			d := time.Since(t0)
			h.Record(d)
			if r.tl != nil {
				r.tl.record(d)
			}
			st.Acked(seq)
			r.produced.Add(1)
		}
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
		m := r.message(st, seq)
		t0 := time.Now()
		err := p.SendAsync(ctx, m, func(err error) {
			if err != nil {
				failed(seq, err)
				stop.Store(true)
			} else {
				d := time.Since(t0)
				h.Record(d)
				if r.tl != nil {
					r.tl.record(d)
				}
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
		window <- struct{}{}
	}
}
