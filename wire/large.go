package wire

import "fmt"

// Large messages (issue 18): a body larger than the client's
// min-large-message-size goes as a header and chunks of at most
// MaxBodySize, and comes back the same way, so neither side holds more
// than a chunk of it in a frame:
//
//	client                                  server
//	SendLarge{session, stream, size, msg}  ->   (the message, body empty)
//	LargeChunk{stream, data}               ->   ... (in order)
//	LargeChunk{stream, last, data}       c ->
//	                                     <- Result c  (once stored: the body
//	                                                   and the message durable)
//	                                     <- DeliverLarge{consumer, id, count, size, msg}
//	                                     <- DeliverChunk{consumer, id, data} ...
//	                                     <- DeliverChunk{consumer, id, last, data}
//
// A stream ID is the client's, unique on its connection among the large
// sends in flight. The chunks of one stream come in order, with nothing
// of another stream in between; their sizes add up to size. A broker that
// does not know these frames closes the connection on the first one. The
// frames of a large delivery to a consumer come one after the other: the
// next delivery to that consumer follows the last chunk. The chunks of a
// delivery need not be those of the upload: a receiver appends whatever
// DeliverChunk frames come (Tandem's broker sends pieces sized to its
// connection's water marks).

// Large message frame types.
const (
	TypeSendLarge    Type = 34 // client -> server
	TypeLargeChunk   Type = 35 // client -> server
	TypeDeliverLarge Type = 55 // server -> client
	TypeDeliverChunk Type = 56 // server -> client
)

func init() {
	typeNames[TypeSendLarge] = "SendLarge"
	typeNames[TypeLargeChunk] = "LargeChunk"
	typeNames[TypeDeliverLarge] = "DeliverLarge"
	typeNames[TypeDeliverChunk] = "DeliverChunk"
}

// newLargeFrame returns a zero large message frame of type t, or nil.
func newLargeFrame(t Type) Frame {
	switch t {
	case TypeSendLarge:
		return new(SendLarge)
	case TypeLargeChunk:
		return new(LargeChunk)
	case TypeDeliverLarge:
		return new(DeliverLarge)
	case TypeDeliverChunk:
		return new(DeliverChunk)
	}
	return nil
}

// SendLarge begins a large message on a session (no answer: the last
// LargeChunk is answered). Payload: session u64, stream u64, size u64,
// message (its body empty).
type SendLarge struct {
	Session uint64
	Stream  uint64
	Size    uint64
	Message
}

// Type returns TypeSendLarge.
func (*SendLarge) Type() Type { return TypeSendLarge }
func (f *SendLarge) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Session)
	b = appendU64(b, f.Stream)
	b = appendU64(b, f.Size)
	return f.Message.appendTo(b)
}
func (f *SendLarge) decodePayload(r *reader) {
	f.Session = r.u64("session")
	f.Stream = r.u64("stream")
	f.Size = r.u64("size")
	f.Message.decode(r)
	if len(f.Message.Body) != 0 && r.err == nil {
		r.fail("body", "a large message's header has no body (it comes in LargeChunk frames)")
	}
}

// LargeChunk is the next piece of a large message's body. Payload: stream
// u64, last bool, data bytes (at most MaxBodySize).
type LargeChunk struct {
	Stream uint64
	Last   bool
	Data   []byte
}

// Type returns TypeLargeChunk.
func (*LargeChunk) Type() Type { return TypeLargeChunk }
func (f *LargeChunk) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Stream)
	b = appendBool(b, f.Last)
	return appendBytes(b, f.Data)
}
func (f *LargeChunk) decodePayload(r *reader) {
	f.Stream = r.u64("stream")
	f.Last = r.boolean("last")
	f.Data = r.bytes("data")
	if len(f.Data) > MaxBodySize && r.err == nil {
		r.fail("data", fmt.Sprintf("chunk of %d bytes, more than %d", len(f.Data), MaxBodySize))
	}
}

// DeliverLarge hands a large message's header to a consumer; its body
// follows in DeliverChunk frames. Payload: consumer u64, message ID u64,
// delivery count u32, size u64, message (body empty).
type DeliverLarge struct {
	Consumer      uint64
	MessageID     uint64
	DeliveryCount uint32
	Size          uint64
	Message
}

// Type returns TypeDeliverLarge.
func (*DeliverLarge) Type() Type { return TypeDeliverLarge }
func (f *DeliverLarge) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Consumer)
	b = appendU64(b, f.MessageID)
	b = appendU32(b, f.DeliveryCount)
	b = appendU64(b, f.Size)
	return f.Message.appendTo(b)
}
func (f *DeliverLarge) decodePayload(r *reader) {
	f.Consumer = r.u64("consumer")
	f.MessageID = r.u64("message ID")
	f.DeliveryCount = r.u32("delivery count")
	f.Size = r.u64("size")
	f.Message.decode(r)
}

// DeliverChunk is the next piece of a large delivery's body. Payload:
// consumer u64, message ID u64, last bool, data bytes.
type DeliverChunk struct {
	Consumer  uint64
	MessageID uint64
	Last      bool
	Data      []byte
}

// Type returns TypeDeliverChunk.
func (*DeliverChunk) Type() Type { return TypeDeliverChunk }
func (f *DeliverChunk) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Consumer)
	b = appendU64(b, f.MessageID)
	b = appendBool(b, f.Last)
	return appendBytes(b, f.Data)
}
func (f *DeliverChunk) decodePayload(r *reader) {
	f.Consumer = r.u64("consumer")
	f.MessageID = r.u64("message ID")
	f.Last = r.boolean("last")
	f.Data = r.bytes("data")
	if len(f.Data) > MaxBodySize && r.err == nil {
		r.fail("data", fmt.Sprintf("chunk of %d bytes, more than %d", len(f.Data), MaxBodySize))
	}
}
