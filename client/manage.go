package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tandemmq/tandem/wire"
)

// Manage runs a broker management operation (docs/management.md: the
// operations of the management HTTP API, such as "queue.create",
// "queue.purge" or "connection.list") over the connection, authenticated
// as the connection is. args is encoded as the operation's JSON
// arguments (nil: none); the answer's JSON is decoded into out unless out
// is nil. A broker's refusal is a *ServerError. When the connection is
// lost before the answer, the outcome is unknown (ErrUnknownOutcome).
func (c *Conn) Manage(ctx context.Context, op string, args, out any) error {
	var raw []byte
	if args != nil {
		var err error
		if raw, err = json.Marshal(args); err != nil {
			return fmt.Errorf("client: %s: arguments: %w", op, err)
		}
	}
	resp, err := c.request(ctx, op, &wire.Manage{Op: op, Args: raw}, lostUnknown)
	if err != nil {
		return err
	}
	mr, ok := resp.(*wire.ManageResult)
	if !ok {
		return fmt.Errorf("client: %s: %w", op, ErrUnknownOutcome) // completed by failover
	}
	if err := serverError(op, mr.Code, mr.Message); err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(mr.Body, out); err != nil {
			return fmt.Errorf("client: %s: the broker's answer: %w", op, err)
		}
	}
	return nil
}
