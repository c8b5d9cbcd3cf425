package wire

import "fmt"

// RoutingType says how an address routes messages to its queues.
type RoutingType uint8

// Routing types. RoutingDefault lets the broker decide (the address's
// configured routing, else anycast).
const (
	RoutingDefault   RoutingType = 0
	RoutingAnycast   RoutingType = 1 // one queue, each message to one consumer ("queue://")
	RoutingMulticast RoutingType = 2 // every queue of the address gets a copy ("topic://")
)

// String returns "anycast", "multicast" or "default".
func (r RoutingType) String() string {
	switch r {
	case RoutingAnycast:
		return "anycast"
	case RoutingMulticast:
		return "multicast"
	case RoutingDefault:
		return "default"
	}
	return fmt.Sprintf("routing(%d)", uint8(r))
}

func (r RoutingType) valid() bool { return r <= RoutingMulticast }

// Kind is the type of a property value.
type Kind uint8

// Property value kinds.
const (
	KindString Kind = 1
	KindInt64  Kind = 2
	KindBool   Kind = 3
	KindBytes  Kind = 4
)

// Property is one named, typed message property. Exactly one value field is
// meaningful, chosen by Kind (a bool is Int 0 or 1).
type Property struct {
	Key   string
	Kind  Kind
	Str   string
	Int   int64
	Bytes []byte
}

// StringProp returns a string property.
func StringProp(key, v string) Property { return Property{Key: key, Kind: KindString, Str: v} }

// Int64Prop returns an int64 property.
func Int64Prop(key string, v int64) Property { return Property{Key: key, Kind: KindInt64, Int: v} }

// BoolProp returns a bool property.
func BoolProp(key string, v bool) Property {
	p := Property{Key: key, Kind: KindBool}
	if v {
		p.Int = 1
	}
	return p
}

// BytesProp returns a bytes property.
func BytesProp(key string, v []byte) Property { return Property{Key: key, Kind: KindBytes, Bytes: v} }

// Value returns the property's value as string, int64, bool or []byte.
func (p Property) Value() any {
	switch p.Kind {
	case KindString:
		return p.Str
	case KindInt64:
		return p.Int
	case KindBool:
		return p.Int != 0
	case KindBytes:
		return p.Bytes
	}
	return nil
}

// Message is what a producer sends and a consumer receives: routing
// information, properties and a body. On decode, Body and Bytes properties
// alias the decoder's buffer: copy them before the next Decoder.Next.
type Message struct {
	Address     string
	Routing     RoutingType
	Durable     bool
	DuplicateID string // duplicate-detection ID; "" = none
	Timestamp   int64  // Unix nanoseconds, set by the producer; 0 = unset
	Expiration  int64  // Unix nanoseconds after which it expires; 0 = never
	Properties  []Property
	Body        []byte
}

// message flag bits
const (
	msgFlagDurable    = 1 << 0
	msgFlagExpiration = 1 << 1 // an expiration u64 follows the timestamp
)

// Encoding: flags u8, routing u8, address str, duplicate ID str, timestamp
// u64, [expiration u64 when flag 2 is set], properties list of {key str,
// kind u8, value}, body bytes. Values: string str, int64 u64, bool u8,
// bytes bytes.
func (m *Message) appendTo(b []byte) []byte {
	var flags uint8
	if m.Durable {
		flags |= msgFlagDurable
	}
	if m.Expiration != 0 {
		flags |= msgFlagExpiration
	}
	b = appendU8(b, flags)
	b = appendU8(b, uint8(m.Routing))
	b = appendStr(b, m.Address)
	b = appendStr(b, m.DuplicateID)
	b = appendU64(b, uint64(m.Timestamp))
	if m.Expiration != 0 {
		b = appendU64(b, uint64(m.Expiration))
	}
	b = appendCount(b, len(m.Properties))
	for i := range m.Properties {
		p := &m.Properties[i]
		b = appendStr(b, p.Key)
		b = appendU8(b, uint8(p.Kind))
		switch p.Kind {
		case KindString:
			b = appendStr(b, p.Str)
		case KindInt64:
			b = appendU64(b, uint64(p.Int))
		case KindBool:
			b = appendBool(b, p.Int != 0)
		default: // KindBytes; other kinds are refused by check
			b = appendBytes(b, p.Bytes)
		}
	}
	return appendBytes(b, m.Body)
}

// check validates what the encoder cannot express.
func (m *Message) check() error {
	if len(m.Body) > MaxBodySize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBodyTooLarge, len(m.Body), MaxBodySize)
	}
	if !m.Routing.valid() {
		return fmt.Errorf("wire: invalid routing type %d", m.Routing)
	}
	for i := range m.Properties {
		if k := m.Properties[i].Kind; k < KindString || k > KindBytes {
			return fmt.Errorf("wire: property %q has invalid kind %d", m.Properties[i].Key, k)
		}
	}
	return nil
}

// decode reads a message; Properties reuses m's slice capacity.
func (m *Message) decode(r *reader) {
	flags := r.u8("message flags")
	if flags&^(msgFlagDurable|msgFlagExpiration) != 0 {
		r.fail("message flags", fmt.Sprintf("unknown bits %#x", flags))
	}
	m.Durable = flags&msgFlagDurable != 0
	m.Routing = RoutingType(r.u8("routing"))
	if !m.Routing.valid() {
		r.fail("routing", fmt.Sprintf("invalid routing type %d", m.Routing))
	}
	m.Address = r.strInterned("address")
	m.DuplicateID = r.str("duplicate ID")
	m.Timestamp = int64(r.u64("timestamp"))
	m.Expiration = 0
	if flags&msgFlagExpiration != 0 {
		m.Expiration = int64(r.u64("expiration"))
	}
	n := r.count("property count", 3)
	m.Properties = m.Properties[:0]
	if n == 0 {
		m.Properties = nil
	}
	for i := 0; i < n && r.err == nil; i++ {
		var p Property
		p.Key = r.str("property key")
		p.Kind = Kind(r.u8("property kind"))
		switch p.Kind {
		case KindString:
			p.Str = r.str("property string")
		case KindInt64:
			p.Int = int64(r.u64("property int64"))
		case KindBool:
			if r.boolean("property bool") {
				p.Int = 1
			}
		case KindBytes:
			p.Bytes = r.bytes("property bytes")
		default:
			r.fail("property kind", fmt.Sprintf("unknown kind %d", p.Kind))
		}
		m.Properties = append(m.Properties, p)
	}
	// A body over MaxBodySize still decodes (the frame limit bounds it) so
	// the server can answer CodeTooLarge instead of dropping the connection.
	m.Body = r.bytes("body")
}
