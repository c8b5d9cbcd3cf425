package stomp

import (
	"context"
	"errors"
	"fmt"
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
	bodies  []streamed // large bodies to write inside pending, in order
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

// streamed is a large message's body that run writes at offset at of the
// pending bytes, a chunk record at a time (read then, not before): a
// MESSAGE frame's body must follow its headers on the wire, but need not
// be in memory whole.
type streamed struct {
	at     int
	chunks int
	read   func(i int) ([]byte, error)
}

// frameStreamed queues a frame whose body is streamed: head encodes the
// frame up to its body, then the body's chunks follow, then the frame's
// NUL. false when the writer has stopped.
func (w *writer) frameStreamed(head func([]byte) []byte, chunks int, read func(i int) ([]byte, error), after *written) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.pending = head(w.pending)
	w.bodies = append(w.bodies, streamed{at: len(w.pending), chunks: chunks, read: read})
	w.pending = append(w.pending, 0)
	if after != nil {
		w.after = append(w.after, *after)
	}
	w.frames++
	w.mu.Unlock()
	w.kick()
	return true
}

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

// write writes buf with the streamed bodies at their offsets, each write
// under the write timeout.
func (w *writer) write(buf []byte, bodies []streamed) error {
	for _, b := range bodies {
		w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		if _, err := w.nc.Write(buf[:b.at]); err != nil {
			return err
		}
		buf = buf[b.at:]
		for i := range b.chunks {
			p, err := b.read(i)
			if err != nil {
				// The frame is cut on the wire: the connection must end.
				return fmt.Errorf("stomp: reading a large message's body: %w", err)
			}
			w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
			if _, err := w.nc.Write(p); err != nil {
				return err
			}
		}
		for j := range bodies {
			bodies[j].at -= b.at
		}
	}
	w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	_, err := w.nc.Write(buf)
	return err
}

// run writes pending frames until close (after writing what is pending)
// or a write error; it runs the written actions after each write.
func (w *writer) run() {
	defer close(w.done)
	var buf []byte
	var after []written
	var bodies []streamed
	for range w.signal {
		for {
			w.mu.Lock()
			buf, w.pending = w.pending, buf[:0]
			after, w.after = w.after, after[:0]
			bodies, w.bodies = w.bodies, bodies[:0]
			closed := w.closed
			w.mu.Unlock()
			if len(buf) == 0 {
				if closed {
					return
				}
				break
			}
			err := w.write(buf, bodies)
			clear(bodies)
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
