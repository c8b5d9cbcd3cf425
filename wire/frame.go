package wire

import (
	"fmt"
	"hash/crc32"
)

// Version is the protocol version this package speaks.
const Version = 1

// MinVersion is the oldest protocol version this package can speak.
const MinVersion = 1

// MaxBodySize is the largest message body accepted (1 MiB). Larger bodies
// are refused until large messages exist.
const MaxBodySize = 1 << 20

// MaxFrameSize is the largest frame, length field included: a maximal body
// plus room for properties and headers.
const MaxFrameSize = 2<<20 + 64<<10

// HeaderSize is the size of a frame's fixed header (length, version, type,
// corr); TrailerSize that of its CRC.
const (
	HeaderSize  = 4 + 1 + 1 + 8
	TrailerSize = 4
	// minLength is the smallest value of the length field (empty payload).
	minLength = HeaderSize - 4 + TrailerSize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Type is a frame type.
type Type uint8

// Frame types. The numbers are part of the protocol: never renumber.
const (
	TypeHello           Type = 1 // client -> server, first frame
	TypeWelcome         Type = 2 // server -> client, answer to Hello
	TypeError           Type = 3 // either way: fatal error, then close
	TypePing            Type = 4 // either way
	TypePong            Type = 5 // either way, answer to Ping
	TypeTopology        Type = 6 // server -> client, pushed
	TypeDisconnect      Type = 7 // server -> client: going away
	TypeResult          Type = 8 // server -> client, answer to blocking calls
	TypeCreateSession   Type = 16
	TypeCloseSession    Type = 17
	TypeCommit          Type = 18
	TypeRollback        Type = 19
	TypeCreateQueue     Type = 20
	TypeDeleteQueue     Type = 21
	TypeSend            Type = 32
	TypeSendResult      Type = 33
	TypeCreateConsumer  Type = 48
	TypeConsumerCreated Type = 49
	TypeCloseConsumer   Type = 50
	TypeCredit          Type = 51
	TypeDeliver         Type = 52
	TypeAck             Type = 53
	TypeAckConfirm      Type = 54
)

var typeNames = map[Type]string{
	TypeHello: "Hello", TypeWelcome: "Welcome", TypeError: "Error", TypePing: "Ping",
	TypePong: "Pong", TypeTopology: "Topology", TypeDisconnect: "Disconnect", TypeResult: "Result",
	TypeCreateSession: "CreateSession", TypeCloseSession: "CloseSession", TypeCommit: "Commit",
	TypeRollback: "Rollback", TypeCreateQueue: "CreateQueue", TypeDeleteQueue: "DeleteQueue",
	TypeSend: "Send", TypeSendResult: "SendResult", TypeCreateConsumer: "CreateConsumer",
	TypeConsumerCreated: "ConsumerCreated", TypeCloseConsumer: "CloseConsumer", TypeCredit: "Credit",
	TypeDeliver: "Deliver", TypeAck: "Ack", TypeAckConfirm: "AckConfirm",
}

// String returns the frame type's name.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Known reports whether t is a frame type of this protocol.
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

// Header is a decoded frame header.
type Header struct {
	Version uint8
	Type    Type
	Corr    uint64
}

// FrameError is a malformed, oversized or corrupted frame. The connection
// that produced it must be closed.
type FrameError struct {
	Offset int64 // stream offset of the frame's first byte (-1 when unknown)
	Type   Type  // frame type, 0 when not yet known
	Reason string
}

// Error names the frame type (when known), the offset and the reason.
func (e *FrameError) Error() string {
	if e.Type != 0 {
		return fmt.Sprintf("wire: bad %v frame at offset %d: %s", e.Type, e.Offset, e.Reason)
	}
	return fmt.Sprintf("wire: bad frame at offset %d: %s", e.Offset, e.Reason)
}

// Code is a result or error code carried by Result, SendResult,
// ConsumerCreated, AckConfirm, Error and Disconnect.
type Code uint16

// Codes. The numbers are part of the protocol: never renumber.
const (
	CodeOK                 Code = 0
	CodeUnsupportedVersion Code = 1  // no common protocol version
	CodeAuthFailed         Code = 2  // bad user or password
	CodeForbidden          Code = 3  // authenticated but not allowed
	CodeNotFound           Code = 4  // queue, address, session or consumer does not exist
	CodeExists             Code = 5  // already exists
	CodeInvalid            Code = 6  // request is well-formed but not acceptable
	CodeTooLarge           Code = 7  // message body larger than MaxBodySize
	CodeTxRolledBack       Code = 8  // the transaction was rolled back
	CodeUnavailable        Code = 9  // broker not active (backup, fenced, halted): go elsewhere
	CodeInternal           Code = 10 // broker-side failure
	CodeShuttingDown       Code = 11 // broker is stopping
	CodeProtocol           Code = 12 // protocol violation (frame out of place)
	CodeTimeout            Code = 13 // heartbeat timeout
	CodeLimit              Code = 14 // a broker limit was reached (max-queues, max-addresses)
)

var codeNames = map[Code]string{
	CodeOK: "ok", CodeUnsupportedVersion: "unsupported version", CodeAuthFailed: "authentication failed",
	CodeForbidden: "forbidden", CodeNotFound: "not found", CodeExists: "already exists",
	CodeInvalid: "invalid request", CodeTooLarge: "too large", CodeTxRolledBack: "transaction rolled back",
	CodeUnavailable: "unavailable", CodeInternal: "internal error", CodeShuttingDown: "shutting down",
	CodeProtocol: "protocol error", CodeTimeout: "timeout", CodeLimit: "limit reached",
}

// String returns a short description of the code.
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code %d", uint16(c))
}
