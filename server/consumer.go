package server

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"

	"github.com/tandemmq/tandem/selector"
)

// ErrUnknownDelivery is returned by Ack for a message the consumer does
// not hold (already acked, or taken back when the consumer closed).
var ErrUnknownDelivery = errors.New("server: ack of a message this consumer does not hold")

// ErrClosed is returned by operations on a closed session, consumer or
// server.
var ErrClosed = errors.New("server: closed")

// Delivery is one message handed to a consumer.
type Delivery struct {
	// ConsumerID names the consumer within its session.
	ConsumerID uint64
	// Message is shared and must not be modified.
	Message *Message
	// DeliveryCount is 1 on the first delivery and grows with each
	// redelivery.
	DeliveryCount uint32
}

// Consumer receives messages from one queue as its credit allows.
type Consumer struct {
	id      uint64
	q       *Queue
	sess    *Session
	handler func(Delivery)
	temp    bool               // its queue is a subscription deleted when it closes
	sel     *selector.Selector // nil: every message

	credit int64 // messages it may receive; guarded by q.mu

	mu        sync.Mutex
	delivered map[uint64]*ref // by message ID
	closed    atomic.Bool
}

// ID returns the consumer's ID within its session.
func (c *Consumer) ID() uint64 { return c.id }

// Queue returns the name of the queue it consumes from.
func (c *Consumer) Queue() string { return c.q.name }

// Credit grants n more messages; n < 0 makes the credit unlimited.
func (c *Consumer) Credit(n int) {
	q := c.q
	q.mu.Lock()
	switch {
	case n < 0:
		c.credit = math.MaxInt64
	case c.credit < math.MaxInt64-int64(n):
		c.credit += int64(n)
	}
	q.mu.Unlock()
	q.wake()
}

func (c *Consumer) deliver(r *ref) {
	if c.closed.Load() {
		return // taken back by Close; it is in the queue again
	}
	c.sess.s.ctr.deliveries.Add(1)
	c.handler(Delivery{ConsumerID: c.id, Message: r.msg, DeliveryCount: r.deliveries})
}

// take removes and returns the delivery of message id.
func (c *Consumer) take(id uint64) (*ref, error) {
	c.mu.Lock()
	r, ok := c.delivered[id]
	if ok {
		delete(c.delivered, id)
	}
	c.mu.Unlock()
	if !ok {
		return nil, ErrUnknownDelivery
	}
	c.q.delivering.Add(-1)
	return r, nil
}
