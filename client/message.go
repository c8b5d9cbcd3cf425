package client

import (
	"fmt"
	"strings"

	"github.com/tandemmq/tandem/wire"
)

// Property is a typed message property; build one with wire.StringProp,
// wire.Int64Prop, wire.BoolProp or wire.BytesProp.
type Property = wire.Property

// Destination is an address with a routing type: a queue (anycast) or a
// topic (multicast).
type Destination struct {
	Name    string
	Routing wire.RoutingType
}

// Queue returns an anycast destination.
func Queue(name string) Destination { return Destination{Name: name, Routing: wire.RoutingAnycast} }

// Topic returns a multicast destination.
func Topic(name string) Destination { return Destination{Name: name, Routing: wire.RoutingMulticast} }

// ParseDestination parses "queue://NAME" or "topic://NAME" (docs/cli.md).
func ParseDestination(s string) (Destination, error) {
	switch {
	case strings.HasPrefix(s, "queue://") && len(s) > len("queue://"):
		return Queue(strings.TrimPrefix(s, "queue://")), nil
	case strings.HasPrefix(s, "topic://") && len(s) > len("topic://"):
		return Topic(strings.TrimPrefix(s, "topic://")), nil
	}
	return Destination{}, fmt.Errorf("destination %q: want queue://NAME or topic://NAME", s)
}

// String returns "queue://NAME" or "topic://NAME".
func (d Destination) String() string {
	if d.Routing == wire.RoutingMulticast {
		return "topic://" + d.Name
	}
	return "queue://" + d.Name
}

// Message is a message to send or a received one. When sending, set Body,
// Properties and optionally DuplicateID; a producer must not modify a
// message until its send completed (Send returned or SendAsync's callback
// ran). Received messages carry the broker's ID and delivery count.
type Message struct {
	Body       []byte
	Properties []Property
	// DuplicateID is the duplicate-detection ID. A durable send without one
	// gets the producer's "<random run ID>-<sequence>"; the broker stores a
	// message with a given ID at most once per address.
	DuplicateID string
	// Timestamp is the send time in Unix nanoseconds (set by Send when 0).
	Timestamp int64
	// Expiration is when the message expires, in Unix nanoseconds (0:
	// never, unless the producer has a TimeToLive or the address an
	// expiry-delay). An expired message is not delivered: the broker moves
	// it to the address's expiry-address, or drops it.
	Expiration int64

	// Set on received messages.
	Address       string
	Durable       bool
	ID            uint64 // broker message ID
	DeliveryCount uint32 // 1 on first delivery

	consumer  *Consumer
	gen       uint64 // connection generation it was delivered on
	largeSize int64  // a large message's announced size (reader only)
}

// Property returns the named property and whether it exists.
func (m *Message) Property(key string) (Property, bool) {
	for _, p := range m.Properties {
		if p.Key == key {
			return p, true
		}
	}
	return Property{}, false
}
