package server

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// Dead letters, expiry and redelivery delays (Artemis's address
// settings dead-letter-address and max-delivery-attempts, expiry-address
// and expiry-delay, redelivery-delay with its multiplier and cap), applied
// per address (address.policy).
//
// A message moved to a dead-letter or expiry address is a copy sent
// there (with the properties below) and an ack of the original, in one
// journal append, as a transaction would write them: after a crash it is
// in one place or the other, never both and never neither. Without the
// address configured, or when nothing is bound to it, the message is
// dropped (acked) with a warning, as Artemis does.

// Properties a moved message carries (Artemis's names).
const (
	PropOrigAddress  = "_AMQ_ORIG_ADDRESS"
	PropOrigQueue    = "_AMQ_ORIG_QUEUE"
	PropActualExpiry = "_AMQ_ACTUAL_EXPIRY" // ms since the epoch
)

// redeliveryPolicy splits cancelled references of q: those delivered
// max-delivery-attempts times go to the dead-letter address (dead); the
// others get their redelivery delay (notBefore) and go back (back).
func (s *Server) redeliveryPolicy(q *Queue, refs []*ref) (back, dead []*ref) {
	pol := &q.addr.policy
	var now int64
	for _, r := range refs {
		if pol.MaxDeliveryAttempts >= 0 && r.deliveries >= uint32(pol.MaxDeliveryAttempts) && s.checkUsable() == nil {
			dead = append(dead, r)
			continue
		}
		r.notBefore = 0
		if d := pol.RedeliveryDelayFor(r.deliveries); d > 0 {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			r.notBefore = now + int64(d)
		}
		back = append(back, r)
	}
	return back, dead
}

// deadLetter moves references of q (counted as being delivered) to its
// dead-letter address.
func (s *Server) deadLetter(q *Queue, refs []*ref) {
	s.divert(q, refs, q.addr.policy.DeadLetterAddress, false)
}

// expireRefs moves expired references taken out of q's deque (not
// counted as being delivered) to its expiry address, on a goroutine of
// their own (dispatch may run in a journal completion): Close waits for
// it.
func (s *Server) expireRefs(q *Queue, refs []*ref) {
	q.delivering.Add(int64(len(refs)))
	if !s.tryEnter() {
		// Frozen for a scale-down: they stay in their queue (and move
		// with it), to expire where they land.
		if !q.requeue(refs) {
			s.dropRefs(refs)
		}
		return
	}
	s.bgMu.Lock()
	if s.bgStopped {
		s.bgMu.Unlock()
		s.exit()
		q.delivering.Add(-int64(len(refs)))
		return // closing: they stay in the journal, expired at the next start
	}
	s.bg.Add(1)
	s.bgMu.Unlock()
	go func() {
		defer s.bg.Done()
		defer s.exit() // once the move's records are with the journal
		s.ctr.expired.Add(uint64(len(refs)))
		s.divert(q, refs, q.addr.policy.ExpiryAddress, true)
	}()
}

// divert sends a copy of each reference's message to target (dead
// letters, or expired messages when expired) and acks the references, in
// one append. Without a target, or when target has no queue, they are
// acked only. On failure they go back to q.
func (s *Server) divert(q *Queue, refs []*ref, target string, expired bool) {
	what := "dead-letter"
	if expired {
		what = "expiry"
	}
	a := s.lookupAddress(target)
	routing := Multicast
	routable := false
	if a != nil {
		a.mu.Lock()
		routable = len(a.queues) > 0
		if a.hasAnycastQueueLocked() {
			routing = Anycast
		}
		a.mu.Unlock()
	}
	var sends []txSend
	now := time.Now()
	if routable {
		for _, r := range refs {
			sends = append(sends, txSend{m: divertedCopy(r.msg, q, target, expired, now), r: routing})
		}
		if !expired {
			s.log.Warn("messages reached max-delivery-attempts: moved to the dead-letter address",
				"queue", q.name, "count", len(refs), "dead_letter_address", target)
			s.ctr.deadLettered.Add(uint64(len(refs)))
		}
	} else if !expired {
		why := "no dead-letter-address is configured for it"
		if target != "" {
			why = "its dead-letter-address " + target + " has no queue"
		}
		s.log.Warn("messages reached max-delivery-attempts and are dropped: "+why, "queue", q.name, "count", len(refs))
		s.ctr.deadLettered.Add(uint64(len(refs)))
	} else {
		s.log.Debug("expired messages dropped (no expiry-address, or nothing bound to it)", "queue", q.name, "count", len(refs))
	}
	s.commitWith(context.Background(), sends, refs, func(rs []*ref) {
		for _, r := range rs {
			r.notBefore = 0
		}
		if !q.requeue(rs) {
			s.dropRefs(rs)
		}
	}, func(err error) {
		if err != nil && !errors.Is(err, ErrNotActive) {
			s.log.Warn("moving messages to the "+what+" address failed", "queue", q.name, "err", err)
		}
	})
}

// divertedCopy is m as it goes to target from queue q: Artemis's
// original-address and original-queue properties (and the time it
// expired), no duplicate ID (the copy is not a resend), and no expiration
// for an expired one.
func divertedCopy(m *Message, q *Queue, target string, expired bool, now time.Time) *Message {
	c := &Message{Address: target, Durable: m.Durable, Timestamp: m.Timestamp, Expiration: m.Expiration, Body: m.Body, large: m.large}
	c.Properties = slices.DeleteFunc(slices.Clone(m.Properties), func(p Property) bool {
		return p.Key == PropOrigAddress || p.Key == PropOrigQueue || p.Key == PropActualExpiry
	})
	c.Properties = append(c.Properties, wire.StringProp(PropOrigAddress, m.Address), wire.StringProp(PropOrigQueue, q.name))
	if expired {
		c.Expiration = 0
		c.Properties = append(c.Properties, wire.Int64Prop(PropActualExpiry, now.UnixMilli()))
	}
	return c
}

// expiryScanner takes expired messages out of every queue each period
// until Close (message-expiry-scan-period); dispatch expires the ones it
// meets in between.
func (s *Server) expiryScanner(period time.Duration) {
	defer close(s.expiryDone)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.stopExpiry:
			return
		case <-t.C:
			s.scanExpired(time.Now())
		}
	}
}

// scanExpired expires what has expired at now in every queue.
func (s *Server) scanExpired(now time.Time) {
	s.mu.RLock()
	qs := make([]*Queue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.mu.RUnlock()
	ns := now.UnixNano()
	for _, q := range qs {
		q.mu.Lock()
		if q.deleted {
			q.mu.Unlock()
			continue
		}
		var exp []*ref
		q.msgs.filter(func(r *ref) (keep, stop bool) {
			if e := r.msg.Expiration; e != 0 && e <= ns {
				exp = append(exp, r)
				return false, false
			}
			return true, false
		})
		q.mu.Unlock()
		if len(exp) > 0 {
			s.expireRefs(q, exp)
		}
	}
}
