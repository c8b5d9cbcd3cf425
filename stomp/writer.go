package stomp

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// errWriterClosed is returned by waits on a writer that has stopped.
var errWriterClosed = errors.New("stomp: connection's writer stopped")

// written is something to do once a frame has been written to the
// socket: an ack:auto delivery is acknowledged then (and its credit
// returned), never before the bytes left.
type written struct {
	sub   *subscription
	msgID uint64
	size  int
}

// writer is a connection's outgoing frames. Any goroutine appends encoded
// frames to pending under mu (never blocking: deliveries and receipts come
// from the broker's queue and journal goroutines); one goroutine (run)
// swaps buffers and writes everything pending in one call. A write that
// makes no progress for the write timeout (a client that stopped reading)
// fails, which closes the connection. The reader stops reading frames
// while more than highWater bytes wait (waitRoom), so a client that sends
// but never reads cannot make the broker buffer its answers without
// bound; deliveries are bounded by their subscriptions' credit.
type writer struct {
	nc      net.Conn
	timeout time.Duration

	mu      sync.Mutex
	pending []byte
	after   []written
	closed  bool  // no more frames accepted
	err     error // why run stopped
	frames  uint64

	signal chan struct{} // cap 1: something to write, or closed
	room   chan struct{} // cap 1: a write completed (pending shrank)
	done   chan struct{} // run returned
	onDone func([]written)
}

const highWater = 4 << 20

func newWriter(nc net.Conn, timeout time.Duration, onWritten func([]written)) *writer {
	return &writer{nc: nc, timeout: timeout, signal: make(chan struct{}, 1), room: make(chan struct{}, 1),
		done: make(chan struct{}), onDone: onWritten}
}

func (w *writer) kick() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// frame queues an encoded frame (enc appends it to the pending buffer)
// with an optional action once written; false when the writer has
// stopped (the frame is dropped).
func (w *writer) frame(enc func([]byte) []byte, after *written) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.pending = enc(w.pending)
	if after != nil {
		w.after = append(w.after, *after)
	}
	w.frames++
	w.mu.Unlock()
	w.kick()
	return true
}

// written returns how many frames have been queued so far (heart-beats
// included), for the heart-beat ticker to tell an idle connection.
func (w *writer) count() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.frames
}

// waitRoom waits until fewer than highWater bytes are pending.
func (w *writer) waitRoom(ctx context.Context) error {
	for {
		w.mu.Lock()
		n, closed := len(w.pending), w.closed
		w.mu.Unlock()
		if closed {
			return errWriterClosed
		}
		if n < highWater {
			return nil
		}
		select {
		case <-w.room:
		case <-w.done:
			return errWriterClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close stops accepting frames; run writes what is pending and returns.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.kick()
}

// wait waits for run to return (at most d) and reports its error.
func (w *writer) wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
		return w.err
	case <-t.C:
		return errors.New("stomp: writer did not finish")
	}
}

// run writes pending frames until close (after writing what is pending)
// or a write error; it runs the written actions after each write.
func (w *writer) run() {
	defer close(w.done)
	var buf []byte
	var after []written
	for range w.signal {
		for {
			w.mu.Lock()
			buf, w.pending = w.pending, buf[:0]
			after, w.after = w.after, after[:0]
			closed := w.closed
			w.mu.Unlock()
			if len(buf) == 0 {
				if closed {
					return
				}
				break
			}
			w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
			_, err := w.nc.Write(buf)
			select {
			case w.room <- struct{}{}:
			default:
			}
			if err != nil {
				w.mu.Lock()
				w.closed, w.err = true, err
				w.pending, w.after = nil, nil
				w.mu.Unlock()
				w.nc.Close() // wakes the reader
				return
			}
			if len(after) > 0 {
				w.onDone(after)
				clear(after)
			}
			if cap(buf) > 1<<20 {
				buf = nil // do not keep a burst's buffer
			}
		}
	}
}
