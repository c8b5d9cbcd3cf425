package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tandemmq/tandem/wire"
)

// ConsumerOption configures CreateConsumer.
type ConsumerOption func(*Consumer)

// Credit sets the consumer's window: how many messages the broker may send
// ahead of Receive (default 1000). More credit is granted as the
// application takes messages, in batches of half the window.
func Credit(n int) ConsumerOption {
	return func(k *Consumer) {
		if n > 0 {
			k.window = n
		}
	}
}

// NoAutoCreate asks the broker not to create a missing queue.
func NoAutoCreate() ConsumerOption { return func(k *Consumer) { k.autoCreate = false } }

// QueueName reads from the named queue of the destination's address (for
// a topic: a named subscription queue; without it the broker creates a
// temporary one).
func QueueName(name string) ConsumerOption { return func(k *Consumer) { k.queueName = name } }

// Selector makes the consumer receive only the messages the selector
// matches (Artemis's SQL-92 subset, e.g. "color = 'red' AND size > 10");
// the others stay in the queue for other consumers. A selector that does
// not parse fails CreateConsumer with CodeInvalid.
func Selector(s string) ConsumerOption { return func(k *Consumer) { k.selector = s } }

// DurableQueue makes an auto-created queue durable (default true for
// queues, false for topic subscriptions).
func DurableQueue(durable bool) ConsumerOption { return func(k *Consumer) { k.durable = durable } }

// ackOp is one acknowledgement waiting for the broker's confirmation.
type ackOp struct {
	msg *Message
	cb  func(error)
}

func (a ackOp) done(err error) {
	if a.cb != nil {
		a.cb(err)
	}
}

// Consumer receives messages from a queue with credit-based flow control.
// Acks are pipelined: AckAsync returns at once and many acks travel in one
// frame; the broker confirms them once durable.
type Consumer struct {
	s          *Session
	id         uint64
	dest       Destination
	queueName  string
	window     int
	autoCreate bool
	durable    bool
	selector   string

	mu       sync.Mutex
	t        *transport // the connection it lives on
	gen      uint64
	queue    string // the queue the broker reads for it
	buf      []*Message
	head     int
	notify   chan struct{}
	taken    int // messages handed out since the last Credit
	closed   bool
	closeErr error
	ackOps   []ackOp // acks not yet encoded
	ctx      context.Context
	cancel   context.CancelFunc
	lwg      sync.WaitGroup
}

// CreateConsumer opens a consumer on dest (a queue, or a topic
// subscription).
func (s *Session) CreateConsumer(ctx context.Context, dest Destination, opts ...ConsumerOption) (*Consumer, error) {
	k := &Consumer{s: s, id: s.c.nextID(), dest: dest, window: 1000, autoCreate: true,
		durable: dest.Routing != wire.RoutingMulticast, notify: make(chan struct{}, 1)}
	for _, o := range opts {
		o(k)
	}
	if dest.Routing == wire.RoutingMulticast && k.queueName == "" {
		k.durable = false
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	c := s.c
	// Register first so deliveries find it and a failover re-creates it.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.consumers[k.id] = k
	s.mu.Unlock()
	c.cmu.Lock()
	c.consumers[k.id] = k
	c.cmu.Unlock()
	// bind to the transport each attempt goes out on, so its deliveries
	// are accepted (a failover meanwhile retries on the new connection)
	resp, err := c.requestOn(ctx, "create consumer", k.createFrame(), lostRetry, func(t *transport) { k.bindTo(t) })
	if err == nil {
		if cc, ok := resp.(*wire.ConsumerCreated); ok {
			err = serverError("create consumer", cc.Code, cc.Message)
			var se *ServerError
			if errors.As(err, &se) && se.Code == wire.CodeExists {
				err = nil // a failover meanwhile re-created it (IDs are never reused)
			} else if err == nil {
				k.mu.Lock()
				k.queue = cc.Queue
				k.mu.Unlock()
			}
		}
	}
	if err != nil {
		k.unregister()
		k.closeWith(err)
		return nil, err
	}
	return k, nil
}

// bindTo binds a consumer being created to t unless it already is (a
// failover may have re-created it there and deliveries may be buffered).
func (k *Consumer) bindTo(t *transport) {
	k.mu.Lock()
	same := k.t == t
	k.mu.Unlock()
	if !same {
		k.rebind(t)
	}
}

func (k *Consumer) createFrame() *wire.CreateConsumer {
	q := k.queueName
	if q == "" && k.dest.Routing != wire.RoutingMulticast {
		q = k.dest.Name
	}
	return &wire.CreateConsumer{
		Session: k.s.id, Consumer: k.id, Queue: q, Address: k.dest.Name, Routing: k.dest.Routing,
		AutoCreate: k.autoCreate, Durable: k.durable, Filter: k.selector, InitialCredit: uint32(k.window),
	}
}

// rebind moves the consumer to transport t: buffered messages from the old
// connection are dropped (the broker redelivers them), credit restarts at
// the window. It returns acks that were never sent.
func (k *Consumer) rebind(t *transport) []ackOp {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.t, k.gen = t, t.gen
	clear(k.buf)
	k.buf, k.head, k.taken = k.buf[:0], 0, 0
	stale := k.ackOps
	k.ackOps = nil
	return stale
}

func (k *Consumer) unregister() {
	k.s.mu.Lock()
	delete(k.s.consumers, k.id)
	k.s.mu.Unlock()
	k.s.c.cmu.Lock()
	delete(k.s.c.consumers, k.id)
	k.s.c.cmu.Unlock()
}

// closeWith ends Receive with err; acks not yet sent are reported stale.
func (k *Consumer) closeWith(err error) {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed, k.closeErr = true, err
	clear(k.buf)
	k.buf, k.head = nil, 0
	stale := k.ackOps
	k.ackOps = nil
	k.mu.Unlock()
	k.cancel()
	for _, a := range stale {
		a.done(ErrStaleDelivery)
	}
	select {
	case k.notify <- struct{}{}:
	default:
	}
}

// push is called by the reader with a delivery.
func (k *Consumer) push(m *Message) {
	k.mu.Lock()
	if k.closed || m.gen != k.gen {
		k.mu.Unlock()
		return
	}
	k.buf = append(k.buf, m)
	k.mu.Unlock()
	select {
	case k.notify <- struct{}{}:
	default:
	}
}

// Queue returns the name of the queue the consumer reads.
func (k *Consumer) Queue() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.queue
}

// Receive returns the next message, waiting for one until ctx ends.
func (k *Consumer) Receive(ctx context.Context) (*Message, error) {
	for {
		k.mu.Lock()
		if k.closed {
			err := k.closeErr
			k.mu.Unlock()
			return nil, err
		}
		if k.head < len(k.buf) {
			m := k.buf[k.head]
			k.buf[k.head] = nil
			k.head++
			if k.head == len(k.buf) {
				k.buf, k.head = k.buf[:0], 0
			}
			var grant uint32
			k.taken++
			if k.taken >= max(k.window/2, 1) {
				grant, k.taken = uint32(k.taken), 0
			}
			t := k.t
			k.mu.Unlock()
			if grant > 0 {
				_ = t.send(0, &wire.Credit{Consumer: k.id, N: grant}, nil)
			}
			return m, nil
		}
		k.mu.Unlock()
		select {
		case <-k.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Listen calls fn with every message, in order, on one goroutine owned by
// the consumer, until the consumer closes. Use it instead of Receive, not
// with it.
func (k *Consumer) Listen(fn func(*Message)) {
	k.lwg.Add(1)
	go func() {
		defer k.lwg.Done()
		for {
			m, err := k.Receive(k.ctx)
			if err != nil {
				return
			}
			fn(m)
		}
	}()
}

// AckAsync acknowledges m without waiting; done (may be nil) runs on the
// client's reader goroutine once the broker confirmed the ack durable
// (nil), refused it (*ServerError), or the connection was lost first
// (ErrUnknownOutcome: it may or may not have been applied). Acks are
// batched: every ack queued while the connection is busy writing goes in
// the next frame. An error return means the ack was not sent (m came
// through a lost connection: ErrStaleDelivery; the broker redelivers it)
// and done will not run. An ack is only ever sent on the connection that
// delivered m: if that connection fails before the ack is written, done
// gets ErrStaleDelivery at once; it never waits for a failover. In a
// transacted session the ack joins the transaction (done runs once the
// broker took it; the commit makes it durable).
func (k *Consumer) AckAsync(m *Message, done func(error)) error {
	if m.consumer != k {
		return errors.New("client: ack: message was not received by this consumer")
	}
	k.mu.Lock()
	if k.closed {
		err := k.closeErr
		k.mu.Unlock()
		return fmt.Errorf("client: ack: %w", err)
	}
	if m.gen != k.gen {
		k.mu.Unlock()
		return ErrStaleDelivery
	}
	t := k.t
	// in a transacted session the ack joins the transaction on m's
	// connection (which becomes rollback-only if it lost work with another)
	_, _ = k.s.bindWork(t, true)
	k.ackOps = append(k.ackOps, ackOp{msg: m, cb: done})
	k.mu.Unlock()
	t.markAcks(k)
	return nil
}

// Ack acknowledges m and waits until the broker confirmed it durable.
func (k *Consumer) Ack(ctx context.Context, m *Message) error {
	ch := make(chan error, 1)
	if err := k.AckAsync(m, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("client: ack: %w (%w)", ErrUnknownOutcome, ctx.Err())
	}
}

// Close closes the consumer; messages not acknowledged are redelivered to
// other consumers. Acks in flight still complete.
func (k *Consumer) Close(ctx context.Context) error {
	k.mu.Lock()
	closed := k.closed
	k.mu.Unlock()
	if closed {
		return nil
	}
	k.unregister()
	k.closeWith(ErrClosed)
	k.lwg.Wait()
	resp, err := k.s.c.request(ctx, "close consumer", &wire.CloseConsumer{Consumer: k.id}, lostOK)
	if err == nil {
		err = result("close consumer", resp)
	}
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}
