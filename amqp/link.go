package amqp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/tandemmq/tandem/auth"
	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
)

// Terminus capabilities the broker understands.
const (
	// capQueue and capTopic choose anycast or multicast routing, as
	// Artemis's AMQP capabilities do.
	capQueue Symbol = "queue"
	capTopic Symbol = "topic"
	// CapDuplicateMessageID on a sender's target asks the broker to use
	// each message's message-id as its duplicate ID (when it carries no
	// _AMQ_DUPL_ID application property).
	CapDuplicateMessageID Symbol = "tandem:message-id-duplicate-detection"
	capLocalTransactions  Symbol = "amqp:local-transactions"
)

// link is one attached link. receiving is the broker's role: true when the
// client sends (the broker receives on it), false when the client
// receives. Fields after mu-free ones are guarded by s.mu.
type link struct {
	s         *session
	handle    uint32
	name      string
	receiving bool

	// The broker receives (client sends).
	dest        server.Destination // empty Name: anonymous relay (per-message "to")
	dedupMsgID  bool
	coordinator bool
	credit      uint32 // guarded by s.mu
	inflight    int    // sends awaiting their outcome; guarded by s.mu
	deliveryCnt uint32 // guarded by s.mu
	partial     []byte // a multi-frame delivery being received (reader-owned)
	partialOn   bool
	partialT    Transfer
	large       *largeIn // a large delivery being streamed (reader-owned; large.go)
	notLarge    string   // why the delivery in progress cannot stream (reader-owned)
	detached    bool     // guarded by s.mu

	// The broker sends (client receives).
	consumer       *server.Consumer
	sendCredit     uint32 // link-credit; guarded by s.mu
	sendCount      uint32 // delivery-count; guarded by s.mu
	draining       bool   // Consumer.Drain running; guarded by s.mu
	outstanding    int    // credit given to the consumer, not delivered; guarded by s.mu
	pending        []server.Delivery
	presettled     bool // client's snd-settle-mode settled: at most once
	rcvSecond      bool // the client settles after the broker's settlement
	unsettledCount int  // guarded by s.mu
	avgSize        int  // running average of message sizes; guarded by s.mu
	tempQueue      string
	subscription   string // a durable subscription, deleted on close
	// streaming: a large delivery's frames are being written by its
	// streamer (largeout.go); the link sends nothing else until it ends.
	// wake tells the streamer that credit, window or the link changed.
	streaming bool // guarded by s.mu
	wake      chan struct{}
}

// parseAddress maps an address and capabilities onto a destination:
// queue:// and topic:// prefixes, then the "queue" and "topic"
// capabilities, then the address's existing routing (anycast for a new
// one).
func (c *conn) parseAddress(addr string, caps []Symbol) (server.Destination, error) {
	if a, ok := trimPrefix(addr, c.cfg.anycastPrefix); ok {
		return server.Destination{Name: a, Routing: server.Anycast}, nil
	}
	if a, ok := trimPrefix(addr, c.cfg.multicastPrefix); ok {
		return server.Destination{Name: a, Routing: server.Multicast}, nil
	}
	switch {
	case strings.HasPrefix(addr, "queue://"):
		return server.Destination{Name: addr[len("queue://"):], Routing: server.Anycast}, nil
	case strings.HasPrefix(addr, "topic://"):
		return server.Destination{Name: addr[len("topic://"):], Routing: server.Multicast}, nil
	}
	if addr == "" {
		return server.Destination{}, errors.New("empty address")
	}
	for _, cp := range caps {
		switch cp {
		case capQueue:
			return server.Destination{Name: addr, Routing: server.Anycast}, nil
		case capTopic:
			return server.Destination{Name: addr, Routing: server.Multicast}, nil
		}
	}
	return server.Destination{Name: addr, Routing: c.srv.DefaultRouting(addr)}, nil
}

// attachError refuses an attach: the answer carries no terminus and a
// detach with the error follows (part 2, section 2.6.3).
func (s *session) refuseAttach(a *Attach, cond Symbol, desc string) error {
	s.c.log.Info("AMQP link refused", "link", a.Name, "condition", cond, "reason", desc)
	s.detaching[a.Handle] = true
	s.mu.Lock()
	s.putLocked(&Attach{Name: a.Name, Handle: a.Handle, Role: !a.Role})
	s.putLocked(&Detach{Handle: a.Handle, Closed: true, Error: &Error{Condition: cond, Description: desc}})
	s.mu.Unlock()
	return nil
}

func (s *session) attach(a *Attach) error {
	if a.Handle > handleMax {
		return closeWith(ErrFramingError, "handle %d above handle-max %d", a.Handle, handleMax)
	}
	if _, ok := s.links[a.Handle]; ok || s.detaching[a.Handle] {
		return endWith(ErrHandleInUse, fmt.Sprintf("handle %d is attached", a.Handle))
	}
	if !a.Role { // the client sends
		return s.attachReceiving(a)
	}
	return s.attachSending(a)
}

// attachReceiving attaches a link on which the client sends: to a
// destination, to whatever each message's "to" names (anonymous relay),
// to a new temporary queue (dynamic target), or to the transaction
// coordinator.
func (s *session) attachReceiving(a *Attach) error {
	c := s.c
	l := &link{s: s, handle: a.Handle, name: a.Name, receiving: true}
	t := a.Target
	switch {
	case t == nil:
		return s.refuseAttach(a, ErrInvalidField, "sender link without a target")
	case t.Coordinator:
		l.coordinator = true
	case t.Dynamic:
		name := "amqp.tmp." + randomID()
		if _, err := c.srv.CreateQueue(c.ctx, server.QueueConfig{Name: name, Routing: server.Anycast, Temporary: true}); err != nil {
			return s.refuseAttach(a, condition(err), err.Error())
		}
		l.tempQueue = name
		l.dest = server.Destination{Name: name, Routing: server.Anycast}
		t = &Terminus{Address: name, HasAddress: true, Dynamic: true, ExpiryPolicy: "link-detach"}
	case !t.HasAddress:
		// Anonymous relay: each message names its destination in "to".
	default:
		dest, err := c.parseAddress(t.Address, t.Capabilities)
		if err != nil {
			return s.refuseAttach(a, ErrInvalidField, err.Error())
		}
		if c.srv.Options().NoAutoCreate && dest.Routing == server.Anycast {
			if _, ok := c.srv.Queue(dest.Name); !ok {
				return s.refuseAttach(a, ErrNotFound, fmt.Sprintf("no queue %q (auto-create is off)", dest.Name))
			}
		}
		// Refused at the attach, as Artemis does, rather than message by
		// message (each send is checked too).
		if err := server.Authorize(c.ctx, auth.Send, dest.Name); err != nil {
			return s.refuseAttach(a, ErrUnauthorizedAccess, err.Error())
		}
		l.dest = dest
		l.dedupMsgID = t.hasCapability(CapDuplicateMessageID)
	}
	if l.coordinator {
		t = &Terminus{Coordinator: true, Capabilities: []Symbol{capLocalTransactions}}
	}
	s.links[a.Handle] = l
	s.mu.Lock()
	l.deliveryCnt = a.InitialDeliveryCount
	l.credit = linkCredit
	s.putLocked(&Attach{
		Name: a.Name, Handle: a.Handle, Role: roleReceiver,
		SndSettleMode: a.SndSettleMode, RcvSettleMode: RcvFirst,
		Source: a.Source, Target: t, MaxMessageSize: c.maxMessageSize(),
	})
	s.putLocked(l.creditFlowLocked())
	s.mu.Unlock()
	return nil
}

// creditFlowLocked is a flow frame granting the link's credit.
func (l *link) creditFlowLocked() *Flow {
	f := &Flow{HasHandle: true, Handle: l.handle, DeliveryCount: l.deliveryCnt, LinkCredit: l.credit}
	l.s.flowLocked(f)
	return f
}

// selectorFilter returns the selector of a source filter entry that is
// a JMS selector filter (described by apache.org:selector-filter:string
// or its code 0x0000468C00000004, holding a string).
func selectorFilter(v any) (string, bool) {
	d, ok := v.(Described)
	if !ok {
		return "", false
	}
	s, isString := d.Value.(string)
	switch desc := d.Descriptor.(type) {
	case Symbol:
		return s, isString && desc == "apache.org:selector-filter:string"
	case uint64:
		return s, isString && desc == 0x0000468C00000004
	}
	return "", false
}

// attachSending attaches a link on which the client receives: a
// consumer on a queue, a topic subscription (durable when the source
// asks to outlive the link), or a new temporary queue (dynamic source).
func (s *session) attachSending(a *Attach) error {
	c := s.c
	src := a.Source
	if src == nil {
		return s.refuseAttach(a, ErrInvalidField, "receiver link without a source")
	}
	l := &link{s: s, handle: a.Handle, name: a.Name}
	var dest server.Destination
	opts := server.ConsumerOptions{}
	out := *src
	out.Filter = nil
	for _, e := range src.Filter {
		if sel, ok := selectorFilter(e.Value); ok && opts.Selector == "" {
			opts.Selector = sel
			out.Filter = Map{e} // applied: the answer lists it
			continue
		}
		c.log.Info("AMQP link asks for a filter that is not applied", "link", a.Name, "filter", e.Key)
	}
	switch {
	case src.Dynamic:
		name := "amqp.tmp." + randomID()
		if _, err := c.srv.CreateQueue(c.ctx, server.QueueConfig{Name: name, Routing: server.Anycast, Temporary: true}); err != nil {
			return s.refuseAttach(a, condition(err), err.Error())
		}
		l.tempQueue = name
		dest = server.Destination{Name: name, Routing: server.Anycast}
		out.Address, out.HasAddress = name, true
	default:
		var err error
		dest, err = c.parseAddress(src.Address, src.Capabilities)
		if err != nil {
			return s.refuseAttach(a, ErrInvalidField, err.Error())
		}
		if dest.Routing == server.Multicast && (src.Durable > 0 || src.ExpiryPolicy == "never") {
			opts.Subscription = a.Name
			if c.remoteID != "" {
				opts.Subscription = c.remoteID + "." + a.Name
			}
			l.subscription = opts.Subscription
		}
		if c.srv.Options().NoAutoCreate && dest.Routing == server.Anycast {
			if _, ok := c.srv.Queue(dest.Name); !ok {
				return s.refuseAttach(a, ErrNotFound, fmt.Sprintf("no queue %q (auto-create is off)", dest.Name))
			}
		}
	}
	l.presettled = a.SndSettleMode == SndSettled
	l.rcvSecond = a.RcvSettleMode == RcvSecond
	cons, err := s.ss.CreateConsumer(c.ctx, dest, opts, l.deliver)
	if err != nil {
		if l.tempQueue != "" {
			c.srv.DeleteQueue(context.Background(), l.tempQueue)
		}
		return s.refuseAttach(a, condition(err), err.Error())
	}
	l.consumer = cons
	s.links[a.Handle] = l
	snd := SndUnsettled
	if l.presettled {
		snd = SndSettled
	}
	rcv := RcvFirst
	if l.rcvSecond {
		rcv = RcvSecond
	}
	s.mu.Lock()
	s.putLocked(&Attach{
		Name: a.Name, Handle: a.Handle, Role: roleSender, SndSettleMode: snd, RcvSettleMode: rcv,
		Source: &out, Target: a.Target, InitialDeliveryCount: 0,
	})
	s.mu.Unlock()
	return nil
}

// condition maps a server error to an AMQP error condition.
func condition(err error) Symbol {
	switch {
	case errors.Is(err, server.ErrNoSuchQueue):
		return ErrNotFound
	case errors.Is(err, server.ErrMessageTooLarge), errors.Is(err, journal.ErrTooLarge), errors.Is(err, server.ErrAddressFull):
		return ErrResourceLimit
	case errors.Is(err, server.ErrBadSelector):
		return ErrInvalidField
	case errors.Is(err, server.ErrWrongRouting), errors.Is(err, server.ErrQueueExists), errors.Is(err, server.ErrQueueInUse):
		return ErrNotAllowed
	case errors.Is(err, auth.ErrDenied):
		return ErrUnauthorizedAccess
	}
	return ErrInternal
}

// definite reports whether a send that failed with err was certainly not
// stored: the client may be told "rejected". Anything else (the broker
// halted or lost its lease, the connection or server closing) is an
// unknown outcome, which ends the connection so that the client resends.
func definite(err error) bool {
	switch {
	case errors.Is(err, server.ErrNoSuchQueue), errors.Is(err, server.ErrMessageTooLarge),
		errors.Is(err, journal.ErrTooLarge), errors.Is(err, server.ErrWrongRouting), errors.Is(err, server.ErrAddressFull),
		errors.Is(err, auth.ErrDenied):
		return true
	}
	return false
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ---------------------------------------------------------------- receiving

// transfer receives one transfer frame of a message the client sends.
func (l *link) transfer(t *Transfer, payload []byte) error {
	s := l.s
	if !l.partialOn {
		if !t.HasDeliveryID {
			return endWith(ErrInvalidField, "first transfer of a delivery without a delivery-id")
		}
		s.mu.Lock()
		if l.credit == 0 {
			s.mu.Unlock()
			return l.detachWith(ErrTransferLimit, "transfer without link credit")
		}
		l.credit--
		l.deliveryCnt++
		s.mu.Unlock()
		l.partialT = *t
		l.partialT.DeliveryTag = nil
		l.notLarge = ""
	} else if t.HasSettled && t.Settled {
		l.partialT.Settled, l.partialT.HasSettled = true, true
	}
	if t.Aborted {
		l.partial, l.partialOn = l.partial[:0], false
		if l.large != nil {
			l.large.abort() // nothing of it is stored
			l.large = nil
		}
		l.refill()
		return nil
	}
	if lg := l.large; lg != nil {
		lg.feed(payload)
		if t.More {
			return lg.unknown()
		}
		l.large, l.partialOn = nil, false
		first := &l.partialT
		if t.State.Kind != 0 {
			first.State = t.State
		}
		return l.finishLarge(first, lg)
	}
	if t.More || l.partialOn {
		if len(l.partial)+len(payload) > maxMessageSize {
			l.partial, l.partialOn = nil, false
			why := fmt.Sprintf("message larger than %d bytes", maxMessageSize)
			if l.notLarge != "" {
				why += " (not streamed as a large message: " + l.notLarge + ")"
			}
			return l.detachWith(ErrMessageSizeExceeded, why)
		}
		l.partial = append(l.partial, payload...)
		l.partialOn = true
		if t.More {
			l.maybeLarge()
			if l.large != nil {
				return l.large.unknown()
			}
			return nil
		}
		payload = l.partial
		l.partial, l.partialOn = nil, false
	} else if len(payload) > maxMessageSize {
		return l.detachWith(ErrMessageSizeExceeded, fmt.Sprintf("message larger than %d bytes", maxMessageSize))
	}
	first := &l.partialT
	if t.State.Kind != 0 {
		first.State = t.State
	}
	return l.receive(first, payload)
}

// receive handles a complete incoming message.
func (l *link) receive(t *Transfer, payload []byte) error {
	c := l.s.c
	id := t.DeliveryID
	settled := t.HasSettled && t.Settled
	in, err := decodeMessage(payload, l.coordinator)
	if err != nil {
		l.refill()
		if settled {
			c.log.Info("dropping a malformed pre-settled message", "err", err)
			return nil
		}
		l.dispose(id, &DeliveryState{Kind: descRejected, Error: &Error{Condition: ErrDecode, Description: err.Error()}})
		return nil
	}
	if l.coordinator {
		return l.coordinate(id, in)
	}
	return l.send(t, in, nil)
}

// destination is where a message received on l goes: the link's target,
// or (anonymous relay) the message's "to".
func (l *link) destination(in *inMessage) (server.Destination, Symbol, error) {
	if l.dest.Name != "" {
		return l.dest, "", nil
	}
	if in.to == "" {
		return server.Destination{}, ErrInvalidField, errors.New("message without a \"to\" on an anonymous link")
	}
	dest, err := l.s.c.parseAddress(in.to, nil)
	if err != nil {
		return server.Destination{}, ErrInvalidField, err
	}
	return dest, "", nil
}

// send stores a decoded incoming message; up, when set, holds its body
// (a large message: large.go), sent or aborted here.
func (l *link) send(t *Transfer, in *inMessage, up *server.LargeUpload) error {
	s, c := l.s, l.s.c
	id := t.DeliveryID
	settled := t.HasSettled && t.Settled
	reject := func(cond Symbol, desc string) error {
		if up != nil {
			up.Abort()
		}
		l.refill()
		l.dispose(id, &DeliveryState{Kind: descRejected, Error: &Error{Condition: cond, Description: desc}})
		return nil
	}
	m := in.m
	dest, cond, err := l.destination(in)
	if err != nil {
		return reject(cond, err.Error())
	}
	if m.DuplicateID == "" && l.dedupMsgID {
		m.DuplicateID = idString(in.messageID)
	}
	ss := s.ss
	var tx *txn
	if t.State.Kind == descTransactionalState {
		if up != nil {
			return reject(ErrNotImplemented, "a large message (above amqpMinLargeMessageSize) cannot be sent in a transaction")
		}
		if tx = c.txns[string(t.State.TxnID)]; tx == nil {
			return reject(ErrTransactionUnknownID, "unknown transaction")
		}
		ss = tx.ss
	}
	s.mu.Lock()
	l.inflight++
	s.mu.Unlock()
	sendFn := ss.Send
	if up != nil {
		sendFn = func(ctx context.Context, dest server.Destination, m *server.Message, done func(error)) {
			up.Send(ctx, ss, dest, m, done)
		}
	}
	sendFn(c.ctx, dest, m, func(err error) {
		s.mu.Lock()
		l.inflight--
		l.refillLocked()
		if settled {
			s.mu.Unlock()
			if err != nil && !definite(err) {
				c.fail(closeWith(ErrConnectionForced, "send failed: %v", err))
			}
			return
		}
		switch {
		case err == nil && tx != nil:
			l.disposeLocked(id, &DeliveryState{Kind: descTransactionalState, TxnID: tx.id, Outcome: &DeliveryState{Kind: descAccepted}})
		case err == nil:
			l.disposeLocked(id, &DeliveryState{Kind: descAccepted})
		case definite(err):
			l.disposeLocked(id, &DeliveryState{Kind: descRejected, Error: &Error{Condition: condition(err), Description: err.Error()}})
		default:
			// Unknown outcome: no disposition; the connection ends so
			// that the client resends to the live broker.
			s.mu.Unlock()
			c.fail(closeWith(ErrConnectionForced, "outcome of a send unknown: %v", err))
			return
		}
		s.mu.Unlock()
	})
	return nil
}

// dispose settles an incoming delivery with a state.
func (l *link) dispose(id uint32, st *DeliveryState) {
	l.s.mu.Lock()
	l.disposeLocked(id, st)
	l.s.mu.Unlock()
}

func (l *link) disposeLocked(id uint32, st *DeliveryState) {
	l.s.putLocked(&Disposition{Role: roleReceiver, First: id, Settled: true, State: *st})
}

// refill tops the link's credit up once it fell below a third of
// linkCredit, keeping credit plus sends in flight within linkCredit.
func (l *link) refill() {
	l.s.mu.Lock()
	l.refillLocked()
	l.s.mu.Unlock()
}

func (l *link) refillLocked() {
	if l.detached || l.credit >= linkCredit/3 {
		return
	}
	want := uint32(max(linkCredit-l.inflight, 0))
	if want <= l.credit || want-l.credit < linkCredit/3 {
		return
	}
	l.credit = want
	l.s.putLocked(l.creditFlowLocked())
}

// detachWith detaches the link with an error (a link error: the session
// goes on).
func (l *link) detachWith(cond Symbol, desc string) error {
	s := l.s
	s.c.log.Warn("detaching AMQP link", "link", l.name, "condition", cond, "reason", desc)
	delete(s.links, l.handle)
	s.detaching[l.handle] = true
	l.release(false)
	s.mu.Lock()
	s.putLocked(&Detach{Handle: l.handle, Closed: true, Error: &Error{Condition: cond, Description: desc}})
	s.mu.Unlock()
	return nil
}

// release undoes a link: its consumer closes (unsettled deliveries go
// back to the queue), a durable subscription is deleted when the client
// closed the link, a dynamic queue always.
func (l *link) release(closed bool) {
	s, c := l.s, l.s.c
	if l.large != nil {
		l.large.abort() // a large delivery in progress: nothing of it is stored
		l.large = nil
	}
	s.mu.Lock()
	l.detached = true
	l.wakeStreamer()
	l.pending = nil
	for id, od := range s.unsettled {
		if od.l == l {
			delete(s.unsettled, id)
		}
	}
	s.mu.Unlock()
	c.mu.Lock()
	delete(c.starved, l)
	c.mu.Unlock()
	if l.consumer != nil {
		s.ss.CloseConsumer(l.consumer.ID())
	}
	if l.tempQueue != "" {
		if err := c.srv.DeleteQueue(context.Background(), l.tempQueue); err != nil && !errors.Is(err, server.ErrNoSuchQueue) {
			c.log.Warn("deleting a dynamic queue", "queue", l.tempQueue, "err", err)
		}
	}
	if closed && l.subscription != "" {
		// The client's own request: under its permissions (the
		// connection may be closing, so not under its cancellation).
		if err := c.srv.DeleteQueue(context.WithoutCancel(c.ctx), l.subscription); err != nil && !errors.Is(err, server.ErrNoSuchQueue) {
			c.log.Warn("deleting a durable subscription", "queue", l.subscription, "err", err)
		}
	}
}

// ---------------------------------------------------------------- sending

// flow applies a client's flow to a link: credit for a link the broker
// sends on (with drain and echo), nothing but echo for one it receives on.
func (l *link) flow(f *Flow) error {
	s := l.s
	if l.receiving {
		if f.Echo {
			s.mu.Lock()
			s.putLocked(l.creditFlowLocked())
			s.mu.Unlock()
		}
		return nil
	}
	s.mu.Lock()
	if f.HasDeliveryCount {
		l.sendCredit = f.DeliveryCount + f.LinkCredit - l.sendCount
		if int32(l.sendCredit) < 0 {
			l.sendCredit = 0
		}
	} else {
		l.sendCredit = f.LinkCredit
	}
	l.pumpLocked()
	// More coming from the queue than the client now wants: take the
	// consumer's credit back (and top it up again to what is wanted).
	excess := l.outstanding > 0 && l.outstanding+len(l.pending) > int(min(l.sendCredit, 1<<30))
	n := 0
	if !excess {
		n = l.topupLocked()
	}
	drain := f.Drain && l.sendCredit > 0
	if drain {
		l.draining = true
	}
	s.mu.Unlock()
	s.flushAcks()
	if excess {
		took := l.consumer.TakeCredit()
		s.mu.Lock()
		l.outstanding = max(l.outstanding-took, 0)
		n = l.topupLocked()
		s.mu.Unlock()
	}
	if n > 0 {
		l.consumer.Credit(n)
	}
	if drain {
		// Deliver what is waiting now, then take the rest back.
		left := l.consumer.Drain()
		s.mu.Lock()
		l.draining = false
		l.outstanding = max(l.outstanding-left, 0)
		l.pumpLocked()
		s.mu.Unlock()
		s.flushAcks()
	}
	if f.Drain {
		// Whatever credit is left is used up by advancing the
		// delivery-count, and the client learns it (part 2, 2.6.7).
		s.mu.Lock()
		l.sendCount += l.sendCredit
		l.sendCredit = 0
		s.putLocked(l.sendFlowLocked(true))
		s.mu.Unlock()
		return nil
	}
	if f.Echo {
		s.mu.Lock()
		s.putLocked(l.sendFlowLocked(false))
		s.mu.Unlock()
	}
	return nil
}

// sendFlowLocked is a flow frame with the state of a link the broker
// sends on.
func (l *link) sendFlowLocked(drain bool) *Flow {
	f := &Flow{HasHandle: true, Handle: l.handle, DeliveryCount: l.sendCount, LinkCredit: l.sendCredit,
		Available: uint32(len(l.pending)), HasAvailable: true, Drain: drain}
	l.s.flowLocked(f)
	return f
}

// prefetch bounds the credit a link gives its consumer beyond what it has
// sent: about 1 MiB of messages, at least 1, at most 1000.
func (l *link) prefetch() int {
	if l.avgSize <= 0 {
		return 100
	}
	return max(1, min(1000, (1<<20)/l.avgSize))
}

// topupLocked returns how much credit to give the consumer now (the
// caller calls Credit after unlocking): enough for the client's credit
// minus what is buffered, within the prefetch, and none while the output
// is over softLimit (the writer's drained callback resumes it).
func (l *link) topupLocked() int {
	if l.detached || l.draining || l.consumer == nil {
		return 0
	}
	want := min(int(min(l.sendCredit, 1<<30))-len(l.pending), l.prefetch()) - l.outstanding
	if want <= 0 || want < l.prefetch()/4 && l.outstanding > 0 {
		return 0
	}
	if !l.s.c.w.roomy() {
		l.s.c.starve(l)
		return 0
	}
	l.outstanding += want
	return want
}

// deliver is the consumer's handler: the queue's delivery goroutine (or a
// send's completion, or Consumer.Drain on the reader) hands a message.
func (l *link) deliver(d server.Delivery) {
	s := l.s
	s.mu.Lock()
	l.outstanding--
	if l.detached || s.ended {
		s.mu.Unlock()
		return // the consumer's close gives it back to the queue
	}
	size := len(d.Message.Body) + 64
	if d.Message.IsLarge() { // streamed (largeout.go): what it holds while it is written
		size = int(s.c.peerMaxFrame) + 64
	}
	if l.avgSize == 0 {
		l.avgSize = size
	} else {
		l.avgSize = (7*l.avgSize + size) / 8
	}
	l.pending = append(l.pending, d)
	l.pumpLocked()
	n := l.topupLocked()
	s.mu.Unlock()
	s.flushAcks()
	if n > 0 {
		l.consumer.Credit(n)
	}
}

// pumpLocked sends buffered deliveries while link credit and the
// client's session window allow.
func (l *link) pumpLocked() {
	s := l.s
	if l.streaming {
		l.wakeStreamer()
		return
	}
	if l.detached || s.ended {
		return
	}
	maxFrame := int(s.c.peerMaxFrame)
	for len(l.pending) > 0 && l.sendCredit > 0 {
		d := l.pending[0]
		if d.Message.IsLarge() {
			l.startStreamLocked()
			return
		}
		s.scratch = appendMessage(s.scratch[:0], d.Message, d.DeliveryCount)
		frames := uint32(1)
		chunk := maxFrame - transferOverhead
		if len(s.scratch) > chunk {
			frames = uint32((len(s.scratch) + chunk - 1) / chunk)
		}
		if s.remoteIncomingWindow < frames {
			return
		}
		l.pending[0] = server.Delivery{}
		l.pending = l.pending[1:]
		if len(l.pending) == 0 {
			l.pending = nil
		}
		id := s.nextDeliveryID
		s.nextDeliveryID++
		var tag [8]byte
		binary.BigEndian.PutUint64(tag[:], d.Message.ID)
		t := Transfer{Handle: l.handle, DeliveryID: id, HasDeliveryID: true, DeliveryTag: tag[:], Settled: l.presettled}
		payload := s.scratch
		s.c.w.with(func(b []byte) []byte {
			for {
				n := min(len(payload), chunk)
				t.More = n < len(payload)
				b = appendFrame(b, frameAMQP, s.channel, &t, payload[:n])
				payload = payload[n:]
				t.HasDeliveryID = false
				if len(payload) == 0 {
					return b
				}
			}
		})
		s.nextOutgoingID += frames
		s.remoteIncomingWindow -= frames
		l.sendCredit--
		l.sendCount++
		if l.presettled {
			// At most once: acknowledged as sent (flushAcks, once the
			// caller has unlocked).
			s.toAck = append(s.toAck, presettled{l.consumer.ID(), d.Message.ID})
			continue
		}
		s.unsettled[id] = &outDelivery{l: l, msgID: d.Message.ID}
		l.unsettledCount++
	}
}

// transferOverhead bounds a transfer frame's header and performative, so
// that a message is split into chunks of max-frame-size minus it.
const transferOverhead = 96

// ack acknowledges accepted deliveries (their message IDs, delivery IDs
// ids) in one journal append. When the client left them unsettled
// (rcv-settle-mode second) the broker settles them once the acks are
// durable.
func (l *link) ack(ids []uint32, msgIDs []uint64, settled bool) {
	s, c := l.s, l.s.c
	s.ss.AckMany(l.consumer.ID(), msgIDs, func(failed []uint64, err error) {
		if err != nil {
			c.fail(closeWith(ErrConnectionForced, "outcome of an accept unknown: %v", err))
			return
		}
		if settled {
			return
		}
		s.mu.Lock()
		for _, id := range ids {
			s.putLocked(&Disposition{Role: roleSender, First: id, Settled: true, State: DeliveryState{Kind: descAccepted}})
		}
		s.mu.Unlock()
	})
}
