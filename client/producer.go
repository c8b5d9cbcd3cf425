package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// ProducerOption configures CreateProducer.
type ProducerOption func(*Producer)

// NonDurable makes the producer send non-persistent messages (the broker
// answers once routed, not once stored; they do not survive a restart).
func NonDurable() ProducerOption { return func(p *Producer) { p.durable = false } }

// Window sets how many sends may be unconfirmed at once (default 256).
// SendAsync blocks while the window is full.
func Window(n int) ProducerOption {
	return func(p *Producer) {
		if n > 0 {
			p.window = n
		}
	}
}

// TimeToLive makes messages sent without an Expiration expire d after
// their Timestamp.
func TimeToLive(d time.Duration) ProducerOption { return func(p *Producer) { p.ttl = d } }

// DuplicatePrefix sets the prefix of generated duplicate IDs (default a
// random run ID): IDs are PREFIX-1, PREFIX-2, ...
func DuplicatePrefix(prefix string) ProducerOption { return func(p *Producer) { p.prefix = prefix } }

// Producer sends messages to one destination. Durable by default: Send
// returns once the broker stored the message. Safe for concurrent use.
type Producer struct {
	s       *Session
	dest    Destination
	durable bool
	window  int
	prefix  string
	ttl     time.Duration
	seq     atomic.Uint64
	slots   chan struct{}
	closed  atomic.Bool
}

// CreateProducer returns a producer for dest. It needs no broker round
// trip (producers exist only on the client).
func (s *Session) CreateProducer(dest Destination, opts ...ProducerOption) *Producer {
	p := &Producer{s: s, dest: dest, durable: true, window: 256}
	for _, o := range opts {
		o(p)
	}
	if p.prefix == "" {
		p.prefix = randomID()
	}
	p.slots = make(chan struct{}, p.window)
	return p
}

// sendOp is one send in flight; it is kept (with its frame) until the
// broker answers, so failover can resend it with the same duplicate ID.
type sendOp struct {
	p   *Producer
	s   *Session
	ws  wire.Send
	tx  bool
	cb  func(error)
	ch  chan error
	cl  call
	fin atomic.Bool
}

func (op *sendOp) complete(err error) {
	if !op.fin.CompareAndSwap(false, true) {
		return
	}
	if op.cb != nil {
		op.cb(err)
	} else {
		op.ch <- err
	}
	<-op.p.slots // after the callback, so Flush means "all callbacks ran"
}

func (p *Producer) newOp(m *Message) (*sendOp, error) {
	if len(m.Body) > wire.MaxBodySize {
		return nil, fmt.Errorf("client: send: %w: %d bytes, limit %d", ErrBodyTooLarge, len(m.Body), wire.MaxBodySize)
	}
	op := &sendOp{p: p, s: p.s, tx: p.s.transacted}
	op.ws = wire.Send{Session: p.s.id, Message: wire.Message{
		Address: p.dest.Name, Routing: p.dest.Routing, Durable: p.durable,
		DuplicateID: m.DuplicateID, Timestamp: m.Timestamp, Expiration: m.Expiration, Properties: m.Properties, Body: m.Body,
	}}
	if op.ws.DuplicateID == "" && p.durable {
		op.ws.DuplicateID = p.NextDuplicateID()
	}
	if op.ws.Timestamp == 0 {
		op.ws.Timestamp = time.Now().UnixNano()
	}
	if op.ws.Expiration == 0 && p.ttl > 0 {
		op.ws.Expiration = op.ws.Timestamp + int64(p.ttl)
	}
	op.cl = call{kind: callSend, send: op}
	return op, nil
}

// NextDuplicateID returns the producer's next generated duplicate ID.
func (p *Producer) NextDuplicateID() string {
	return p.prefix + "-" + strconv.FormatUint(p.seq.Add(1), 10)
}

// Send sends m and waits for the broker's answer: for a durable message,
// until it is stored. After failover it is resent with the same duplicate
// ID; ErrUnknownOutcome means its fate cannot be known (the connection was
// lost for good, or ctx ended first). In a transacted session the answer
// means the transaction took m, and a send is never resent:
// ErrTransactionRolledBack means the transaction lost its work with its
// connection (m was not sent, or was lost with it).
func (p *Producer) Send(ctx context.Context, m *Message) error {
	if p.isLarge(m) {
		return p.sendLargeBody(ctx, m)
	}
	op, err := p.newOp(m)
	if err != nil {
		return err
	}
	op.ch = make(chan error, 1)
	if err := p.submit(ctx, op); err != nil {
		return err
	}
	select {
	case err := <-op.ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("client: send: %w (%w)", ErrUnknownOutcome, ctx.Err())
	}
}

// SendAsync sends m without waiting; done runs with the outcome (nil once
// stored) on the client's reader goroutine, so it must be quick and must
// not block on the Conn. SendAsync blocks while the producer's window is
// full; ctx bounds that wait. An error return means m was not sent and
// done will not run. m must not change until done ran.
func (p *Producer) SendAsync(ctx context.Context, m *Message, done func(error)) error {
	if p.isLarge(m) {
		// A large message goes synchronously (its chunks hold the
		// connection's order anyway): done runs before this returns.
		err := p.sendLargeBody(ctx, m)
		if done != nil {
			done(err)
		}
		return nil
	}
	op, err := p.newOp(m)
	if err != nil {
		return err
	}
	if done == nil {
		done = func(error) {}
	}
	op.cb = done
	return p.submit(ctx, op)
}

func (p *Producer) submit(ctx context.Context, op *sendOp) error {
	if p.closed.Load() {
		return ErrClosed
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("client: send: waiting for the window: %w", ctx.Err())
	}
	c := p.s.c
	for {
		t, err := c.transportFor(ctx)
		if err != nil {
			<-p.slots
			return fmt.Errorf("client: send: %w", err)
		}
		// a transacted send joins the transaction on t, or is refused when
		// the transaction's earlier work was lost with another connection
		first, err := op.s.bindWork(t, false)
		if err != nil {
			<-p.slots
			return fmt.Errorf("client: send: %w", err)
		}
		if testHookSend != nil {
			testHookSend("send", t)
		}
		err = t.send(c.nextID(), &op.ws, &op.cl)
		if err == nil {
			return nil
		}
		if err != errTransportDead {
			if first {
				op.s.unbindFirst(t)
			}
			<-p.slots
			return fmt.Errorf("client: send: %w", err)
		}
		// Nothing was sent. A transacted send goes to the next connection
		// only as its transaction's first work (it starts the transaction
		// there); otherwise the transaction's work died with t.
		if op.tx && (!first || !op.s.unbindFirst(t)) {
			<-p.slots
			return fmt.Errorf("client: send: %w (not sent: the transaction's connection was lost)", ErrTransactionRolledBack)
		}
		c.awaitReplacement(ctx, t) // wait for the next connection
		if ctx.Err() != nil {
			<-p.slots
			return fmt.Errorf("client: send: waiting for a connection: %w", ctx.Err())
		}
	}
}

// Flush waits until every send of this producer has its answer.
func (p *Producer) Flush(ctx context.Context) error {
	for i := 0; i < p.window; i++ {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			for ; i > 0; i-- {
				<-p.slots
			}
			return ctx.Err()
		}
	}
	for i := 0; i < p.window; i++ {
		<-p.slots
	}
	return nil
}

// Close stops the producer: later sends fail with ErrClosed. Sends in
// flight still complete.
func (p *Producer) Close() error {
	p.closed.Store(true)
	return nil
}

// Destination returns the producer's destination.
func (p *Producer) Destination() Destination { return p.dest }

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
