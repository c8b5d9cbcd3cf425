package amqp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// Client is a minimal AMQP 1.0 client for `tandem bench --protocol amqp`
// and tests: one connection, one session, at most one sending link and
// one receiving link. Sends are unsettled and answered by the broker's
// disposition; receiving is in rcv-settle-mode second, so Accept's
// callback runs once the broker has settled the accept (made the ack
// durable). Applications should use a full client library (docs/amqp.md).
type Client struct {
	nc net.Conn
	fr frameReader
	w  *writer

	mu        sync.Mutex
	cond      sync.Cond // on mu: credit, errors
	err       error
	credit    uint32 // sender link credit
	sendCount uint32 // sender delivery-count
	nextID    uint32 // next outgoing delivery-id
	sends     map[uint32]func(error)
	accepts   map[uint32]func(error)
	recvCount uint32 // receiver: messages received since the last flow
	window    uint32 // receiver credit window
	rcvCount  uint32 // receiver delivery-count
	msgs      chan *ClientMessage
	attached  map[uint32]chan error
	partial   []byte
	partialID uint32
	inPartial bool
	nextIn    uint32 // next-incoming-id (transfers received)
	sendAddr  string
	done      chan struct{}
}

// ClientOptions configure Dial.
type ClientOptions struct {
	// User and Password authenticate with SASL PLAIN; empty User means
	// SASL ANONYMOUS.
	User, Password string
}

// ClientMessage is a message received by a Client.
type ClientMessage struct {
	*server.Message
	deliveryID uint32
}

// ErrClientClosed is returned by a closed Client's operations.
var ErrClientClosed = errors.New("amqp: client closed")

const (
	hSend uint32 = 0
	hRecv uint32 = 1
)

// Dial connects to addr (host:port) and opens a session.
func Dial(ctx context.Context, addr string, opts ClientOptions) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c := &Client{nc: nc, fr: frameReader{r: bufio.NewReaderSize(nc, 64<<10), max: MaxFrameSize},
		w: newWriter(nc, writeTimeout), sends: map[uint32]func(error){}, accepts: map[uint32]func(error){},
		attached: map[uint32]chan error{}, done: make(chan struct{})}
	c.cond.L = &c.mu
	if err := c.handshake(opts); err != nil {
		nc.Close()
		return nil, fmt.Errorf("amqp: dial %s: %w", addr, err)
	}
	nc.SetDeadline(time.Time{})
	go c.w.run()
	go c.read()
	return c, nil
}

func (c *Client) handshake(opts ClientOptions) error {
	out := append([]byte{}, headerSASL[:]...)
	mech, resp := Symbol("ANONYMOUS"), []byte{}
	if opts.User != "" {
		mech, resp = "PLAIN", []byte("\x00"+opts.User+"\x00"+opts.Password)
	}
	out = appendFrame(out, frameSASL, 0, saslInitPerf{mech, resp}, nil)
	out = append(out, headerAMQP[:]...)
	out = appendFrame(out, frameAMQP, 0, &Open{ContainerID: "tandem-bench-" + randomID(), MaxFrameSize: MaxFrameSize, ChannelMax: 0}, nil)
	out = appendFrame(out, frameAMQP, 0, &Begin{NextOutgoingID: 0, IncomingWindow: 1 << 30, OutgoingWindow: 1 << 30, HandleMax: 1}, nil)
	if _, err := c.nc.Write(out); err != nil {
		return err
	}
	if h, err := c.fr.readHeader(); err != nil || h != headerSASL {
		return fmt.Errorf("SASL header: %q, %v", h[:], err)
	}
	for {
		f, err := c.fr.next()
		if err != nil {
			return err
		}
		d := newDecoder(f.body)
		code, _ := d.descriptor()
		if code != descSASLOutcome {
			continue // mechanisms
		}
		n, end := d.list()
		var outcome uint32
		if n > 0 {
			outcome = d.uint32Field(0)
		}
		d.endList(end)
		if d.err != nil || outcome != uint32(saslOK) {
			return fmt.Errorf("SASL %s refused (outcome %d)", mech, outcome)
		}
		break
	}
	if h, err := c.fr.readHeader(); err != nil || h != headerAMQP {
		return fmt.Errorf("AMQP header: %q, %v", h[:], err)
	}
	for _, want := range []uint64{descOpen, descBegin} {
		f, err := c.fr.next()
		if err != nil {
			return err
		}
		d := newDecoder(f.body)
		if code, _ := d.descriptor(); code != want {
			if code == descClose {
				return fmt.Errorf("refused: %v", decodeErrorOnly(d))
			}
			return fmt.Errorf("got performative 0x%x, want 0x%x", code, want)
		}
	}
	return nil
}

type saslInitPerf struct {
	mech Symbol
	resp []byte
}

func (p saslInitPerf) append(b []byte) []byte {
	b = appendDescriptor(b, descSASLInit)
	b, c := startList(b)
	b = appendSymbol(c.field(b), p.mech)
	b = appendBinary(c.field(b), p.resp)
	return c.end(b)
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
	sends, accepts := c.sends, c.accepts
	c.sends, c.accepts = map[uint32]func(error){}, map[uint32]func(error){}
	for _, ch := range c.attached {
		ch <- err
	}
	c.attached = map[uint32]chan error{}
	c.cond.Broadcast()
	c.mu.Unlock()
	for _, f := range sends {
		f(err)
	}
	for _, f := range accepts {
		f(err)
	}
	if c.msgs != nil {
		close(c.msgs)
	}
}

// Err returns why the client stopped, or nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection.
func (c *Client) Close() error {
	c.w.put(frameAMQP, 0, closePerf{}, nil)
	c.w.close()
	c.w.wait(2 * time.Second)
	return c.nc.Close()
}

func (c *Client) attach(ctx context.Context, a *Attach) error {
	ch := make(chan error, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.attached[a.Handle] = ch
	c.mu.Unlock()
	c.w.put(frameAMQP, 0, a, nil)
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// OpenSender attaches the sending link to address, whose routing the
// "queue" or "topic" capability chooses (multicast for topic).
func (c *Client) OpenSender(ctx context.Context, address string, topic bool) error {
	capability := []Symbol{capQueue}
	if topic {
		capability = []Symbol{capTopic}
	}
	c.sendAddr = address
	return c.attach(ctx, &Attach{Name: "bench-sender", Handle: hSend, Role: roleSender, SndSettleMode: SndUnsettled,
		Source: &Terminus{Address: "bench", HasAddress: true}, Target: &Terminus{Address: address, HasAddress: true, Capabilities: capability}})
}

// Send sends m (unsettled) once the link has credit; done runs with nil
// once the broker accepted it, or with the error.
func (c *Client) Send(ctx context.Context, m *server.Message, done func(error)) error {
	c.mu.Lock()
	for c.credit == 0 && c.err == nil && ctx.Err() == nil {
		c.cond.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.credit--
	c.sendCount++
	id := c.nextID
	c.nextID++
	c.sends[id] = done
	payload := appendMessage(nil, m, 1)
	var tag [4]byte
	tag[0], tag[1], tag[2], tag[3] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	t := Transfer{Handle: hSend, DeliveryID: id, HasDeliveryID: true, DeliveryTag: tag[:]}
	chunk := MaxFrameSize - transferOverhead
	c.w.with(func(b []byte) []byte {
		for {
			n := min(len(payload), chunk)
			t.More = n < len(payload)
			b = appendFrame(b, frameAMQP, 0, &t, payload[:n])
			payload = payload[n:]
			t.HasDeliveryID = false
			if len(payload) == 0 {
				return b
			}
		}
	})
	c.mu.Unlock()
	return nil
}

// Subscribe attaches the receiving link to address with credit window
// and returns the messages (closed when the client stops).
func (c *Client) Subscribe(ctx context.Context, address string, topic bool, window int) (<-chan *ClientMessage, error) {
	capability := []Symbol{capQueue}
	if topic {
		capability = []Symbol{capTopic}
	}
	c.mu.Lock()
	c.msgs = make(chan *ClientMessage, window)
	c.window = uint32(window)
	c.mu.Unlock()
	if err := c.attach(ctx, &Attach{Name: "bench-receiver", Handle: hRecv, Role: roleReceiver, SndSettleMode: SndUnsettled, RcvSettleMode: RcvSecond,
		Source: &Terminus{Address: address, HasAddress: true, Capabilities: capability}, Target: &Terminus{Address: "bench", HasAddress: true}}); err != nil {
		return nil, err
	}
	c.mu.Lock()
	f := &Flow{NextIncomingID: c.nextIn, HasNextIncomingID: true, IncomingWindow: 1 << 30, NextOutgoingID: c.nextID, OutgoingWindow: 1 << 30,
		HasHandle: true, Handle: hRecv, DeliveryCount: c.rcvCount, LinkCredit: c.window}
	c.mu.Unlock()
	c.w.put(frameAMQP, 0, f, nil)
	return c.msgs, nil
}

// Accept accepts m; done runs once the broker settled the accept (the
// ack is durable), or with the error.
func (c *Client) Accept(m *ClientMessage, done func(error)) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.accepts[m.deliveryID] = done
	c.w.put(frameAMQP, 0, &Disposition{Role: roleReceiver, First: m.deliveryID, State: DeliveryState{Kind: descAccepted}}, nil)
	// Credit back in batches of half the window.
	c.recvCount++
	if c.recvCount >= max(c.window/2, 1) {
		c.recvCount = 0
		c.w.put(frameAMQP, 0, &Flow{NextIncomingID: c.nextIn, HasNextIncomingID: true, IncomingWindow: 1 << 30, NextOutgoingID: c.nextID,
			OutgoingWindow: 1 << 30, HasHandle: true, Handle: hRecv, DeliveryCount: c.rcvCount, LinkCredit: c.window}, nil)
	}
	c.mu.Unlock()
	return nil
}

// read is the client's reader goroutine.
func (c *Client) read() {
	for {
		f, err := c.fr.next()
		if err != nil {
			c.fail(err)
			return
		}
		if len(f.body) == 0 {
			continue
		}
		if err := c.handle(f); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *Client) handle(f frame) error {
	d := newDecoder(f.body)
	code, _ := d.descriptor()
	switch code {
	case descAttach:
		var a Attach
		a.decode(d)
		c.mu.Lock()
		ch := c.attached[a.Handle]
		delete(c.attached, a.Handle)
		c.mu.Unlock()
		if ch != nil {
			if a.Source == nil && a.Target == nil {
				ch <- errors.New("attach refused")
			} else {
				ch <- nil
			}
		}
	case descFlow:
		var fl Flow
		fl.decode(d)
		if fl.HasHandle && fl.Handle == hSend {
			c.mu.Lock()
			c.credit = fl.DeliveryCount + fl.LinkCredit - c.sendCount
			c.cond.Broadcast()
			c.mu.Unlock()
		}
	case descDisposition:
		var di Disposition
		di.decode(d)
		if d.err != nil {
			return d.err
		}
		last := di.First
		if di.HasLast {
			last = di.Last
		}
		var err error
		if di.State.Kind != descAccepted {
			err = fmt.Errorf("amqp: outcome 0x%x: %v", di.State.Kind, di.State.Error)
		}
		var fs []func(error)
		c.mu.Lock()
		m := c.sends
		if !di.Role { // the broker settles our accepts
			m = c.accepts
		}
		for id := di.First; ; id++ {
			if f, ok := m[id]; ok {
				fs = append(fs, f)
				delete(m, id)
			}
			if id == last {
				break
			}
		}
		c.mu.Unlock()
		for _, f := range fs {
			f(err)
		}
	case descTransfer:
		var t Transfer
		t.decode(d)
		if d.err != nil {
			return d.err
		}
		payload := f.body[d.off:]
		c.mu.Lock()
		c.nextIn++
		if !c.inPartial {
			c.partialID = t.DeliveryID
		}
		c.mu.Unlock()
		if t.More || c.inPartial {
			c.partial = append(c.partial, payload...)
			c.inPartial = t.More
			if t.More {
				return nil
			}
			payload, c.partial = c.partial, nil
		}
		in, err := decodeMessage(payload, false)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.rcvCount++
		msgs := c.msgs
		c.mu.Unlock()
		msgs <- &ClientMessage{Message: in.m, deliveryID: c.partialID}
	case descDetach, descEnd, descClose:
		var e *Error
		if code == descDetach {
			var de Detach
			de.decode(d)
			e = de.Error
		} else {
			e = decodeErrorOnly(d)
		}
		if e != nil {
			return e
		}
		return ErrClientClosed
	}
	return nil
}

// DuplicateID returns the message's duplicate ID (the _AMQ_DUPL_ID
// property) or its "id" property.
func (m *ClientMessage) DuplicateID() string {
	if m.Message.DuplicateID != "" {
		return m.Message.DuplicateID
	}
	for _, p := range m.Properties {
		if p.Key == "id" && p.Kind == wire.KindString {
			return p.Str
		}
	}
	return ""
}
