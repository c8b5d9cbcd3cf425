package client

import (
	"context"

	"github.com/tandemmq/tandem/wire"
)

// QueueConfig describes a queue to create explicitly (queues are usually
// auto-created on first use).
type QueueConfig struct {
	Address   string // "" = same as Name
	Name      string
	Routing   wire.RoutingType
	Durable   bool
	Temporary bool // deleted when this connection closes
}

// CreateQueue creates a queue. Its outcome is unknown (ErrUnknownOutcome)
// when the connection is lost while the request is in flight.
func (c *Conn) CreateQueue(ctx context.Context, q QueueConfig) error {
	addr := q.Address
	if addr == "" {
		addr = q.Name
	}
	resp, err := c.request(ctx, "create queue", &wire.CreateQueue{Address: addr, Queue: q.Name, Routing: q.Routing,
		Durable: q.Durable, Temporary: q.Temporary}, lostUnknown)
	if err != nil {
		return err
	}
	return result("create queue", resp)
}

// DeleteQueue deletes a queue and its messages.
func (c *Conn) DeleteQueue(ctx context.Context, name string) error {
	resp, err := c.request(ctx, "delete queue", &wire.DeleteQueue{Queue: name}, lostUnknown)
	if err != nil {
		return err
	}
	return result("delete queue", resp)
}
