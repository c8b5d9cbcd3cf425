package wire

// Management frames (issue 16): `tandem queue` and `tandem address` talk
// to a broker over its client acceptor, authenticated as a client, with
// the same operations and JSON as the management HTTP API
// (docs/management.md):
//
//	client                               server
//	Manage{op, args JSON}             c ->
//	                                   <- ManageResult{code, message, body JSON} c
//
// An operation the broker does not know is answered with CodeInvalid; a
// broker older than these frames closes the connection on an unknown
// frame type (the client reports it).

// Management frame types.
const (
	TypeManage       Type = 80 // client -> server
	TypeManageResult Type = 81 // server -> client, answer to Manage
)

// MaxManageBody is the most JSON a ManageResult carries: what a browse
// or a list returns is cut to fit.
const MaxManageBody = MaxFrameSize - 64<<10

func init() {
	typeNames[TypeManage] = "Manage"
	typeNames[TypeManageResult] = "ManageResult"
}

// newManageFrame returns a zero management frame of type t, or nil.
func newManageFrame(t Type) Frame {
	switch t {
	case TypeManage:
		return new(Manage)
	case TypeManageResult:
		return new(ManageResult)
	}
	return nil
}

// Manage asks for a management operation. Payload: op str (for example
// "queue.create"), args bytes (a JSON object).
type Manage struct {
	Op   string
	Args []byte
}

// Type returns TypeManage.
func (*Manage) Type() Type { return TypeManage }
func (f *Manage) appendPayload(b []byte) []byte {
	b = appendStr(b, f.Op)
	return appendBytes(b, f.Args)
}
func (f *Manage) decodePayload(r *reader) {
	f.Op = r.str("op")
	f.Args = r.bytes("args")
}

// ManageResult answers Manage. Payload: code u16, message str, body bytes
// (JSON; empty on error).
type ManageResult struct {
	Code    Code
	Message string
	Body    []byte
}

// Type returns TypeManageResult.
func (*ManageResult) Type() Type { return TypeManageResult }
func (f *ManageResult) appendPayload(b []byte) []byte {
	b = appendU16(b, uint16(f.Code))
	b = appendStr(b, f.Message)
	return appendBytes(b, f.Body)
}
func (f *ManageResult) decodePayload(r *reader) {
	f.Code = Code(r.u16("code"))
	f.Message = r.str("message")
	f.Body = r.bytes("body")
}
