package amqp

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/wire"
)

// SectionsProperty is the message property holding what an AMQP message
// carried besides its body and its durability, encoded, so that an AMQP
// receiver gets it back exactly: message-annotations, properties and
// application-properties sections as sent, and how the body was sent.
// Messages whose sections map exactly onto a broker message (a single
// data section and application-properties of string, long, boolean and
// binary values, nothing else) carry no such property. Layout: a format
// byte (sectionsFormat), a body kind byte, then the AMQP-encoded sections
// in message order.
const SectionsProperty = "_AMQP_SECTIONS"

// DuplicateIDProperty is the application property whose value (a string
// or binary) is the message's duplicate ID, as in Artemis.
const DuplicateIDProperty = "_AMQ_DUPL_ID"

const sectionsFormat = 1

// Body kinds: how the body was sent, so it goes out the same way.
const (
	bodyData        byte = 0 // one data section (or none): Body is its bytes
	bodyValueString byte = 1 // amqp-value holding a string: Body is its UTF-8
	bodyValueBinary byte = 2 // amqp-value holding a binary: Body is its bytes
	bodyEncoded     byte = 3 // anything else: Body is the encoded body sections
)

// inMessage is a decoded incoming message.
type inMessage struct {
	m         *server.Message
	messageID any    // properties.message-id, when set
	to        string // properties.to, when set
	value     any    // the amqp-value body, decoded (coordinator links)
	ttl       time.Duration
}

// decodeMessage decodes an incoming message's sections into a broker
// message. It copies what it keeps (payload may be the frame buffer).
func decodeMessage(payload []byte, wantValue bool) (*inMessage, error) {
	return decodeSections(payload, wantValue, -1)
}

// decodeSections is decodeMessage; streamed, when not negative, is the
// body kind of a large message whose body is stored apart (payload then
// holds only the sections before it: large.go).
func decodeSections(payload []byte, wantValue bool, streamed int) (*inMessage, error) {
	d := newDecoder(payload)
	in := &inMessage{m: &server.Message{}}
	m := in.m
	var kept []byte // the sections to keep verbatim
	needKeep := false
	last := uint64(0)
	bodyKind := bodyData
	var bodyStart, bodyEnd int
	nBody := 0
	for d.more() {
		start := d.off
		code, known := d.descriptor()
		if d.err != nil {
			break
		}
		if !known || code < descHeader || code > descFooter {
			d.fail("unexpected section descriptor 0x%x", code)
			break
		}
		isBody := code == descData || code == descAMQPSequence || code == descAMQPValue
		lastBody := last == descData || last == descAMQPSequence || last == descAMQPValue
		switch {
		case isBody && lastBody && (code != last || code == descAMQPValue):
			d.fail("body section 0x%x after body section 0x%x", code, last)
		case !(isBody && lastBody) && code <= last:
			d.fail("section 0x%x out of order after 0x%x", code, last)
		}
		if d.err != nil {
			break
		}
		last = code
		switch code {
		case descHeader:
			n, end := d.list()
			for i := 0; i < n && d.err == nil; i++ {
				switch i {
				case 0:
					m.Durable = d.boolField(false)
				case 2: // ttl, ms: the message expires that long after it arrives
					if ttl, ok := d.optUint32(); ok && ttl > 0 {
						in.ttl = time.Duration(ttl) * time.Millisecond
					}
				default:
					d.skip() // priority, first-acquirer, delivery-count
				}
			}
			d.endList(end)
		case descDeliveryAnnotations:
			d.skip()
		case descMessageAnnotations:
			d.skip()
			needKeep = true
			kept = append(kept, payload[start:d.off]...)
		case descProperties:
			// Only "to" and creation-time, which the broker sends again
			// from the message's address and timestamp, need no keeping.
			simple := decodeProperties(d, in)
			needKeep = needKeep || !simple
			kept = append(kept, payload[start:d.off]...)
		case descApplicationProperties:
			exact := decodeAppProperties(d, m)
			needKeep = needKeep || !exact
			kept = append(kept, payload[start:d.off]...)
		case descData:
			if nBody == 0 {
				bodyStart = start
				m.Body = append([]byte{}, d.binaryField()...)
			} else {
				d.skip()
				bodyKind = bodyEncoded
			}
			nBody++
			bodyEnd = d.off
		case descAMQPSequence:
			if nBody == 0 {
				bodyStart = start
			}
			nBody++
			d.skip()
			bodyKind = bodyEncoded
			bodyEnd = d.off
		case descAMQPValue:
			bodyStart = start
			nBody++
			switch d.peek() {
			case codeStr8, codeStr32:
				m.Body = []byte(d.stringField())
				bodyKind = bodyValueString
			case codeVbin8, codeVbin32:
				m.Body = append([]byte{}, d.binaryField()...)
				bodyKind = bodyValueBinary
			default:
				if wantValue {
					in.value = d.value()
				} else {
					d.skip()
				}
				bodyKind = bodyEncoded
			}
			bodyEnd = d.off
		case descFooter:
			d.skip()
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if in.ttl > 0 && m.Expiration == 0 {
		m.Expiration = time.Now().Add(in.ttl).UnixNano()
	}
	if bodyKind == bodyEncoded {
		m.Body = append([]byte{}, payload[bodyStart:bodyEnd]...)
	}
	if streamed >= 0 {
		bodyKind = byte(streamed)
	}
	if bodyKind != bodyData {
		needKeep = true
	}
	if needKeep {
		blob := make([]byte, 0, 2+len(kept))
		blob = append(blob, sectionsFormat, bodyKind)
		blob = append(blob, kept...)
		m.Properties = append(m.Properties, wire.BytesProp(SectionsProperty, blob))
	}
	return in, nil
}

// Fields of the properties section the broker maps (AMQP 1.0, 3.2.4:
// message-id, user-id, to, subject, reply-to, correlation-id,
// content-type, content-encoding, absolute-expiry-time, creation-time,
// ...).
const (
	propTo           = 2
	propAbsExpiry    = 8
	propCreationTime = 9
)

// decodeProperties reads the properties section's fields the broker
// uses: message-id, to, absolute-expiry-time and creation-time. It
// reports whether no other field is set.
func decodeProperties(d *decoder, in *inMessage) (simple bool) {
	simple = true
	n, end := d.list()
	for i := 0; i < n && d.err == nil; i++ {
		if i != propTo && i != propAbsExpiry && i != propCreationTime && d.peek() != codeNull {
			simple = false
		}
		switch i {
		case 0:
			in.messageID = d.value()
		case propTo:
			if !d.null() {
				in.to = d.stringField()
			}
		case propAbsExpiry:
			if d.null() {
				continue
			}
			if c := d.byte(); c != codeTimestamp {
				if d.err == nil {
					d.off--
					d.fail("absolute-expiry-time is not a timestamp (type code 0x%02x)", c)
				}
				continue
			}
			ms := int64(d.u64())
			if ms > 0 && ms < math.MaxInt64/int64(time.Millisecond) {
				in.m.Expiration = ms * int64(time.Millisecond)
			}
		case propCreationTime:
			if d.null() {
				continue
			}
			if c := d.byte(); c != codeTimestamp {
				if d.err == nil {
					d.off--
					d.fail("creation-time is not a timestamp (type code 0x%02x)", c)
				}
				continue
			}
			ms := int64(d.u64())
			if ms > -math.MaxInt64/int64(time.Millisecond) && ms < math.MaxInt64/int64(time.Millisecond) {
				in.m.Timestamp = ms * int64(time.Millisecond)
			}
		default:
			d.skip()
		}
	}
	d.endList(end)
	return simple
}

// decodeAppProperties maps the application-properties onto broker
// properties and reports whether the mapping is exact (every value a
// string, long, boolean or binary; anything else is kept as its string
// form and the section is kept verbatim for AMQP receivers).
func decodeAppProperties(d *decoder, m *server.Message) (exact bool) {
	exact = true
	n, end := d.mapHeader()
	for i := 0; i < n/2 && d.err == nil; i++ {
		if c := d.peek(); c != codeStr8 && c != codeStr32 {
			d.fail("application-properties key is not a string (type code 0x%02x)", c)
			return false
		}
		key := d.stringField()
		c := d.peek()
		v := d.value()
		if d.err != nil {
			return false
		}
		var p wire.Property
		switch x := v.(type) {
		case nil:
			exact = false
			continue
		case string:
			p = wire.StringProp(key, x)
			if key == DuplicateIDProperty {
				m.DuplicateID = x
			}
		case bool:
			p = wire.BoolProp(key, x)
		case int64:
			p = wire.Int64Prop(key, x)
		case []byte:
			p = wire.BytesProp(key, x)
			if key == DuplicateIDProperty {
				m.DuplicateID = string(x)
			}
		case uint8:
			p = wire.Int64Prop(key, int64(x))
		case uint16:
			p = wire.Int64Prop(key, int64(x))
		case uint32:
			p = wire.Int64Prop(key, int64(x))
		case int8:
			p = wire.Int64Prop(key, int64(x))
		case int16:
			p = wire.Int64Prop(key, int64(x))
		case int32:
			p = wire.Int64Prop(key, int64(x))
		case uint64:
			if x <= math.MaxInt64 {
				p = wire.Int64Prop(key, int64(x))
			} else {
				p = wire.StringProp(key, strconv.FormatUint(x, 10))
			}
		case Timestamp:
			p = wire.Int64Prop(key, int64(x))
		default:
			p = wire.StringProp(key, formatValue(v))
		}
		if c != codeLong && c != codeSmallLong && c != codeStr8 && c != codeStr32 &&
			c != codeTrue && c != codeFalse && c != codeBool && c != codeVbin8 && c != codeVbin32 {
			exact = false
		}
		m.Properties = append(m.Properties, p)
	}
	d.endList(end)
	return exact
}

// formatValue is the string form of a value without a broker property
// kind of its own (floats, chars, UUIDs, symbols, decimals, compounds).
func formatValue(v any) string {
	switch x := v.(type) {
	case Symbol:
		return string(x)
	case UUID:
		return x.String()
	case Char:
		return string(rune(x))
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []byte:
		return hex.EncodeToString(x)
	}
	return fmt.Sprint(v)
}

// idString is the string form of a message-id, used as the duplicate ID
// when the sender asked for it (see capDuplicateMessageID); the type is
// part of it so that the string "1" and the ulong 1 differ.
func idString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case uint64:
		return "ulong:" + strconv.FormatUint(x, 10)
	case UUID:
		return "uuid:" + x.String()
	case []byte:
		return "binary:" + hex.EncodeToString(x)
	case Symbol:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// appendMessage encodes a broker message for an AMQP receiver: a header
// (durable, and the delivery count of earlier attempts), then the kept
// sections of a message sent over AMQP, or the application-properties and
// a properties section (to, creation-time) of one sent otherwise, then
// the body.
func appendMessage(b []byte, m *server.Message, deliveryCount uint32) []byte {
	b, kind := appendMessageHead(b, m, deliveryCount)
	switch kind {
	case bodyValueString:
		b = appendDescriptor(b, descAMQPValue)
		b = appendVar(b, codeStr8, codeStr32, m.Body)
	case bodyValueBinary:
		b = appendDescriptor(b, descAMQPValue)
		b = appendBinary(b, m.Body)
	case bodyEncoded:
		b = append(b, m.Body...)
	default:
		b = appendDescriptor(b, descData)
		b = appendBinary(b, m.Body)
	}
	return b
}

// appendBodyHead appends the header of a body section of kind (bodyData,
// bodyValueBinary or bodyValueString) holding n bytes, in its 32-bit form
// (a large message: its bytes follow, streamed).
func appendBodyHead(b []byte, kind byte, n uint32) []byte {
	switch kind {
	case bodyValueString:
		b = append(appendDescriptor(b, descAMQPValue), codeStr32)
	case bodyValueBinary:
		b = append(appendDescriptor(b, descAMQPValue), codeVbin32)
	default:
		b = append(appendDescriptor(b, descData), codeVbin32)
	}
	return binary.BigEndian.AppendUint32(b, n)
}

// appendMessageHead appends m's sections before its body and returns the
// body's kind (bodyData when m says nothing else).
func appendMessageHead(b []byte, m *server.Message, deliveryCount uint32) ([]byte, byte) {
	var blob []byte
	for i := range m.Properties {
		p := &m.Properties[i]
		if p.Key == SectionsProperty && p.Kind == wire.KindBytes {
			blob = p.Bytes
			break
		}
	}
	if m.Durable || deliveryCount > 1 {
		b = appendDescriptor(b, descHeader)
		var c compound
		b, c = startList(b)
		b = appendBool(c.field(b), m.Durable)
		if deliveryCount > 1 {
			c.null() // priority
			c.null() // ttl
			c.null() // first-acquirer
			b = appendUint(c.field(b), deliveryCount-1)
		}
		b = c.end(b)
	}
	kind := bodyData
	if len(blob) >= 2 && blob[0] == sectionsFormat {
		kind = blob[1]
		b = append(b, blob[2:]...)
	} else {
		b = appendDescriptor(b, descProperties)
		var c compound
		b, c = startList(b)
		c.null() // message-id
		c.null() // user-id
		if m.Address != "" {
			b = appendString(c.field(b), m.Address)
		} else {
			c.null()
		}
		if m.Timestamp != 0 || m.Expiration != 0 {
			for i := propTo + 1; i < propAbsExpiry; i++ { // subject ... content-encoding
				c.null()
			}
			if m.Expiration != 0 {
				b = appendTimestamp(c.field(b), m.Expiration/int64(time.Millisecond))
			} else {
				c.null()
			}
			if m.Timestamp != 0 {
				b = appendTimestamp(c.field(b), m.Timestamp/int64(time.Millisecond))
			}
		}
		b = c.end(b)
		if len(m.Properties) > 0 {
			b = appendDescriptor(b, descApplicationProperties)
			var c compound
			b, c = startMap(b)
			for i := range m.Properties {
				p := &m.Properties[i]
				c.count += 2
				b = appendString(b, p.Key)
				switch p.Kind {
				case wire.KindString:
					b = appendString(b, p.Str)
				case wire.KindInt64:
					b = appendLong(b, p.Int)
				case wire.KindBool:
					b = appendBool(b, p.Int != 0)
				default:
					b = appendBinary(b, p.Bytes)
				}
			}
			b = c.end(b)
		}
	}
	return b, kind
}
