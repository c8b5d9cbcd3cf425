package amqp

import "fmt"

// Type codes (format codes) of the AMQP 1.0 type system (part 1, section
// 1.6 of the specification).
const (
	codeDescribed  byte = 0x00
	codeNull       byte = 0x40
	codeTrue       byte = 0x41
	codeFalse      byte = 0x42
	codeUint0      byte = 0x43
	codeUlong0     byte = 0x44
	codeList0      byte = 0x45
	codeUbyte      byte = 0x50
	codeByte       byte = 0x51
	codeSmallUint  byte = 0x52
	codeSmallUlong byte = 0x53
	codeSmallInt   byte = 0x54
	codeSmallLong  byte = 0x55
	codeBool       byte = 0x56
	codeUshort     byte = 0x60
	codeShort      byte = 0x61
	codeUint       byte = 0x70
	codeInt        byte = 0x71
	codeFloat      byte = 0x72
	codeChar       byte = 0x73
	codeDecimal32  byte = 0x74
	codeUlong      byte = 0x80
	codeLong       byte = 0x81
	codeDouble     byte = 0x82
	codeTimestamp  byte = 0x83
	codeDecimal64  byte = 0x84
	codeDecimal128 byte = 0x94
	codeUUID       byte = 0x98
	codeVbin8      byte = 0xa0
	codeStr8       byte = 0xa1
	codeSym8       byte = 0xa3
	codeVbin32     byte = 0xb0
	codeStr32      byte = 0xb1
	codeSym32      byte = 0xb3
	codeList8      byte = 0xc0
	codeMap8       byte = 0xc1
	codeList32     byte = 0xd0
	codeMap32      byte = 0xd1
	codeArray8     byte = 0xe0
	codeArray32    byte = 0xf0
)

// fixedWidth returns the width of a fixed-width type's value (after its
// constructor), or -1 for a variable-width or unknown code.
func fixedWidth(code byte) int {
	switch code {
	case codeNull, codeTrue, codeFalse, codeUint0, codeUlong0, codeList0:
		return 0
	case codeUbyte, codeByte, codeSmallUint, codeSmallUlong, codeSmallInt, codeSmallLong, codeBool:
		return 1
	case codeUshort, codeShort:
		return 2
	case codeUint, codeInt, codeFloat, codeChar, codeDecimal32:
		return 4
	case codeUlong, codeLong, codeDouble, codeTimestamp, codeDecimal64:
		return 8
	case codeDecimal128, codeUUID:
		return 16
	}
	return -1
}

// sizeWidth returns the width of the size prefix of a variable-width or
// compound type (1 or 4), or 0 for any other code.
func sizeWidth(code byte) int {
	switch code {
	case codeVbin8, codeStr8, codeSym8, codeList8, codeMap8, codeArray8:
		return 1
	case codeVbin32, codeStr32, codeSym32, codeList32, codeMap32, codeArray32:
		return 4
	}
	return 0
}

// Descriptor codes (domain 0x00000000) of the described types this
// package uses.
const (
	descOpen        uint64 = 0x10
	descBegin       uint64 = 0x11
	descAttach      uint64 = 0x12
	descFlow        uint64 = 0x13
	descTransfer    uint64 = 0x14
	descDisposition uint64 = 0x15
	descDetach      uint64 = 0x16
	descEnd         uint64 = 0x17
	descClose       uint64 = 0x18
	descError       uint64 = 0x1d

	descReceived uint64 = 0x23
	descAccepted uint64 = 0x24
	descRejected uint64 = 0x25
	descReleased uint64 = 0x26
	descModified uint64 = 0x27
	descSource   uint64 = 0x28
	descTarget   uint64 = 0x29

	descDeleteOnClose             uint64 = 0x2b
	descDeleteOnNoLinks           uint64 = 0x2c
	descDeleteOnNoMessages        uint64 = 0x2d
	descDeleteOnNoLinksOrMessages uint64 = 0x2e

	descCoordinator        uint64 = 0x30
	descDeclare            uint64 = 0x31
	descDischarge          uint64 = 0x32
	descDeclared           uint64 = 0x33
	descTransactionalState uint64 = 0x34

	descSASLMechanisms uint64 = 0x40
	descSASLInit       uint64 = 0x41
	descSASLChallenge  uint64 = 0x42
	descSASLResponse   uint64 = 0x43
	descSASLOutcome    uint64 = 0x44

	descHeader                uint64 = 0x70
	descDeliveryAnnotations   uint64 = 0x71
	descMessageAnnotations    uint64 = 0x72
	descProperties            uint64 = 0x73
	descApplicationProperties uint64 = 0x74
	descData                  uint64 = 0x75
	descAMQPSequence          uint64 = 0x76
	descAMQPValue             uint64 = 0x77
	descFooter                uint64 = 0x78
)

// symbolicDescriptors maps the symbolic form of a descriptor to its code:
// a peer may use either (part 1, section 1.5).
var symbolicDescriptors = map[string]uint64{
	"amqp:open:list": descOpen, "amqp:begin:list": descBegin, "amqp:attach:list": descAttach,
	"amqp:flow:list": descFlow, "amqp:transfer:list": descTransfer, "amqp:disposition:list": descDisposition,
	"amqp:detach:list": descDetach, "amqp:end:list": descEnd, "amqp:close:list": descClose,
	"amqp:error:list":    descError,
	"amqp:received:list": descReceived, "amqp:accepted:list": descAccepted, "amqp:rejected:list": descRejected,
	"amqp:released:list": descReleased, "amqp:modified:list": descModified,
	"amqp:source:list": descSource, "amqp:target:list": descTarget,
	"amqp:delete-on-close:list": descDeleteOnClose, "amqp:delete-on-no-links:list": descDeleteOnNoLinks,
	"amqp:delete-on-no-messages:list": descDeleteOnNoMessages, "amqp:delete-on-no-links-or-messages:list": descDeleteOnNoLinksOrMessages,
	"amqp:coordinator:list": descCoordinator, "amqp:declare:list": descDeclare, "amqp:discharge:list": descDischarge,
	"amqp:declared:list": descDeclared, "amqp:transactional-state:list": descTransactionalState,
	"amqp:sasl-mechanisms:list": descSASLMechanisms, "amqp:sasl-init:list": descSASLInit,
	"amqp:sasl-challenge:list": descSASLChallenge, "amqp:sasl-response:list": descSASLResponse,
	"amqp:sasl-outcome:list": descSASLOutcome,
	"amqp:header:list":       descHeader, "amqp:delivery-annotations:map": descDeliveryAnnotations,
	"amqp:message-annotations:map": descMessageAnnotations, "amqp:properties:list": descProperties,
	"amqp:application-properties:map": descApplicationProperties, "amqp:data:binary": descData,
	"amqp:amqp-sequence:list": descAMQPSequence, "amqp:amqp-value:*": descAMQPValue, "amqp:footer:map": descFooter,
}

// Symbol is an AMQP symbol (an ASCII name from a constrained domain).
type Symbol string

// Described is a described value whose descriptor this package does not
// interpret.
type Described struct {
	Descriptor any
	Value      any
}

// Map is an AMQP map as decoded: its key/value pairs in wire order.
type Map []MapEntry

// MapEntry is one key/value pair of a Map.
type MapEntry struct {
	Key, Value any
}

// Get returns the value of the first entry whose key equals k.
func (m Map) Get(k any) (any, bool) {
	for _, e := range m {
		if e.Key == k {
			return e.Value, true
		}
	}
	return nil, false
}

// Array is an AMQP array: elements of one type.
type Array []any

// Char is a UTF-32 character.
type Char rune

// Timestamp is milliseconds since the Unix epoch.
type Timestamp int64

// UUID is an RFC 4122 UUID.
type UUID [16]byte

// String formats u in the canonical 8-4-4-4-12 form.
func (u UUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Decimal32, Decimal64 and Decimal128 are IEEE 754 decimals, kept as their
// raw big-endian bytes.
type (
	Decimal32  [4]byte
	Decimal64  [8]byte
	Decimal128 [16]byte
)
