package server

import (
	"fmt"

	"github.com/tandemmq/tandem/selector"
	"github.com/tandemmq/tandem/wire"
)

// ErrBadSelector is returned for a queue filter or consumer selector that
// does not parse.
var ErrBadSelector = fmt.Errorf("server: bad selector")

// parseSelector parses a queue filter or consumer selector; "" is none.
func parseSelector(s string) (*selector.Selector, error) {
	if s == "" {
		return nil, nil
	}
	sel, err := selector.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadSelector, s, err)
	}
	return sel, nil
}

// Value gives a selector the message's headers and properties: Artemis's
// header names (AMQDurable 'DURABLE' or 'NON_DURABLE', AMQTimestamp and
// AMQExpiration in ms, AMQSize, AMQAddress), their JMS names
// (JMSDeliveryMode 'PERSISTENT' or 'NON_PERSISTENT', JMSTimestamp,
// JMSExpiration), then the properties by key. Bytes properties, and names
// the message does not have, are NULL.
func (m *Message) Value(name string) any {
	switch name {
	case "AMQDurable":
		if m.Durable {
			return "DURABLE"
		}
		return "NON_DURABLE"
	case "JMSDeliveryMode":
		if m.Durable {
			return "PERSISTENT"
		}
		return "NON_PERSISTENT"
	case "AMQTimestamp", "JMSTimestamp":
		return m.Timestamp / 1e6
	case "AMQExpiration", "JMSExpiration":
		return m.Expiration / 1e6
	case "AMQSize":
		return int64(m.Size())
	case "AMQAddress":
		return m.Address
	}
	for i := range m.Properties {
		p := &m.Properties[i]
		if p.Key != name {
			continue
		}
		switch p.Kind {
		case wire.KindString:
			return p.Str
		case wire.KindInt64:
			return p.Int
		case wire.KindBool:
			return p.Int != 0
		}
		return nil
	}
	return nil
}

// accepts reports whether q's filter lets m in.
func (q *Queue) accepts(m *Message) bool { return q.filter == nil || q.filter.Matches(m) }

// wants reports whether c's selector takes m.
func (c *Consumer) wants(m *Message) bool { return c.sel == nil || c.sel.Matches(m) }
