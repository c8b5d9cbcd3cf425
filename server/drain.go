package server

// Drain delivers to c, at once, what its credit allows of the messages
// waiting in its queue now, then takes back the credit left and returns
// it. When Drain returns, every delivery to c made before or during it
// has been handed to c's handler (which runs on the calling goroutine
// for the deliveries Drain makes): a protocol with a "drain" request
// (AMQP's flow with drain set) answers it with the credit Drain returns
// as unused. The caller must not hold a lock its handler takes.
func (c *Consumer) Drain() int {
	q := c.q
	q.mu.Lock()
	for q.dispatching {
		q.idle.Wait()
	}
	if q.deleted || c.closed.Load() {
		left := c.credit
		c.credit = 0
		q.mu.Unlock()
		return int(min(left, 1<<31-1))
	}
	q.dispatching = true
	var buf [inlineDeliveries]delivery
	for {
		batch := q.dispatchLocked(buf[:0])
		exp := q.takeExpiredLocked()
		if len(batch) == 0 {
			if exp != nil {
				q.mu.Unlock()
				q.expire(exp)
				q.mu.Lock()
			}
			break
		}
		q.mu.Unlock()
		q.expire(exp)
		for i, d := range batch {
			d.c.deliver(d.r)
			batch[i] = delivery{}
		}
		q.mu.Lock()
	}
	left := c.credit
	c.credit = 0
	q.dispatching = false
	q.idle.Broadcast()
	more := q.msgs.len() > 0 && len(q.consumers) > 0
	q.mu.Unlock()
	if more {
		q.wake()
	}
	return int(min(left, 1<<31-1))
}

// TakeCredit takes back the credit c has not used and returns it:
// nothing more is delivered to c until Credit. Deliveries already made
// (their credit used) may still reach c's handler after it returns.
func (c *Consumer) TakeCredit() int {
	q := c.q
	q.mu.Lock()
	left := c.credit
	c.credit = 0
	q.mu.Unlock()
	return int(min(left, 1<<31-1))
}
