package client

import (
	"errors"
	"fmt"

	"github.com/tandemmq/tandem/wire"
)

var (
	// ErrUnknownOutcome means a send, ack or commit was in flight when the
	// connection was lost (or ctx ended, or the broker answered that it
	// cannot confirm), so whether the broker applied it cannot be known. A
	// durable send with a duplicate ID can be resent safely; after a
	// commit, check what the transaction did (docs/client-failover.md).
	ErrUnknownOutcome = errors.New("client: outcome unknown: connection lost while in flight")
	// ErrTransactionRolledBack means nothing of the transaction committed:
	// the broker rolled it back, the connection holding its work was lost
	// (also while the Conn is failing over: the commit is never sent to
	// the next broker, which never saw that work), or the commit could not
	// be sent. Redo the whole transaction. A transacted send returns it
	// when its transaction already lost work (it was not sent).
	ErrTransactionRolledBack = errors.New("client: transaction rolled back")
	// ErrClosed means the connection, session, producer or consumer is
	// closed (by the application, or after the connection was lost for good).
	ErrClosed = errors.New("client: closed")
	// ErrStaleDelivery means an ack names a message delivered on a
	// connection that has since been lost: the ack was not sent; the broker
	// redelivers the message.
	ErrStaleDelivery = errors.New("client: message was delivered on a lost connection; it will be redelivered")
	// ErrBodyTooLarge means a message body exceeds wire.MaxBodySize.
	ErrBodyTooLarge = wire.ErrBodyTooLarge
)

// ServerError is an error answer from the broker.
type ServerError struct {
	Op      string    // the request, e.g. "create consumer"
	Code    wire.Code // what went wrong
	Message string    // the broker's explanation
}

// Error returns "client: OP: broker: CODE: MESSAGE".
func (e *ServerError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("client: %s: broker: %v", e.Op, e.Code)
	}
	return fmt.Sprintf("client: %s: broker: %v: %s", e.Op, e.Code, e.Message)
}

// Is makes errors.Is(err, ErrTransactionRolledBack) true for a broker's
// CodeTxRolledBack answer.
func (e *ServerError) Is(target error) bool {
	return target == ErrTransactionRolledBack && e.Code == wire.CodeTxRolledBack
}

func serverError(op string, code wire.Code, msg string) error {
	if code == wire.CodeOK {
		return nil
	}
	return &ServerError{Op: op, Code: code, Message: msg}
}

// unavailable reports whether the broker told us to go elsewhere.
func unavailable(code wire.Code) bool {
	return code == wire.CodeUnavailable || code == wire.CodeShuttingDown
}
