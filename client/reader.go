package client

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/tandemmq/tandem/wire"
)

// readLoop reads frames until the connection ends, completes calls and
// hands deliveries to consumers, then reports the loss to the Conn.
func (t *transport) readLoop() {
	defer t.wg.Done()
	var (
		sr  wire.SendResult
		ac  wire.AckConfirm
		dl  wire.Deliver
		err error
	)
	for {
		var h wire.Header
		h, err = t.dec.Next()
		if err != nil {
			break
		}
		t.recv.Add(1)
		switch h.Type {
		case wire.TypeSendResult:
			if err = t.dec.Unmarshal(&sr); err != nil {
				break
			}
			t.onSendResult(h.Corr, &sr)
		case wire.TypeDeliver:
			if err = t.dec.Unmarshal(&dl); err != nil {
				break
			}
			t.onDeliver(&dl)
		case wire.TypeAckConfirm:
			if err = t.dec.Unmarshal(&ac); err != nil {
				break
			}
			t.onAckConfirm(h.Corr, &ac)
		case wire.TypeDeliverLarge, wire.TypeDeliverChunk:
			err = t.onLarge(h)
		case wire.TypePing:
			t.queue(h.Corr, &wire.Pong{})
		case wire.TypePong:
		case wire.TypeTopology:
			f := new(wire.Topology)
			if err = t.dec.Unmarshal(f); err != nil {
				break
			}
			t.c.setTopology(f)
		case wire.TypeDisconnect:
			f := new(wire.Disconnect)
			if err = t.dec.Unmarshal(f); err != nil {
				break
			}
			t.c.log.Info("broker disconnects", "addr", t.addr, "code", f.Code, "message", f.Message)
			err = &ServerError{Op: "disconnect", Code: f.Code, Message: f.Message}
		case wire.TypeError:
			f := new(wire.Error)
			if err = t.dec.Unmarshal(f); err != nil {
				break
			}
			err = &ServerError{Op: "connection", Code: f.Code, Message: f.Message}
		case wire.TypeResult, wire.TypeConsumerCreated, wire.TypeManageResult:
			f := wire.NewFrame(h.Type)
			if err = t.dec.Unmarshal(f); err != nil {
				break
			}
			if mr, ok := f.(*wire.ManageResult); ok {
				mr.Body = bytes.Clone(mr.Body) // it aliases the decoder's buffer
			}
			if cl := t.take(h.Corr); cl != nil && cl.kind == callRequest {
				cl.finish(f, nil)
			}
		default:
			err = fmt.Errorf("unexpected %v frame from the broker", h.Type)
		}
		if err != nil {
			break
		}
	}
	t.fail(err) // keeps the first cause when something else failed it
	t.c.transportLost(t, t.failErr)
}

func (t *transport) onSendResult(corr uint64, sr *wire.SendResult) {
	cl := t.take(corr)
	if cl == nil || cl.kind != callSend {
		return
	}
	if unavailable(sr.Code) {
		// the broker cannot take it (not active, stopping): keep the send
		// for the next broker and fail this connection over
		if t.putBack(cl) {
			t.fail(&ServerError{Op: "send", Code: sr.Code, Message: sr.Message})
			return
		}
	}
	cl.send.complete(serverError("send", sr.Code, sr.Message))
}

func (t *transport) onAckConfirm(corr uint64, ac *wire.AckConfirm) {
	cl := t.take(corr)
	if cl == nil || cl.kind != callAck {
		return
	}
	if unavailable(ac.Code) {
		// The broker did not confirm (an HA live that may no longer
		// acknowledge, or a stopping one) but may have made the ack
		// durable: its outcome is unknown. Fail over like a send does.
		se := &ServerError{Op: "ack", Code: ac.Code, Message: ac.Message}
		for _, op := range cl.acks {
			op.done(fmt.Errorf("client: ack: %w (%w)", ErrUnknownOutcome, se))
		}
		t.fail(se)
		return
	}
	err := serverError("ack", ac.Code, ac.Message)
	for _, op := range cl.acks {
		e := err
		if e == nil {
			for _, id := range ac.Failed {
				if id == op.msg.ID {
					e = &ServerError{Op: "ack", Code: wire.CodeNotFound, Message: fmt.Sprintf("message %d was not acknowledged", id)}
					break
				}
			}
		}
		op.done(e)
	}
}

func (t *transport) onDeliver(d *wire.Deliver) {
	c := t.c.consumer(d.Consumer)
	if c == nil {
		return // closed meanwhile; the broker redelivers
	}
	m := &Message{
		Body:          append([]byte(nil), d.Body...),
		Properties:    slices.Clone(d.Properties), // d's slice is reused
		DuplicateID:   d.DuplicateID,
		Timestamp:     d.Timestamp,
		Expiration:    d.Expiration,
		Address:       d.Address,
		Durable:       d.Durable,
		ID:            d.MessageID,
		DeliveryCount: d.DeliveryCount,
		consumer:      c,
		gen:           t.gen,
	}
	for i := range m.Properties {
		if m.Properties[i].Bytes != nil {
			m.Properties[i].Bytes = append([]byte(nil), m.Properties[i].Bytes...)
		}
	}
	c.push(m)
}
