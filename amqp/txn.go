package amqp

import (
	"encoding/binary"
	"errors"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/server"
)

// txn is a local transaction declared on a coordinator link (part 4): a
// transacted server.Session. Sends whose transfer carries its txn-id go
// into it, as do accepts whose disposition does; discharge commits it
// (one atomic journal append) or rolls it back.
type txn struct {
	id []byte
	ss *server.Session
}

// coordinate handles a message on a coordinator link: declare or
// discharge.
func (l *link) coordinate(id uint32, in *inMessage) error {
	c := l.s.c
	desc, ok := in.value.(Described)
	code, _ := desc.Descriptor.(uint64)
	if sym, isSym := desc.Descriptor.(Symbol); isSym {
		code = symbolicDescriptors[string(sym)]
	}
	fields, _ := desc.Value.([]any)
	if !ok || (code != descDeclare && code != descDischarge) {
		l.refill()
		l.dispose(id, &DeliveryState{Kind: descRejected, Error: &Error{Condition: ErrDecode, Description: "coordinator message is neither declare nor discharge"}})
		return nil
	}
	if code == descDeclare {
		if len(fields) > 0 && fields[0] != nil {
			l.refill()
			l.dispose(id, &DeliveryState{Kind: descRejected, Error: &Error{Condition: ErrNotImplemented, Description: "global transactions are not supported"}})
			return nil
		}
		c.nextTxn++
		t := &txn{id: binary.BigEndian.AppendUint64(nil, c.nextTxn), ss: c.srv.NewSession(true)}
		c.txns[string(t.id)] = t
		l.refill()
		l.dispose(id, &DeliveryState{Kind: descDeclared, TxnID: t.id})
		return nil
	}
	var txnID []byte
	fail := false
	if len(fields) > 0 {
		txnID, _ = fields[0].([]byte)
	}
	if len(fields) > 1 {
		fail, _ = fields[1].(bool)
	}
	t := c.txns[string(txnID)]
	if t == nil {
		l.refill()
		l.dispose(id, &DeliveryState{Kind: descRejected, Error: &Error{Condition: ErrTransactionUnknownID, Description: "unknown transaction"}})
		return nil
	}
	delete(c.txns, string(txnID))
	if fail {
		t.ss.Rollback()
		t.ss.Close()
		l.refill()
		l.dispose(id, &DeliveryState{Kind: descAccepted})
		return nil
	}
	s := l.s
	s.mu.Lock()
	l.inflight++
	s.mu.Unlock()
	t.ss.Commit(c.ctx, func(err error) {
		t.ss.Close()
		s.mu.Lock()
		l.inflight--
		l.refillLocked()
		switch {
		case err == nil:
			l.disposeLocked(id, &DeliveryState{Kind: descAccepted})
		case errors.Is(err, server.ErrHalted), errors.Is(err, server.ErrNotActive), errors.Is(err, server.ErrClosed), errors.Is(err, journal.ErrClosed):
			s.mu.Unlock()
			c.fail(closeWith(ErrConnectionForced, "outcome of a commit unknown: %v", err))
			return
		default:
			l.disposeLocked(id, &DeliveryState{Kind: descRejected, Error: &Error{Condition: ErrTransactionRollback, Description: err.Error()}})
		}
		s.mu.Unlock()
	})
	return nil
}
