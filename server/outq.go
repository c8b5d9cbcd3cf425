package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// outq is a connection's outgoing frames. Any goroutine encodes frames into
// the pending buffer under mu; the writer goroutine swaps buffers and writes
// everything pending in one call, so frames produced while a write is in
// progress go out together in the next (batching without timers).
//
// Latency path: an urgent frame (the answer a client is waiting for with
// nothing else outstanding, the synchronous-send case) found with the
// writer idle and nothing pending is written at once by the goroutine that
// produced it, with one non-blocking write(2); whatever the socket does not
// take is left to the writer goroutine. That saves a goroutine hand-off
// per request without ever blocking a journal callback on a slow client.
//
// Bounds (as Netty's channel writability in Artemis): frames are never
// dropped, but once more than high bytes are queued (pending plus being
// written) the queue is blocked until the writer brings it down to low:
// the connection's reader waits (waitWritable) and its consumers get no
// more credit (see flow), so only answers to requests already read and
// deliveries already granted can still be added. A write that makes no
// progress for writeTimeout fails the connection (errWriteStuck).
type outq struct {
	mu       sync.Mutex
	pending  wire.Encoder
	spare    wire.Encoder // being written; owned by whoever set writing
	writing  bool         // a goroutine is writing spare
	leftover int          // >0: spare[leftOff:] still has to be written
	leftOff  int
	closed   bool
	signal   chan struct{}
	err      error // first encode error, for logs
	partials int   // inline writes the socket took only in part
	raw      syscall.RawConn
	onError  func(error)
	// drained is signalled after each completed write, inline or by the
	// writer goroutine: the queue shrank (waitRoom: a large delivery's
	// streamer waits for the socket).
	drained chan struct{}

	high, low    int
	writeTimeout time.Duration // <= 0: none
	inflight     int           // bytes of spare being written and not yet written
	blocked      atomic.Bool   // set past high, cleared at low; changed under mu
	writable     chan struct{} // signalled when blocked clears
	onWritable   func()        // called without mu when blocked clears
	stopped      chan struct{} // closed by close or a write error
	stopOnce     sync.Once
	now          func() time.Time // time.Now; tests replace it

	// rawWrite's state, owned by the goroutine that set writing.
	writeFn func(uintptr) bool // o.writeFd, made once
	wbuf    []byte
	wn      int
	werr    error

	// Reused frames; encoded under mu.
	sendResult wire.SendResult
	deliver    wire.Deliver
	result     wire.Result
	ackConfirm wire.AckConfirm
}

// outqLimits are an outq's bounds; zero values take the defaults.
type outqLimits struct {
	high, low    int
	writeTimeout time.Duration // < 0: none
}

func newOutq(nc net.Conn, lim outqLimits, onError func(error)) *outq {
	if lim.high <= 0 {
		lim.high = DefaultHighWaterMark
	}
	if lim.low <= 0 || lim.low > lim.high {
		lim.low = min(DefaultLowWaterMark, lim.high)
	}
	if lim.writeTimeout == 0 {
		lim.writeTimeout = DefaultWriteTimeout
	}
	o := &outq{signal: make(chan struct{}, 1), onError: onError,
		high: lim.high, low: lim.low, writeTimeout: lim.writeTimeout,
		writable: make(chan struct{}, 1), stopped: make(chan struct{}), onWritable: func() {}, now: time.Now,
		drained: make(chan struct{}, 1)}
	o.writeFn = o.writeFd
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			o.raw = raw
		}
	}
	return o
}

func (o *outq) kick() {
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

// release ends an encode: the caller holds mu and encoded a frame into
// pending (wasEmpty: pending was empty before). It unlocks mu, and either
// writes inline (urgent), wakes the writer, or does nothing (a write is in
// progress and will pick the frame up).
func (o *outq) release(wasEmpty, urgent bool) {
	if !o.blocked.Load() && o.pending.Len()+o.inflight > o.high {
		o.blocked.Store(true)
	}
	if !wasEmpty || o.writing || o.leftover > 0 {
		o.mu.Unlock()
		return // the writer is busy or already signalled
	}
	if !urgent || o.raw == nil {
		o.mu.Unlock()
		o.kick()
		return
	}
	o.writing = true
	o.pending, o.spare = o.spare, o.pending
	buf := o.spare.Bytes()
	o.inflight = len(buf)
	o.mu.Unlock()
	n, err := o.rawWrite(buf)
	o.mu.Lock()
	o.writing = false
	if err != nil {
		o.closed = true
		o.inflight = 0
		o.spare.Reset()
		o.mu.Unlock()
		o.kick()
		o.onError(err) // before stop: a waiting reader then sees the cause
		o.stop()
		return
	}
	if n < len(buf) {
		o.partials++
		o.leftover, o.leftOff = len(buf)-n, n
	} else {
		o.spare.Reset()
	}
	o.inflight = o.leftover
	more := o.leftover > 0 || o.pending.Len() > 0 || o.closed
	unblocked := o.unblockLocked()
	o.mu.Unlock()
	if more {
		o.kick()
	}
	if n > 0 {
		o.signalDrained()
	}
	if unblocked {
		o.notifyWritable()
	}
}

// unblockLocked clears blocked once the queue is down to the low mark and
// reports whether it did. Caller holds mu.
func (o *outq) unblockLocked() bool {
	if o.blocked.Load() && o.pending.Len()+o.inflight <= o.low {
		o.blocked.Store(false)
		return true
	}
	return false
}

// notifyWritable wakes a waiting reader and runs onWritable (mu not held).
func (o *outq) notifyWritable() {
	select {
	case o.writable <- struct{}{}:
	default:
	}
	o.onWritable()
}

// signalDrained wakes a streamer waiting in waitRoom (mu not held).
func (o *outq) signalDrained() {
	select {
	case o.drained <- struct{}{}:
	default:
	}
}

// waitRoom waits until at most limit bytes are queued (pending plus being
// written), the queue stops (errOutqStopped) or ctx ends. Only one
// goroutine may wait in it at a time (a connection's large message
// streamer): the drained signal wakes one waiter.
func (o *outq) waitRoom(ctx context.Context, limit int) error {
	for {
		o.mu.Lock()
		n, closed := o.pending.Len()+o.inflight, o.closed
		o.mu.Unlock()
		if closed {
			return errOutqStopped
		}
		if n <= limit {
			return nil
		}
		select {
		case <-o.drained:
		case <-o.stopped:
			return errOutqStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stop wakes a reader waiting in waitWritable for good.
func (o *outq) stop() { o.stopOnce.Do(func() { close(o.stopped) }) }

// errOutqStopped is returned by waitWritable once the queue closed or
// failed.
var errOutqStopped = errors.New("connection output closed")

// waitWritable returns at once unless the queue is blocked; then it waits
// until it is not, the queue stops (errOutqStopped) or ctx ends.
func (o *outq) waitWritable(ctx context.Context) error {
	for o.blocked.Load() {
		select {
		case <-o.writable:
		case <-o.stopped:
			return errOutqStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// queued returns the bytes queued for the client: pending plus being
// written.
func (o *outq) queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending.Len() + o.inflight
}

// errWriteStuck is the error of a write that made no progress for the
// write timeout: the client does not read what is sent to it.
type errWriteStuck struct{ d time.Duration }

func (e *errWriteStuck) Error() string {
	return fmt.Sprintf("client took no byte of its answers and deliveries for %v (writeTimeout)", e.d)
}

// write writes b, failing with *errWriteStuck once the socket took no
// byte for the write timeout; a slow client that keeps taking bytes is
// waited for. A Write that returns on its deadline does not say when it
// wrote the bytes it reports, so it is given a quarter of the timeout:
// bytes written count as progress at its end, and a stuck client is cut
// off between the timeout and a quarter more after its last byte.
func (o *outq) write(nc net.Conn, b []byte) error {
	if o.writeTimeout <= 0 {
		_, err := nc.Write(b)
		return err
	}
	slice := max(o.writeTimeout/4, time.Millisecond)
	last := o.now()
	for {
		nc.SetWriteDeadline(o.now().Add(slice))
		n, err := nc.Write(b)
		b = b[n:]
		if err == nil {
			return nil
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return err
		}
		now := o.now()
		if n > 0 {
			last = now
		}
		if now.Sub(last) >= o.writeTimeout {
			return &errWriteStuck{o.writeTimeout}
		}
	}
}

// rawWrite writes what the socket takes now, without waiting. Only the
// goroutine that set writing calls it, so the write's state lives in the
// outq and the callback is made once (a closure per call cost three
// allocations per inline answer).
func (o *outq) rawWrite(b []byte) (int, error) {
	o.wbuf, o.wn, o.werr = b, 0, nil
	err := o.raw.Write(o.writeFn)
	n, werr := o.wn, o.werr
	o.wbuf, o.werr = nil, nil
	if werr == nil {
		werr = err
	}
	return n, werr
}

// writeFd is rawWrite's callback: it writes o.wbuf[o.wn:] to fd until the
// socket would block.
func (o *outq) writeFd(fd uintptr) bool {
	b := o.wbuf
	for o.wn < len(b) {
		m, err := syscall.Write(int(fd), b[o.wn:])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			break
		}
		if err != nil {
			o.werr = err
			break
		}
		o.wn += m
	}
	return true // never wait: the writer goroutine takes the rest
}

// frame queues any frame.
func (o *outq) frame(corr uint64, f wire.Frame) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	empty := o.pending.Len() == 0
	if err := o.pending.Encode(corr, f); err != nil && o.err == nil {
		o.err = err
	}
	o.release(empty, false)
}

// sendResultFrame queues a SendResult.
func (o *outq) sendResultFrame(corr uint64, code wire.Code, msg string, dup, urgent bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	empty := o.pending.Len() == 0
	o.sendResult = wire.SendResult{Code: code, Message: msg, Duplicate: dup}
	_ = o.pending.Encode(corr, &o.sendResult)
	o.release(empty, urgent)
}

// resultFrame queues a Result.
func (o *outq) resultFrame(corr uint64, code wire.Code, msg string) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	empty := o.pending.Len() == 0
	o.result = wire.Result{Code: code, Message: msg}
	_ = o.pending.Encode(corr, &o.result)
	o.release(empty, false)
}

// ackConfirmFrame queues an AckConfirm.
func (o *outq) ackConfirmFrame(corr uint64, code wire.Code, msg string, failed []uint64, urgent bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	empty := o.pending.Len() == 0
	o.ackConfirm = wire.AckConfirm{Code: code, Message: msg, Failed: failed}
	_ = o.pending.Encode(corr, &o.ackConfirm)
	o.release(empty, urgent)
}

// deliverFrame queues a Deliver of m to consumer and returns the frame's
// size.
func (o *outq) deliverFrame(consumer uint64, d Delivery) int {
	m := d.Message
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return 0
	}
	before := o.pending.Len()
	empty := before == 0
	f := &o.deliver
	f.Consumer, f.MessageID, f.DeliveryCount = consumer, m.ID, d.DeliveryCount
	f.Message = wire.Message{
		Address: m.Address, Routing: wire.RoutingType(m.Routing), Durable: m.Durable,
		DuplicateID: m.DuplicateID, Timestamp: m.Timestamp, Expiration: m.Expiration, Properties: m.Properties, Body: m.Body,
	}
	err := o.pending.Encode(0, f)
	f.Message = wire.Message{}
	if err != nil && o.err == nil {
		o.err = err
	}
	size := o.pending.Len() - before
	o.release(empty, false)
	return size
}

// close stops accepting frames; the writer exits after writing what is
// pending.
func (o *outq) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.kick()
	o.stop()
}

// run writes pending frames to nc until close; it returns the write error
// that ended it, or nil. A write error also goes to onError.
func (o *outq) run(nc net.Conn) error {
	for {
		<-o.signal
		for {
			o.mu.Lock()
			if o.writing {
				o.mu.Unlock()
				break // an inline write is running; it signals when done
			}
			var buf []byte
			switch {
			case o.leftover > 0:
				b := o.spare.Bytes()
				buf = b[o.leftOff:]
			case o.pending.Len() > 0:
				o.pending, o.spare = o.spare, o.pending
				buf = o.spare.Bytes()
			}
			if buf == nil {
				closed := o.closed
				o.mu.Unlock()
				if closed {
					return nil
				}
				break
			}
			o.writing = true
			o.inflight = len(buf)
			o.mu.Unlock()
			err := o.write(nc, buf)
			o.mu.Lock()
			o.writing = false
			o.leftover, o.leftOff = 0, 0
			o.inflight = 0
			o.spare.Reset()
			if err != nil {
				o.closed = true
				o.mu.Unlock()
				o.onError(err) // before stop: a waiting reader then sees the cause
				o.stop()
				return err
			}
			unblocked := o.unblockLocked()
			o.mu.Unlock()
			o.signalDrained()
			if unblocked {
				o.notifyWritable()
			}
		}
	}
}
