package amqp

import (
	"errors"
	"sync"

	"github.com/tandemmq/tandem/server"
)

// session is one AMQP session (part 2, section 2.5) on the channel the
// client began it on (the broker answers on the same number). It maps
// onto one non-transacted server.Session, which holds its links'
// consumers.
type session struct {
	c       *conn
	channel uint16
	ss      *server.Session

	// Reader-owned.
	links map[uint32]*link // by handle (the broker uses the client's)
	// detaching are handles the broker detached (a refused attach, a
	// link error) whose client detach has not come yet.
	detaching map[uint32]bool

	mu    sync.Mutex
	ended bool
	// Incoming transfers (client to broker).
	nextIncomingID uint32
	incomingWindow uint32
	// Outgoing transfers (broker to client).
	nextOutgoingID       uint32
	remoteIncomingWindow uint32
	nextDeliveryID       uint32
	unsettled            map[uint32]*outDelivery // deliveries sent, by delivery-id
	scratch              []byte                  // message encoding buffer
	toAck                []presettled            // pre-settled deliveries sent, to acknowledge
}

// presettled is a delivery sent pre-settled (at most once): it is
// acknowledged once sent.
type presettled struct {
	consumer, msg uint64
}

// flushAcks acknowledges the pre-settled deliveries sent. The caller
// holds no lock.
func (s *session) flushAcks() {
	s.mu.Lock()
	acks := s.toAck
	s.toAck = nil
	s.mu.Unlock()
	for _, a := range acks {
		s.ss.Ack(a.consumer, a.msg, func(error) {})
	}
}

// outDelivery is a delivery sent to a client and not settled yet.
type outDelivery struct {
	l     *link
	msgID uint64
}

func newSession(c *conn, ch uint16, b *Begin) *session {
	return &session{
		c: c, channel: ch, ss: c.srv.NewSession(false), links: map[uint32]*link{}, detaching: map[uint32]bool{},
		nextIncomingID: b.NextOutgoingID, incomingWindow: sessionWindow,
		remoteIncomingWindow: b.IncomingWindow,
		unsettled:            map[uint32]*outDelivery{},
	}
}

// sessionError ends the session with an error (the connection goes on).
type sessionError struct{ e Error }

func (e *sessionError) Error() string { return e.e.Error() }

func endWith(cond Symbol, desc string) error {
	return &sessionError{Error{Condition: cond, Description: desc}}
}

// handle dispatches a frame on this session's channel. A session error
// ends the session; other errors end the connection.
func (s *session) handle(code uint64, d *decoder, f frame) error {
	var err error
	switch code {
	case descAttach:
		var a Attach
		a.decode(d)
		if d.err != nil {
			return closeWith(ErrDecode, "attach: %v", d.err)
		}
		err = s.attach(&a)
	case descFlow:
		var fl Flow
		fl.decode(d)
		if d.err != nil {
			return closeWith(ErrDecode, "flow: %v", d.err)
		}
		err = s.flow(&fl)
	case descTransfer:
		var t Transfer
		t.decode(d)
		if d.err != nil {
			return closeWith(ErrDecode, "transfer: %v", d.err)
		}
		err = s.transfer(&t, f.body[d.off:])
	case descDisposition:
		var di Disposition
		di.decode(d)
		if d.err != nil {
			return closeWith(ErrDecode, "disposition: %v", d.err)
		}
		err = s.disposition(&di)
	case descDetach:
		var de Detach
		de.decode(d)
		if d.err != nil {
			return closeWith(ErrDecode, "detach: %v", d.err)
		}
		err = s.detach(&de)
	case descEnd:
		decodeErrorOnly(d)
		if d.err != nil {
			return closeWith(ErrDecode, "end: %v", d.err)
		}
		s.close()
		delete(s.c.sessions, s.channel)
		s.c.w.put(frameAMQP, s.channel, endPerf{}, nil)
		return nil
	default:
		return closeWith(ErrIllegalState, "unexpected performative 0x%x on a session", code)
	}
	var se *sessionError
	if errors.As(err, &se) {
		s.c.log.Warn("ending AMQP session", "channel", s.channel, "condition", se.e.Condition, "reason", se.e.Description)
		s.close()
		delete(s.c.sessions, s.channel)
		s.c.w.put(frameAMQP, s.channel, endPerf{&se.e}, nil)
		return nil
	}
	return err
}

// close detaches every link (their consumers' unacked deliveries go back
// to their queues; dynamic queues are deleted) and closes the server
// session. Nothing more is written on the channel.
func (s *session) close() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	for _, l := range s.links {
		l.release(false)
	}
	s.links = map[uint32]*link{}
	s.ss.Close()
}

// sessionFlowLocked appends the session's part of a flow frame.
func (s *session) flowLocked(f *Flow) {
	f.NextIncomingID, f.HasNextIncomingID = s.nextIncomingID, true
	f.IncomingWindow = s.incomingWindow
	f.NextOutgoingID = s.nextOutgoingID
	f.OutgoingWindow = sessionWindow
}

// putLocked writes a frame on the session's channel unless it ended.
func (s *session) putLocked(p appender) {
	if !s.ended {
		s.c.w.put(frameAMQP, s.channel, p, nil)
	}
}

func (s *session) flow(f *Flow) error {
	s.mu.Lock()
	// The client's view of its incoming window, from our next-outgoing-id.
	next := uint32(0)
	if f.HasNextIncomingID {
		next = f.NextIncomingID
	}
	s.remoteIncomingWindow = next + f.IncomingWindow - s.nextOutgoingID
	if !f.HasHandle {
		for _, l := range s.links {
			if !l.receiving {
				l.pumpLocked()
			}
		}
		if f.Echo {
			var out Flow
			s.flowLocked(&out)
			s.putLocked(&out)
		}
		s.mu.Unlock()
		s.flushAcks()
		return nil
	}
	l := s.links[f.Handle]
	if l == nil && s.detaching[f.Handle] {
		s.mu.Unlock()
		return nil
	}
	if l == nil {
		s.mu.Unlock()
		return endWith(ErrUnattachedHandle, "flow for a handle that is not attached")
	}
	for _, x := range s.links {
		if x != l && !x.receiving {
			x.pumpLocked()
		}
	}
	s.mu.Unlock()
	s.flushAcks()
	return l.flow(f)
}

func (s *session) transfer(t *Transfer, payload []byte) error {
	s.mu.Lock()
	if s.incomingWindow == 0 {
		s.mu.Unlock()
		return endWith(ErrWindowViolation, "transfer beyond the session's incoming-window")
	}
	s.nextIncomingID++
	s.incomingWindow--
	if s.incomingWindow < sessionWindow/2 {
		s.incomingWindow = sessionWindow
		var out Flow
		s.flowLocked(&out)
		s.putLocked(&out)
	}
	s.mu.Unlock()
	l := s.links[t.Handle]
	if l == nil && s.detaching[t.Handle] {
		return nil // sent before the client saw the broker's detach
	}
	if l == nil {
		return endWith(ErrUnattachedHandle, "transfer for a handle that is not attached")
	}
	if !l.receiving {
		return endWith(ErrIllegalState, "transfer on a link where the client receives")
	}
	return l.transfer(t, payload)
}

// disposition handles a client's disposition of deliveries the broker
// sent (role receiver); those of deliveries the client sent (role sender:
// its settlement after the broker's) need nothing.
func (s *session) disposition(di *Disposition) error {
	if !di.Role { // the client settles what it sent
		return nil
	}
	last := di.First
	if di.HasLast {
		last = di.Last
	}
	if last-di.First > 1<<30 {
		return endWith(ErrInvalidField, "disposition range too large")
	}
	type item struct {
		id uint32
		d  *outDelivery
	}
	var items []item
	s.mu.Lock()
	if int(last-di.First) >= len(s.unsettled) {
		for id, od := range s.unsettled {
			if id-di.First <= last-di.First {
				items = append(items, item{id, od})
			}
		}
	} else {
		for id := di.First; ; id++ {
			if od, ok := s.unsettled[id]; ok {
				items = append(items, item{id, od})
			}
			if id == last {
				break
			}
		}
	}
	for _, it := range items {
		delete(s.unsettled, it.id)
		it.d.l.unsettledCount--
	}
	s.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	st := &di.State
	var tx *txn
	if st.Kind == descTransactionalState {
		tx = s.c.txns[string(st.TxnID)]
		if tx == nil {
			return endWith(ErrTransactionUnknownID, "disposition in an unknown transaction")
		}
		st = st.Outcome
		if st == nil {
			st = &DeliveryState{Kind: descAccepted}
		}
	}
	// Group accepts per link so that each goes to the journal in one
	// append.
	var accepts map[*link][]uint32
	var acceptIDs map[*link][]uint64
	for _, it := range items {
		l, id := it.d.l, it.d.msgID
		switch st.Kind {
		case descAccepted, descRejected:
			if st.Kind == descRejected {
				s.c.log.Info("client rejected a message: it is dropped (no dead-letter address)", "queue", l.consumer.Queue(), "error", st.Error)
			}
			if tx != nil {
				if err := s.ss.AckInto(tx.ss, l.consumer.ID(), id); err != nil {
					s.c.log.Debug("transactional accept of an unknown delivery", "err", err)
				}
				continue
			}
			if accepts == nil {
				accepts, acceptIDs = map[*link][]uint32{}, map[*link][]uint64{}
			}
			accepts[l] = append(accepts[l], it.id)
			acceptIDs[l] = append(acceptIDs[l], id)
		case descReleased, descModified, 0:
			// released: back to the queue; modified: the same (its
			// delivery count grows; undeliverable-here is not honoured).
			if err := s.ss.Release(l.consumer.ID(), id); err != nil {
				s.c.log.Debug("release of an unknown delivery", "err", err)
			}
		default:
			return endWith(ErrInvalidField, "disposition with an unexpected state")
		}
	}
	for l, ids := range accepts {
		l.ack(ids, acceptIDs[l], di.Settled)
	}
	return nil
}

func (s *session) detach(de *Detach) error {
	if s.detaching[de.Handle] {
		delete(s.detaching, de.Handle) // the answer to the broker's detach
		return nil
	}
	l := s.links[de.Handle]
	if l == nil {
		return endWith(ErrUnattachedHandle, "detach of a handle that is not attached")
	}
	delete(s.links, de.Handle)
	l.release(de.Closed)
	s.mu.Lock()
	s.putLocked(&Detach{Handle: de.Handle, Closed: de.Closed})
	s.mu.Unlock()
	return nil
}
