package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tandemmq/tandem/journal"
	"github.com/tandemmq/tandem/wire"
)

// MaxBodySize is the largest message body accepted (1 MiB). Larger
// messages are refused with ErrMessageTooLarge until large messages exist.
const MaxBodySize = 1 << 20

// maxPropsSize bounds the encoded properties of one message.
const maxPropsSize = 64 << 10

// ErrMessageTooLarge is returned for a message whose body exceeds
// MaxBodySize or whose properties exceed 64 KiB.
var ErrMessageTooLarge = errors.New("server: message too large (body limit 1 MiB; large messages are not supported yet)")

// Routing is how an address or queue routes: anycast (a queue, point to
// point) or multicast (a topic, every subscription gets a copy).
type Routing uint8

// Routing types.
const (
	Anycast   Routing = 1
	Multicast Routing = 2
)

// String returns "anycast" or "multicast".
func (r Routing) String() string {
	switch r {
	case Anycast:
		return "anycast"
	case Multicast:
		return "multicast"
	}
	return fmt.Sprintf("routing(%d)", uint8(r))
}

// Property is one typed message property (the wire protocol's).
type Property = wire.Property

// Message is a message as the broker stores and delivers it. Once sent a
// Message is immutable and shared by every queue it was routed to.
type Message struct {
	// ID is assigned by the broker on send.
	ID uint64
	// Address is where the message was sent.
	Address string
	// Routing is how it was sent (anycast or multicast).
	Routing Routing
	// Durable marks a persistent message.
	Durable bool
	// DuplicateID, when set, is checked against the address's ID cache.
	DuplicateID string
	// Timestamp is the send time in Unix nanoseconds (set by the sender).
	Timestamp int64
	// Expiration is when the message expires, in Unix nanoseconds; 0:
	// never. An expired message is not delivered: it goes to its
	// address's expiry-address, or is dropped.
	Expiration int64
	// Properties are the application properties.
	Properties []Property
	// Body is the payload.
	Body []byte

	// durableRefs counts durable queues still holding the message
	// (guarded by Server.storeMu).
	durableRefs int32
	// refs counts the references to the message held in memory, and acct
	// is the address its memory is charged to (paging.go: charge,
	// release).
	refs atomic.Int32
	acct *address
	// large is set for a large message: its body is not in Body but in
	// chunk records of the large-messages journal (large.go).
	large *largeBody
	// borrowed: Body aliases a buffer the sender reuses once Send
	// returns (the connection's decode buffer); the server copies it,
	// into the journal record when it encodes one.
	borrowed bool
	// origin is, for a message another broker of the cluster moved here,
	// the broker a client sent it to (an index of forwarding.origins; 0:
	// this broker). Its RecMessageOrigin record keeps it (forward.go).
	origin uint32
}

// own makes m's body the server's own, copying a borrowed one.
func (m *Message) own() {
	if m.borrowed {
		m.Body = append(make([]byte, 0, len(m.Body)), m.Body...)
		m.borrowed = false
	}
}

// Size is an estimate of the message's size in bytes.
func (m *Message) Size() int {
	n := len(m.Body) + len(m.Address) + len(m.DuplicateID) + 32
	for i := range m.Properties {
		n += propSize(&m.Properties[i])
	}
	return n
}

func propSize(p *Property) int { return len(p.Key) + len(p.Str) + len(p.Bytes) + 10 }

func (m *Message) check() error {
	if len(m.Body) > MaxBodySize {
		return fmt.Errorf("%w: body of %d bytes", ErrMessageTooLarge, len(m.Body))
	}
	n := len(m.DuplicateID)
	for i := range m.Properties {
		p := &m.Properties[i]
		if p.Kind < wire.KindString || p.Kind > wire.KindBytes {
			return fmt.Errorf("server: property %q has invalid kind %d", p.Key, p.Kind)
		}
		n += propSize(p)
	}
	if n > maxPropsSize {
		return fmt.Errorf("%w: %d bytes of properties", ErrMessageTooLarge, n)
	}
	return nil
}

// Message record formats: 2 adds the expiration after the timestamp, and
// is written only for a message that expires (so a message without one
// stays readable by a version that knows format 1 only).
const (
	messageFormat       = 1
	messageFormatExpiry = 2
	// messageFormatLarge is format 2 followed, after the (empty) body, by
	// the large body's reference: its chunk records' ID, its size, and the
	// chunks' positions in the large-messages journal (uvarints: count,
	// then segment and offset of each).
	messageFormatLarge = 3
)

// maxLargeChunks bounds a large body's chunk list (1 TiB in 1 MiB chunks).
const maxLargeChunks = 1 << 20

// encodeMessage encodes m for the messages journal:
// format(1) flags(1) timestamp(8) [expiration(8), format 2] address dupID
// nprops (key value)* body, strings and the body prefixed with their
// uvarint length.
func encodeMessage(m *Message) []byte {
	n := 2 + 16 + 3*binary.MaxVarintLen32 + len(m.Address) + len(m.DuplicateID) + len(m.Body) + binary.MaxVarintLen32
	if m.large != nil {
		n += 3*binary.MaxVarintLen64 + 2*binary.MaxVarintLen64*len(m.large.chunks)
	}
	for i := range m.Properties {
		n += 2*binary.MaxVarintLen32 + propSize(&m.Properties[i])
	}
	b := make([]byte, 0, n)
	var flags byte
	if m.Durable {
		flags |= 1
	}
	if m.Routing == Multicast {
		flags |= 2
	}
	if m.Expiration != 0 || m.large != nil {
		f := byte(messageFormatExpiry)
		if m.large != nil {
			f = messageFormatLarge
		}
		b = append(b, f, flags)
		b = binary.LittleEndian.AppendUint64(b, uint64(m.Timestamp))
		b = binary.LittleEndian.AppendUint64(b, uint64(m.Expiration))
	} else {
		b = append(b, messageFormat, flags)
		b = binary.LittleEndian.AppendUint64(b, uint64(m.Timestamp))
	}
	b = appendString(b, m.Address)
	b = appendString(b, m.DuplicateID)
	b = binary.AppendUvarint(b, uint64(len(m.Properties)))
	for i := range m.Properties {
		p := &m.Properties[i]
		b = appendString(b, p.Key)
		b = append(b, byte(p.Kind))
		switch p.Kind {
		case wire.KindString:
			b = appendString(b, p.Str)
		case wire.KindInt64, wire.KindBool:
			b = binary.LittleEndian.AppendUint64(b, uint64(p.Int))
		default:
			b = binary.AppendUvarint(b, uint64(len(p.Bytes)))
			b = append(b, p.Bytes...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(m.Body)))
	b = append(b, m.Body...)
	if lb := m.large; lb != nil {
		b = binary.AppendUvarint(b, lb.id)
		b = binary.AppendUvarint(b, uint64(lb.size))
		b = binary.AppendUvarint(b, uint64(len(lb.chunks)))
		for _, p := range lb.chunks {
			b = binary.AppendUvarint(b, p.Seq)
			b = binary.AppendUvarint(b, uint64(p.Offset))
		}
	}
	return b
}

// decodeMessage decodes what encodeMessage wrote. It never panics on bad
// input; errors name the offset.
func decodeMessage(b []byte) (*Message, error) {
	d := decoder{b: b}
	f := d.byte()
	if f != messageFormat && f != messageFormatExpiry && f != messageFormatLarge {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("message record: unknown format %d", f)
	}
	m := &Message{}
	flags := d.byte()
	m.Durable = flags&1 != 0
	m.Routing = Anycast
	if flags&2 != 0 {
		m.Routing = Multicast
	}
	m.Timestamp = int64(d.uint64())
	if f != messageFormat {
		m.Expiration = int64(d.uint64())
	}
	m.Address = d.string()
	m.DuplicateID = d.string()
	np := d.uvarint()
	if d.err == nil && np > uint64(len(b)) {
		return nil, fmt.Errorf("message record: offset %d: %d properties in %d bytes", d.off, np, len(b))
	}
	if np > 0 && d.err == nil {
		m.Properties = make([]Property, np)
		for i := range m.Properties {
			p := &m.Properties[i]
			p.Key = d.string()
			p.Kind = wire.Kind(d.byte())
			switch p.Kind {
			case wire.KindString:
				p.Str = d.string()
			case wire.KindInt64, wire.KindBool:
				p.Int = int64(d.uint64())
			case wire.KindBytes:
				p.Bytes = d.bytes()
			default:
				if d.err == nil {
					return nil, fmt.Errorf("message record: offset %d: property kind %d", d.off, p.Kind)
				}
			}
		}
	}
	m.Body = d.bytes()
	if f == messageFormatLarge && d.err == nil {
		lb := &largeBody{id: d.uvarint()}
		size := d.uvarint()
		n := d.uvarint()
		if d.err == nil && (n == 0 || n > maxLargeChunks || n > uint64(len(b)) || size > 1<<62 || len(m.Body) != 0) {
			return nil, fmt.Errorf("message record: offset %d: large body of %d bytes in %d chunks", d.off, size, n)
		}
		lb.size = int64(size)
		for i := uint64(0); i < n && d.err == nil; i++ {
			seq, off := d.uvarint(), d.uvarint()
			if off > journal.MaxSegmentSize && d.err == nil {
				return nil, fmt.Errorf("message record: offset %d: chunk at offset %d", d.off, off)
			}
			lb.chunks = append(lb.chunks, journal.Position{Seq: seq, Offset: int64(off)})
		}
		m.large = lb
	}
	if d.err != nil {
		return nil, fmt.Errorf("message record: %w", d.err)
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("message record: offset %d: %d trailing bytes", d.off, len(b)-d.off)
	}
	return m, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the journal record encodings; the first error sticks.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("offset %d: truncated %s", d.off, what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || d.off >= len(d.b) {
		d.fail("byte")
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil || len(d.b)-d.off < 8 {
		d.fail("uint64")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail(fmt.Sprintf("field of %d bytes", n))
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }
