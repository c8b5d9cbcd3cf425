package server

import (
	"net"
	"sync"

	"github.com/tandemmq/tandem/wire"
)

// outq is a connection's outgoing frames. Any goroutine encodes frames into
// the pending buffer under mu; the writer goroutine swaps buffers and writes
// everything pending in one call, so frames produced while a write is in
// progress go out together in the next (batching without timers).
type outq struct {
	mu      sync.Mutex
	pending wire.Encoder
	closed  bool
	signal  chan struct{}
	err     error // first encode error, for logs

	// Reused frames; encoded under mu.
	sendResult wire.SendResult
	deliver    wire.Deliver
	result     wire.Result
	ackConfirm wire.AckConfirm
}

func newOutq() *outq { return &outq{signal: make(chan struct{}, 1)} }

func (o *outq) wake(wasEmpty bool) {
	if wasEmpty {
		select {
		case o.signal <- struct{}{}:
		default:
		}
	}
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
	o.mu.Unlock()
	o.wake(empty)
}

// sendResultFrame queues a SendResult.
func (o *outq) sendResultFrame(corr uint64, code wire.Code, msg string, dup bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	empty := o.pending.Len() == 0
	o.sendResult = wire.SendResult{Code: code, Message: msg, Duplicate: dup}
	_ = o.pending.Encode(corr, &o.sendResult)
	o.mu.Unlock()
	o.wake(empty)
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
	o.mu.Unlock()
	o.wake(empty)
}

// ackConfirmFrame queues an AckConfirm.
func (o *outq) ackConfirmFrame(corr uint64, code wire.Code, msg string, failed []uint64) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	empty := o.pending.Len() == 0
	o.ackConfirm = wire.AckConfirm{Code: code, Message: msg, Failed: failed}
	_ = o.pending.Encode(corr, &o.ackConfirm)
	o.mu.Unlock()
	o.wake(empty)
}

// deliverFrame queues a Deliver of m to consumer.
func (o *outq) deliverFrame(consumer uint64, d Delivery) {
	m := d.Message
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	empty := o.pending.Len() == 0
	f := &o.deliver
	f.Consumer, f.MessageID, f.DeliveryCount = consumer, m.ID, d.DeliveryCount
	f.Message = wire.Message{
		Address: m.Address, Routing: wire.RoutingType(m.Routing), Durable: m.Durable,
		DuplicateID: m.DuplicateID, Timestamp: m.Timestamp, Properties: m.Properties, Body: m.Body,
	}
	err := o.pending.Encode(0, f)
	f.Message = wire.Message{}
	if err != nil && o.err == nil {
		o.err = err
	}
	o.mu.Unlock()
	o.wake(empty)
}

// close stops accepting frames; the writer exits after writing what is
// pending.
func (o *outq) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

// run writes pending frames to nc until close; it returns the write error
// that ended it, or nil.
func (o *outq) run(nc net.Conn) error {
	var spare wire.Encoder
	for {
		<-o.signal
		o.mu.Lock()
		o.pending, spare = spare, o.pending
		closed := o.closed
		o.mu.Unlock()
		if spare.Len() > 0 {
			if _, err := nc.Write(spare.Bytes()); err != nil {
				o.mu.Lock()
				o.closed = true
				o.mu.Unlock()
				return err
			}
			spare.Reset()
		}
		if closed {
			o.mu.Lock()
			rest := o.pending.Len()
			o.mu.Unlock()
			if rest == 0 {
				return nil
			}
			o.wake(true)
		}
	}
}
