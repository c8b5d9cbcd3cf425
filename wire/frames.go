package wire

import "fmt"

// Frame is a frame's payload. Every frame type of the protocol has a struct
// here; pass a pointer to Encoder.Encode and Decoder.Unmarshal.
type Frame interface {
	// Type is the frame type.
	Type() Type
	appendPayload(b []byte) []byte
	decodePayload(r *reader)
}

// NewFrame returns a new zero frame of type t, or nil for an unknown type.
func NewFrame(t Type) Frame {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeWelcome:
		return new(Welcome)
	case TypeError:
		return new(Error)
	case TypePing:
		return new(Ping)
	case TypePong:
		return new(Pong)
	case TypeTopology:
		return new(Topology)
	case TypeDisconnect:
		return new(Disconnect)
	case TypeResult:
		return new(Result)
	case TypeCreateSession:
		return new(CreateSession)
	case TypeCloseSession:
		return new(CloseSession)
	case TypeCommit:
		return new(Commit)
	case TypeRollback:
		return new(Rollback)
	case TypeCreateQueue:
		return new(CreateQueue)
	case TypeDeleteQueue:
		return new(DeleteQueue)
	case TypeSend:
		return new(Send)
	case TypeSendResult:
		return new(SendResult)
	case TypeCreateConsumer:
		return new(CreateConsumer)
	case TypeConsumerCreated:
		return new(ConsumerCreated)
	case TypeCloseConsumer:
		return new(CloseConsumer)
	case TypeCredit:
		return new(Credit)
	case TypeDeliver:
		return new(Deliver)
	case TypeAck:
		return new(Ack)
	case TypeAckConfirm:
		return new(AckConfirm)
	}
	if f := newReplicationFrame(t); f != nil {
		return f
	}
	if f := newManageFrame(t); f != nil {
		return f
	}
	if f := newLargeFrame(t); f != nil {
		return f
	}
	if f := newClusterFrame(t); f != nil {
		return f
	}
	if f := newQuorumFrame(t); f != nil {
		return f
	}
	return nil
}

// Hello is the client's first frame. Payload: min version u8, max version
// u8, client ID str, user str, password str, connection TTL ms u32, client
// failure check period ms u32, flags u8.
type Hello struct {
	MinVersion    uint8
	MaxVersion    uint8
	ClientID      string
	User          string // "" = anonymous
	Password      string
	ConnectionTTL uint32 // ms the server should wait for traffic; 0 = server default
	CheckPeriod   uint32 // ms of silence after which the client gives up
	WantTopology  bool   // ha=true: the client wants Topology frames
}

const helloFlagTopology = 1 << 0

// Type returns TypeHello.
func (*Hello) Type() Type { return TypeHello }
func (f *Hello) appendPayload(b []byte) []byte {
	b = appendU8(b, f.MinVersion)
	b = appendU8(b, f.MaxVersion)
	b = appendStr(b, f.ClientID)
	b = appendStr(b, f.User)
	b = appendStr(b, f.Password)
	b = appendU32(b, f.ConnectionTTL)
	b = appendU32(b, f.CheckPeriod)
	var flags uint8
	if f.WantTopology {
		flags |= helloFlagTopology
	}
	return appendU8(b, flags)
}
func (f *Hello) decodePayload(r *reader) {
	f.MinVersion = r.u8("min version")
	f.MaxVersion = r.u8("max version")
	f.ClientID = r.str("client ID")
	f.User = r.str("user")
	f.Password = r.str("password")
	f.ConnectionTTL = r.u32("connection TTL")
	f.CheckPeriod = r.u32("check period")
	flags := r.u8("flags")
	if flags&^helloFlagTopology != 0 {
		r.fail("flags", fmt.Sprintf("unknown bits %#x", flags))
	}
	f.WantTopology = flags&helloFlagTopology != 0
}

// Welcome accepts a Hello. Payload: version u8, node ID str, server version
// str, connection ID u64, connection TTL ms u32, topology (as Topology).
type Welcome struct {
	Version       uint8  // the version both sides now speak
	NodeID        string // the broker's node ID (shared by a live/backup pair)
	ServerVersion string
	ConnectionID  uint64
	ConnectionTTL uint32 // ms the server applies
	Topology      Topology
}

// Type returns TypeWelcome.
func (*Welcome) Type() Type { return TypeWelcome }
func (f *Welcome) appendPayload(b []byte) []byte {
	b = appendU8(b, f.Version)
	b = appendStr(b, f.NodeID)
	b = appendStr(b, f.ServerVersion)
	b = appendU64(b, f.ConnectionID)
	b = appendU32(b, f.ConnectionTTL)
	return f.Topology.appendPayload(b)
}
func (f *Welcome) decodePayload(r *reader) {
	f.Version = r.u8("version")
	f.NodeID = r.str("node ID")
	f.ServerVersion = r.str("server version")
	f.ConnectionID = r.u64("connection ID")
	f.ConnectionTTL = r.u32("connection TTL")
	f.Topology.decodePayload(r)
}

// Member is one broker of a topology.
type Member struct {
	NodeID string
	Role   string // "primary" or "backup"
	State  string // "active", "waiting", "syncing", "stopping"
	URL    string // tcp://host:port clients use
	Epoch  uint64
}

// Topology is the set of brokers serving a node ID (live and backup), pushed
// by the server when it changes. Payload: epoch u64, list of {node ID str,
// role str, state str, URL str, epoch u64}.
type Topology struct {
	Epoch   uint64 // the sender's current epoch; a client ignores older topologies
	Members []Member
}

// Type returns TypeTopology.
func (*Topology) Type() Type { return TypeTopology }
func (f *Topology) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Epoch)
	b = appendCount(b, len(f.Members))
	for i := range f.Members {
		m := &f.Members[i]
		b = appendStr(b, m.NodeID)
		b = appendStr(b, m.Role)
		b = appendStr(b, m.State)
		b = appendStr(b, m.URL)
		b = appendU64(b, m.Epoch)
	}
	return b
}
func (f *Topology) decodePayload(r *reader) {
	f.Epoch = r.u64("epoch")
	n := r.count("member count", 12)
	f.Members = nil
	if n > 0 {
		f.Members = make([]Member, 0, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		var m Member
		m.NodeID = r.str("member node ID")
		m.Role = r.str("member role")
		m.State = r.str("member state")
		m.URL = r.str("member URL")
		m.Epoch = r.u64("member epoch")
		f.Members = append(f.Members, m)
	}
}

// status is the common {code u16, message str} payload.
type status struct {
	Code    Code
	Message string
}

func (s *status) appendStatus(b []byte) []byte {
	b = appendU16(b, uint16(s.Code))
	return appendStr(b, s.Message)
}
func (s *status) decodeStatus(r *reader) {
	s.Code = Code(r.u16("code"))
	s.Message = r.str("message")
}

// Error is a fatal error: the sender closes the connection after it.
// Payload: code u16, message str.
type Error struct {
	Code    Code
	Message string
}

// Type returns TypeError.
func (*Error) Type() Type { return TypeError }
func (f *Error) appendPayload(b []byte) []byte {
	return (*status)(f).appendStatus(b)
}
func (f *Error) decodePayload(r *reader) { (*status)(f).decodeStatus(r) }

// Disconnect tells the client the server is going away (CodeShuttingDown,
// CodeUnavailable when fenced or halted). Payload: code u16, message str.
type Disconnect struct {
	Code    Code
	Message string
}

// Type returns TypeDisconnect.
func (*Disconnect) Type() Type { return TypeDisconnect }
func (f *Disconnect) appendPayload(b []byte) []byte {
	return (*status)(f).appendStatus(b)
}
func (f *Disconnect) decodePayload(r *reader) { (*status)(f).decodeStatus(r) }

// Result answers CreateSession, CloseSession, Commit, Rollback, CreateQueue,
// DeleteQueue and CloseConsumer. Payload: code u16, message str.
type Result struct {
	Code    Code
	Message string
}

// Type returns TypeResult.
func (*Result) Type() Type { return TypeResult }
func (f *Result) appendPayload(b []byte) []byte {
	return (*status)(f).appendStatus(b)
}
func (f *Result) decodePayload(r *reader) { (*status)(f).decodeStatus(r) }

// Ping asks for a Pong with the same corr. Empty payload.
type Ping struct{}

// Type returns TypePing.
func (*Ping) Type() Type                    { return TypePing }
func (*Ping) appendPayload(b []byte) []byte { return b }
func (*Ping) decodePayload(*reader)         {}

// Pong answers a Ping. Empty payload.
type Pong struct{}

// Type returns TypePong.
func (*Pong) Type() Type                    { return TypePong }
func (*Pong) appendPayload(b []byte) []byte { return b }
func (*Pong) decodePayload(*reader)         {}

// CreateSession opens a session with a client-chosen ID. Payload: session
// u64, transacted bool, name str.
type CreateSession struct {
	Session    uint64
	Transacted bool
	Name       string // for logs and /status; may be ""
}

// Type returns TypeCreateSession.
func (*CreateSession) Type() Type { return TypeCreateSession }
func (f *CreateSession) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Session)
	b = appendBool(b, f.Transacted)
	return appendStr(b, f.Name)
}
func (f *CreateSession) decodePayload(r *reader) {
	f.Session = r.u64("session")
	f.Transacted = r.boolean("transacted")
	f.Name = r.str("name")
}

// sessionOnly is the {session u64} payload.
func appendSession(b []byte, s uint64) []byte { return appendU64(b, s) }

// CloseSession closes a session, its consumers (their unacknowledged
// messages are redelivered) and rolls back its open transaction. Payload:
// session u64.
type CloseSession struct{ Session uint64 }

// Type returns TypeCloseSession.
func (*CloseSession) Type() Type                      { return TypeCloseSession }
func (f *CloseSession) appendPayload(b []byte) []byte { return appendSession(b, f.Session) }
func (f *CloseSession) decodePayload(r *reader)       { f.Session = r.u64("session") }

// Commit commits the session's transaction. Payload: session u64.
type Commit struct{ Session uint64 }

// Type returns TypeCommit.
func (*Commit) Type() Type                      { return TypeCommit }
func (f *Commit) appendPayload(b []byte) []byte { return appendSession(b, f.Session) }
func (f *Commit) decodePayload(r *reader)       { f.Session = r.u64("session") }

// Rollback rolls back the session's transaction; its acknowledged messages
// are redelivered. Payload: session u64.
type Rollback struct{ Session uint64 }

// Type returns TypeRollback.
func (*Rollback) Type() Type                      { return TypeRollback }
func (f *Rollback) appendPayload(b []byte) []byte { return appendSession(b, f.Session) }
func (f *Rollback) decodePayload(r *reader)       { f.Session = r.u64("session") }

// CreateQueue creates a queue bound to an address. Payload: address str,
// queue str, routing u8, durable bool, temporary bool.
type CreateQueue struct {
	Address   string
	Queue     string
	Routing   RoutingType
	Durable   bool
	Temporary bool // deleted when the creating connection closes
}

// Type returns TypeCreateQueue.
func (*CreateQueue) Type() Type { return TypeCreateQueue }
func (f *CreateQueue) appendPayload(b []byte) []byte {
	b = appendStr(b, f.Address)
	b = appendStr(b, f.Queue)
	b = appendU8(b, uint8(f.Routing))
	b = appendBool(b, f.Durable)
	return appendBool(b, f.Temporary)
}
func (f *CreateQueue) decodePayload(r *reader) {
	f.Address = r.str("address")
	f.Queue = r.str("queue")
	f.Routing = RoutingType(r.u8("routing"))
	if !f.Routing.valid() {
		r.fail("routing", fmt.Sprintf("invalid routing type %d", f.Routing))
	}
	f.Durable = r.boolean("durable")
	f.Temporary = r.boolean("temporary")
}

// DeleteQueue deletes a queue and its messages. Payload: queue str.
type DeleteQueue struct{ Queue string }

// Type returns TypeDeleteQueue.
func (*DeleteQueue) Type() Type                      { return TypeDeleteQueue }
func (f *DeleteQueue) appendPayload(b []byte) []byte { return appendStr(b, f.Queue) }
func (f *DeleteQueue) decodePayload(r *reader)       { f.Queue = r.str("queue") }

// Send sends a message in a session. With corr != 0 the server answers with
// a SendResult (for a durable message: once it is durable); with corr 0 it
// does not answer. Payload: session u64, message.
type Send struct {
	Session uint64
	Message
}

// Type returns TypeSend.
func (*Send) Type() Type { return TypeSend }
func (f *Send) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Session)
	return f.Message.appendTo(b)
}
func (f *Send) decodePayload(r *reader) {
	f.Session = r.u64("session")
	f.Message.decode(r)
}

// SendResult answers a Send. Payload: code u16, message str, flags u8.
type SendResult struct {
	Code      Code
	Message   string
	Duplicate bool // the duplicate ID was already stored: not stored again
}

const sendResultFlagDuplicate = 1 << 0

// Type returns TypeSendResult.
func (*SendResult) Type() Type { return TypeSendResult }
func (f *SendResult) appendPayload(b []byte) []byte {
	b = appendU16(b, uint16(f.Code))
	b = appendStr(b, f.Message)
	var flags uint8
	if f.Duplicate {
		flags |= sendResultFlagDuplicate
	}
	return appendU8(b, flags)
}
func (f *SendResult) decodePayload(r *reader) {
	f.Code = Code(r.u16("code"))
	f.Message = r.str("message")
	flags := r.u8("flags")
	if flags&^sendResultFlagDuplicate != 0 {
		r.fail("flags", fmt.Sprintf("unknown bits %#x", flags))
	}
	f.Duplicate = flags&sendResultFlagDuplicate != 0
}

// CreateConsumer opens a consumer with a client-chosen ID on a queue.
// Payload: session u64, consumer u64, queue str, address str, routing u8,
// flags u8, filter str, initial credit u32.
//
// Queue names the queue; with Queue "" on a multicast address the server
// creates a temporary subscription queue and names it in ConsumerCreated.
// With AutoCreate the queue (and address) are created when missing, as the
// broker's address settings allow; Durable makes that queue durable.
type CreateConsumer struct {
	Session       uint64
	Consumer      uint64
	Queue         string
	Address       string // "" = same as Queue
	Routing       RoutingType
	AutoCreate    bool
	Durable       bool
	Filter        string // a message selector (SQL-92 subset, as Artemis's); "" = every message
	InitialCredit uint32 // messages
}

const (
	consumerFlagAutoCreate = 1 << 0
	consumerFlagDurable    = 1 << 1
)

// Type returns TypeCreateConsumer.
func (*CreateConsumer) Type() Type { return TypeCreateConsumer }
func (f *CreateConsumer) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Session)
	b = appendU64(b, f.Consumer)
	b = appendStr(b, f.Queue)
	b = appendStr(b, f.Address)
	b = appendU8(b, uint8(f.Routing))
	var flags uint8
	if f.AutoCreate {
		flags |= consumerFlagAutoCreate
	}
	if f.Durable {
		flags |= consumerFlagDurable
	}
	b = appendU8(b, flags)
	b = appendStr(b, f.Filter)
	return appendU32(b, f.InitialCredit)
}
func (f *CreateConsumer) decodePayload(r *reader) {
	f.Session = r.u64("session")
	f.Consumer = r.u64("consumer")
	f.Queue = r.str("queue")
	f.Address = r.str("address")
	f.Routing = RoutingType(r.u8("routing"))
	if !f.Routing.valid() {
		r.fail("routing", fmt.Sprintf("invalid routing type %d", f.Routing))
	}
	flags := r.u8("flags")
	if flags&^(consumerFlagAutoCreate|consumerFlagDurable) != 0 {
		r.fail("flags", fmt.Sprintf("unknown bits %#x", flags))
	}
	f.AutoCreate = flags&consumerFlagAutoCreate != 0
	f.Durable = flags&consumerFlagDurable != 0
	f.Filter = r.str("filter")
	f.InitialCredit = r.u32("initial credit")
}

// ConsumerCreated answers CreateConsumer. Payload: code u16, message str,
// queue str (the queue the consumer reads).
type ConsumerCreated struct {
	Code    Code
	Message string
	Queue   string
}

// Type returns TypeConsumerCreated.
func (*ConsumerCreated) Type() Type { return TypeConsumerCreated }
func (f *ConsumerCreated) appendPayload(b []byte) []byte {
	b = appendU16(b, uint16(f.Code))
	b = appendStr(b, f.Message)
	return appendStr(b, f.Queue)
}
func (f *ConsumerCreated) decodePayload(r *reader) {
	f.Code = Code(r.u16("code"))
	f.Message = r.str("message")
	f.Queue = r.str("queue")
}

// CloseConsumer closes a consumer; its unacknowledged messages are
// redelivered to others. Answered with Result. Payload: consumer u64.
type CloseConsumer struct{ Consumer uint64 }

// Type returns TypeCloseConsumer.
func (*CloseConsumer) Type() Type                      { return TypeCloseConsumer }
func (f *CloseConsumer) appendPayload(b []byte) []byte { return appendU64(b, f.Consumer) }
func (f *CloseConsumer) decodePayload(r *reader)       { f.Consumer = r.u64("consumer") }

// Credit lets the server deliver N more messages to a consumer. Not
// answered. Payload: consumer u64, n u32.
type Credit struct {
	Consumer uint64
	N        uint32
}

// Type returns TypeCredit.
func (*Credit) Type() Type { return TypeCredit }
func (f *Credit) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Consumer)
	return appendU32(b, f.N)
}
func (f *Credit) decodePayload(r *reader) {
	f.Consumer = r.u64("consumer")
	f.N = r.u32("credit")
}

// Deliver hands a message to a consumer (corr 0). Payload: consumer u64,
// message ID u64, delivery count u32, message.
type Deliver struct {
	Consumer      uint64
	MessageID     uint64 // broker-assigned; what Ack names
	DeliveryCount uint32 // 1 on first delivery
	Message
}

// Type returns TypeDeliver.
func (*Deliver) Type() Type { return TypeDeliver }
func (f *Deliver) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Consumer)
	b = appendU64(b, f.MessageID)
	b = appendU32(b, f.DeliveryCount)
	return f.Message.appendTo(b)
}
func (f *Deliver) decodePayload(r *reader) {
	f.Consumer = r.u64("consumer")
	f.MessageID = r.u64("message ID")
	f.DeliveryCount = r.u32("delivery count")
	f.Message.decode(r)
}

// Ack acknowledges delivered messages of one consumer (individual acks,
// several per frame). With corr != 0 the server answers with an AckConfirm
// once they are durable. Payload: consumer u64, list of message ID u64.
type Ack struct {
	Consumer   uint64
	MessageIDs []uint64
}

// Type returns TypeAck.
func (*Ack) Type() Type { return TypeAck }
func (f *Ack) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Consumer)
	b = appendCount(b, len(f.MessageIDs))
	for _, id := range f.MessageIDs {
		b = appendU64(b, id)
	}
	return b
}
func (f *Ack) decodePayload(r *reader) {
	f.Consumer = r.u64("consumer")
	f.MessageIDs = r.ids("message ID", f.MessageIDs)
}

// ids reads a list of u64, reusing buf.
func (r *reader) ids(field string, buf []uint64) []uint64 {
	n := r.count(field+" count", 8)
	buf = buf[:0]
	if n == 0 {
		return nil
	}
	for i := 0; i < n; i++ {
		buf = append(buf, r.u64(field))
	}
	return buf
}

// AckConfirm answers an Ack: the acks are durable, except the message IDs
// in Failed (not delivered to that consumer, or already acknowledged).
// A Code other than CodeOK means none of them is. Payload: code u16,
// message str, list of failed message ID u64.
type AckConfirm struct {
	Code    Code
	Message string
	Failed  []uint64
}

// Type returns TypeAckConfirm.
func (*AckConfirm) Type() Type { return TypeAckConfirm }
func (f *AckConfirm) appendPayload(b []byte) []byte {
	b = appendU16(b, uint16(f.Code))
	b = appendStr(b, f.Message)
	b = appendCount(b, len(f.Failed))
	for _, id := range f.Failed {
		b = appendU64(b, id)
	}
	return b
}
func (f *AckConfirm) decodePayload(r *reader) {
	f.Code = Code(r.u16("code"))
	f.Message = r.str("message")
	f.Failed = r.ids("failed", f.Failed)
}
