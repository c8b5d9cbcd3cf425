package journal

import (
	"sync"
	"sync/atomic"
)

// completion is one done callback with its outcome.
type completion struct {
	done func(error)
	err  error
}

// completer runs done callbacks on one goroutine, in the order they were
// pushed, one at a time: the ordering rule of the Journal interface. It
// decouples the I/O path (the flusher, an io_uring completion goroutine)
// from whatever the callbacks do.
type completer struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []completion
	spare   []completion
	running bool // callbacks are running (on the goroutine, or inline)
	stopped bool
	exited  chan struct{}

	// inline is set while pushWaiters runs callbacks on its caller's
	// goroutine (the flusher or a backend's completion goroutine):
	// Append's back-pressure wait must not block a callback there.
	inline atomic.Bool
}

func newCompleter() *completer {
	c := &completer{exited: make(chan struct{})}
	c.cond.L = &c.mu
	go c.loop()
	return c
}

// push queues callbacks. Callers push under their own ordering lock so the
// queue order is the append order.
func (c *completer) push(items ...completion) {
	c.mu.Lock()
	c.queue = append(c.queue, items...)
	c.mu.Unlock()
	c.cond.Broadcast()
}

func (c *completer) loop() {
	defer close(c.exited)
	c.mu.Lock()
	for {
		for (len(c.queue) == 0 && !c.stopped) || c.running {
			c.cond.Wait() // running: an inline run goes first
		}
		if len(c.queue) == 0 && c.stopped {
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue = c.spare[:0]
		c.running = true
		c.mu.Unlock()
		for i := range batch {
			if batch[i].done != nil {
				batch[i].done(batch[i].err)
			}
			batch[i] = completion{}
		}
		c.mu.Lock()
		c.spare = batch[:0]
		c.running = false
	}
}

// stop runs the remaining callbacks and ends the goroutine.
func (c *completer) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.cond.Broadcast()
	<-c.exited
}

// queueWaiters queues the callbacks of waiters, all with err, for the
// completer's goroutine: never inline (the gate calls it under its lock).
func (c *completer) queueWaiters(ws []waiter, err error) {
	c.mu.Lock()
	for _, w := range ws {
		if w.done != nil {
			c.queue = append(c.queue, completion{done: w.done, err: err})
		}
	}
	c.mu.Unlock()
	c.cond.Broadcast()
}

// inlineMax is the largest batch whose callbacks pushWaiters runs on its
// caller's goroutine. A hand-off costs more than a callback or two, but a
// bigger batch's callbacks are better run by the completer's goroutine in
// parallel with the next batch's write (perf-journal, 8 and 64 writers).
const inlineMax = 2

// pushWaiters queues the callbacks of waiters, all with err. When the batch
// is small (inlineMax) and no callback is running or queued, the caller
// runs them itself, saving a goroutine hand-off per batch: order and
// one-at-a-time still hold, since the loop waits while running is set and
// later pushes queue behind. Callers push in batch order, as for push.
func (c *completer) pushWaiters(ws []waiter, err error) {
	c.mu.Lock()
	if len(ws) <= inlineMax && !c.running && len(c.queue) == 0 && !c.stopped {
		c.running = true
		c.inline.Store(true)
		c.mu.Unlock()
		for _, w := range ws {
			if w.done != nil {
				w.done(err)
			}
		}
		c.mu.Lock()
		c.inline.Store(false)
		c.running = false
		// Wake the loop only for what was pushed meanwhile (or stop): a
		// wake-up per batch would cost what running inline saves.
		wake := len(c.queue) > 0 || c.stopped
		c.mu.Unlock()
		if wake {
			c.cond.Broadcast()
		}
		return
	}
	for _, w := range ws {
		if w.done != nil {
			c.queue = append(c.queue, completion{done: w.done, err: err})
		}
	}
	c.mu.Unlock()
	c.cond.Broadcast()
}
