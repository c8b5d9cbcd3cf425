package journal

import "sync"

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
	running bool // the goroutine is running callbacks taken from queue
	stopped bool
	exited  chan struct{}
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
		for len(c.queue) == 0 && !c.stopped {
			c.cond.Wait()
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
		c.cond.Broadcast()
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

// pushWaiters queues the callbacks of waiters, all with err.
func (c *completer) pushWaiters(ws []waiter, err error) {
	c.mu.Lock()
	for _, w := range ws {
		if w.done != nil {
			c.queue = append(c.queue, completion{done: w.done, err: err})
		}
	}
	c.mu.Unlock()
	c.cond.Broadcast()
}
