package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/tandemmq/tandem/client"
)

func (r *runner) openConsumer(ctx context.Context, conn *client.Conn) (*client.Consumer, error) {
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		return nil, err
	}
	return sess.CreateConsumer(ctx, r.cfg.Destination, client.Credit(r.cfg.Credit))
}

// MessageID returns a consumed message's ID: its duplicate ID, else its
// "id" property (both as `tandem producer` and bench send them), else the
// broker's message ID.
func MessageID(m *client.Message) string {
	if m.DuplicateID != "" {
		return m.DuplicateID
	}
	if p, ok := m.Property("id"); ok && p.Str != "" {
		return p.Str
	}
	return strconv.FormatUint(m.ID, 10)
}

// consume receives and acknowledges (pipelined, one ack per message) until
// ctx ends; in phase consume it takes at most Count messages in all. It
// returns once every ack it sent has its outcome.
func (r *runner) consume(ctx context.Context, k *client.Consumer) {
	var inflight sync.WaitGroup
	defer inflight.Wait()
	limit := int64(r.cfg.Count)
	for {
		m, err := k.Receive(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, client.ErrClosed) {
				r.fail(fmt.Errorf("receive: %w", err))
			}
			return
		}
		if r.cfg.Phase == PhaseConsume && r.claimed.Add(1) > limit {
			return // left unacknowledged: the broker keeps it
		}
		id := MessageID(m)
		inflight.Add(1)
		err = k.AckAsync(m, func(err error) {
			defer inflight.Done()
			r.acked(id, err)
		})
		if err != nil {
			inflight.Done()
			if !errors.Is(err, client.ErrStaleDelivery) { // a stale one comes again
				r.ackFailed.Add(1)
				r.fail(fmt.Errorf("ack %s: %w", id, err))
			}
		}
	}
}

// acked records an ack's outcome (on the client's reader goroutine).
func (r *runner) acked(id string, err error) {
	if err != nil {
		r.ackFailed.Add(1)
		r.fail(fmt.Errorf("ack %s: %w", id, err))
		return
	}
	out := r.checker.Consumed(id)
	r.lastAck.Store(r.now())
	if r.tl != nil {
		r.tl.consumed()
	}
	if r.cfg.Phase == PhaseBoth && out != First {
		return // duplicates and foreign messages do not bring completion closer
	}
	if n, t := r.consumed.Add(1), r.target.Load(); t > 0 && n >= t {
		r.poke()
	}
}
