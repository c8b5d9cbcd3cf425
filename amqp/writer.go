package amqp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// writer is a connection's output: frames are encoded straight into a
// pending buffer under mu (by the reader, the journal's completions and
// the queues' deliveries, none of which may block), and one goroutine
// (run) writes what is pending with a write deadline. A client that does
// not read fills the buffer: the reader stops reading from it above
// softLimit (waitBelow), deliveries stop being pulled from queues above
// softLimit (see link.topupLocked), and past hardLimit, or when a write
// times out, the connection is closed.
type writer struct {
	nc      net.Conn
	timeout time.Duration

	mu      sync.Mutex
	buf     []byte
	closing bool  // no more frames accepted; run flushes and returns
	err     error // why the writer stopped
	space   sync.Cond
	wake    chan struct{}
	done    chan struct{}
	// heartbeat, when > 0, is how often an empty frame is sent when
	// nothing else was (half the peer's idle-time-out).
	heartbeat time.Duration
	wrote     bool // something was written since the last heartbeat check
	starved   bool // a link found the output over softLimit (roomy)
	// drained is called (outside mu) after a write that took the pending
	// bytes below softLimit.
	drained func()
}

const (
	// softLimit: above it the reader waits and no new deliveries are
	// pulled from queues.
	softLimit = 1 << 20
	// hardLimit: a connection with this much pending output is closed.
	hardLimit = 64 << 20
)

// errSlowClient ends a connection whose client does not read.
var errSlowClient = errors.New("client does not read: output limit reached")

func newWriter(nc net.Conn, timeout time.Duration) *writer {
	w := &writer{nc: nc, timeout: timeout, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.space.L = &w.mu
	return w
}

// put appends one frame and reports whether the writer takes frames.
func (w *writer) put(typ byte, channel uint16, p appender, payload []byte) bool {
	return w.with(func(b []byte) []byte { return appendFrame(b, typ, channel, p, payload) })
}

// with runs f on the pending buffer under mu (for several frames that
// must be contiguous, such as the frames of one delivery) and reports
// whether the writer takes frames.
func (w *writer) with(f func(b []byte) []byte) bool {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return false
	}
	w.buf = f(w.buf)
	over := len(w.buf) > hardLimit
	if over {
		w.closing = true
		w.err = errSlowClient
		w.buf = nil
	}
	w.mu.Unlock()
	if over {
		w.nc.Close()
		w.space.Broadcast()
	}
	w.signal()
	return !over
}

func (w *writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// roomy reports whether fewer than softLimit bytes are pending; when
// not, drained is called once they are.
func (w *writer) roomy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) < softLimit {
		return true
	}
	w.starved = true
	return false
}

// waitBelow blocks until fewer than n bytes are pending, the writer
// stopped, or ctx ends.
func (w *writer) waitBelow(ctx context.Context, n int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) < n || w.closing {
		return w.err
	}
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.space.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	for len(w.buf) >= n && !w.closing && ctx.Err() == nil {
		w.space.Wait()
	}
	if w.err != nil {
		return w.err
	}
	return ctx.Err()
}

// close stops taking frames; run writes what is pending and returns.
func (w *writer) close() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.signal()
}

// wait waits for run to return, at most d.
func (w *writer) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
	}
}

// run writes pending frames until close, a write error or a timeout.
func (w *writer) run() {
	defer close(w.done)
	var spare []byte
	var tick <-chan time.Time
	if w.heartbeat > 0 {
		t := time.NewTicker(w.heartbeat)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-w.wake:
		case <-tick:
			w.mu.Lock()
			if !w.wrote && len(w.buf) == 0 && !w.closing {
				w.buf = append(w.buf, 0, 0, 0, 8, 2, 0, 0, 0) // empty frame
			}
			w.wrote = false
			w.mu.Unlock()
		}
		w.mu.Lock()
		b := w.buf
		w.buf = spare[:0]
		closing := w.closing
		if w.err != nil {
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		if len(b) > 0 {
			w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
			if _, err := w.nc.Write(b); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					err = fmt.Errorf("%w: nothing written for %v", errSlowClient, w.timeout)
				}
				w.mu.Lock()
				w.err = err
				w.closing = true
				w.buf = nil
				w.space.Broadcast()
				w.mu.Unlock()
				w.nc.Close()
				return
			}
		}
		if cap(b) <= 4<<20 {
			spare = b
		} else {
			spare = nil
		}
		w.mu.Lock()
		w.wrote = w.wrote || len(b) > 0
		n := len(w.buf)
		starved := false
		if n < softLimit {
			w.space.Broadcast()
			starved, w.starved = w.starved, false
		}
		more := n > 0
		w.mu.Unlock()
		if starved && w.drained != nil {
			w.drained()
		}
		if closing && !more {
			return
		}
		if more {
			w.signal()
		}
	}
}
