package wire

// Replication frames (issue 13): the conversation between a live broker
// and its replica (package replication), on a cluster connection. The
// replica connects to the live's acceptor and sends Hello with ClientID
// ReplicaClientID and the cluster credentials; after Welcome it sends
// ReplicaRegister, and from then on the connection carries only the frames
// below and Ping/Pong:
//
//	replica                              live
//	ReplicaRegister{node, group, url}  ->
//	                                  <- ReplicaStart{node, seq, stream}
//	                                  <- ReplicaData ... (every journal)
//	ReplicaAck{journal, position}      ->  (durable up to position)
//	                                  <- ReplicaSynced{seq, node}
//	ReplicaFailback                    ->  (a replica configured as primary)
//	                                  <- ReplicaHandover{seq}, close
//
// Every live frame carries the live's activation sequence (Seq); a replica
// refuses a frame whose sequence is older than one it has seen. A refusal
// of the registration is an Error frame (CodeUnavailable: not live, or
// CodeExists: another replica is attached).

// ReplicaClientID is the Hello client ID of a replication connection.
const ReplicaClientID = "$tandem.replica"

// Replication frame types.
const (
	TypeReplicaRegister Type = 64 // replica -> live, after Welcome
	TypeReplicaStart    Type = 65 // live -> replica
	TypeReplicaData     Type = 66 // live -> replica: journal bytes
	TypeReplicaAck      Type = 67 // replica -> live: durable up to
	TypeReplicaSynced   Type = 68 // live -> replica: initial sync complete
	TypeReplicaFailback Type = 69 // replica -> live: please hand over
	TypeReplicaHandover Type = 70 // live -> replica: handed over, take the lock
)

func init() {
	for t, n := range map[Type]string{
		TypeReplicaRegister: "ReplicaRegister", TypeReplicaStart: "ReplicaStart", TypeReplicaData: "ReplicaData",
		TypeReplicaAck: "ReplicaAck", TypeReplicaSynced: "ReplicaSynced", TypeReplicaFailback: "ReplicaFailback",
		TypeReplicaHandover: "ReplicaHandover",
	} {
		typeNames[t] = n
	}
}

// newReplicationFrame returns a zero replication frame of type t, or nil.
func newReplicationFrame(t Type) Frame {
	switch t {
	case TypeReplicaRegister:
		return new(ReplicaRegister)
	case TypeReplicaStart:
		return new(ReplicaStart)
	case TypeReplicaData:
		return new(ReplicaData)
	case TypeReplicaAck:
		return new(ReplicaAck)
	case TypeReplicaSynced:
		return new(ReplicaSynced)
	case TypeReplicaFailback:
		return new(ReplicaFailback)
	case TypeReplicaHandover:
		return new(ReplicaHandover)
	}
	return nil
}

// Journal IDs of ReplicaData and ReplicaAck: the broker's journals in a
// fixed order (bindings, messages, then any the broker adds: paging, large
// messages), at most MaxReplicaJournals.
const (
	JournalBindings uint8 = 0
	JournalMessages uint8 = 1
	// MaxReplicaJournals bounds the journal IDs.
	MaxReplicaJournals = 8
)

// MaxReplicaData is the most journal bytes one ReplicaData carries.
const MaxReplicaData = 1 << 20

// ReplicaRegister asks the live for a replication stream. Payload: node
// ID str (the replica's, may be empty), group str, URL str (where the
// replica serves once it activates), local sequence u64.
type ReplicaRegister struct {
	NodeID   string
	Group    string
	URL      string
	LocalSeq uint64
}

// Type returns TypeReplicaRegister.
func (*ReplicaRegister) Type() Type { return TypeReplicaRegister }
func (f *ReplicaRegister) appendPayload(b []byte) []byte {
	b = appendStr(b, f.NodeID)
	b = appendStr(b, f.Group)
	b = appendStr(b, f.URL)
	return appendU64(b, f.LocalSeq)
}
func (f *ReplicaRegister) decodePayload(r *reader) {
	f.NodeID = r.str("node ID")
	f.Group = r.str("group")
	f.URL = r.str("url")
	f.LocalSeq = r.u64("local sequence")
}

// ReplicaStart accepts a registration: a full copy of both journals
// follows. Payload: node ID str, sequence u64, stream ID u64, journals u8.
type ReplicaStart struct {
	NodeID   string // the pair's node ID, which the replica adopts
	Seq      uint64 // the live's activation sequence
	StreamID uint64 // random, names this stream in logs
	Journals uint8  // how many journals follow (the replica must keep as many)
}

// Type returns TypeReplicaStart.
func (*ReplicaStart) Type() Type { return TypeReplicaStart }
func (f *ReplicaStart) appendPayload(b []byte) []byte {
	b = appendStr(b, f.NodeID)
	b = appendU64(b, f.Seq)
	b = appendU64(b, f.StreamID)
	return appendU8(b, f.Journals)
}
func (f *ReplicaStart) decodePayload(r *reader) {
	f.NodeID = r.str("node ID")
	f.Seq = r.u64("sequence")
	f.StreamID = r.u64("stream ID")
	f.Journals = r.u8("journals")
	if f.Journals > MaxReplicaJournals {
		r.fail("journals", "more than MaxReplicaJournals")
	}
}

// ReplicaData is a range of durable journal bytes, to be written at its
// position into the segment file of that sequence. Payload: sequence u64,
// journal u8, segment sequence u64, offset u64, segment epoch u64, segment
// size u64, sealed bool, oldest u64, data bytes.
type ReplicaData struct {
	Seq         uint64 // the live's activation sequence
	Journal     uint8  // JournalBindings, JournalMessages, ... (< MaxReplicaJournals)
	Segment     uint64
	Offset      uint64
	Epoch       uint64 // the segment header's epoch
	SegmentSize uint64
	Sealed      bool   // Data ends with the segment's seal record
	Oldest      uint64 // the oldest segment the live keeps: older copies may go
	Data        []byte
}

// Type returns TypeReplicaData.
func (*ReplicaData) Type() Type { return TypeReplicaData }
func (f *ReplicaData) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Seq)
	b = appendU8(b, f.Journal)
	b = appendU64(b, f.Segment)
	b = appendU64(b, f.Offset)
	b = appendU64(b, f.Epoch)
	b = appendU64(b, f.SegmentSize)
	b = appendBool(b, f.Sealed)
	b = appendU64(b, f.Oldest)
	return appendBytes(b, f.Data)
}
func (f *ReplicaData) decodePayload(r *reader) {
	f.Seq = r.u64("sequence")
	f.Journal = r.u8("journal")
	f.Segment = r.u64("segment")
	f.Offset = r.u64("offset")
	f.Epoch = r.u64("epoch")
	f.SegmentSize = r.u64("segment size")
	f.Sealed = r.boolean("sealed")
	f.Oldest = r.u64("oldest")
	f.Data = r.bytes("data")
	if f.Journal >= MaxReplicaJournals {
		r.fail("journal", "unknown journal")
	}
	if len(f.Data) > MaxReplicaData {
		r.fail("data", "larger than MaxReplicaData")
	}
}

// ReplicaAck says the replica holds every byte of a journal before
// (Segment, Offset) durably. Payload: journal u8, segment u64, offset u64.
type ReplicaAck struct {
	Journal uint8
	Segment uint64
	Offset  uint64
}

// Type returns TypeReplicaAck.
func (*ReplicaAck) Type() Type { return TypeReplicaAck }
func (f *ReplicaAck) appendPayload(b []byte) []byte {
	b = appendU8(b, f.Journal)
	b = appendU64(b, f.Segment)
	return appendU64(b, f.Offset)
}
func (f *ReplicaAck) decodePayload(r *reader) {
	f.Journal = r.u8("journal")
	f.Segment = r.u64("segment")
	f.Offset = r.u64("offset")
	if f.Journal >= MaxReplicaJournals {
		r.fail("journal", "unknown journal")
	}
}

// ReplicaSynced ends the initial sync: the replica holds everything the
// live acknowledged, and from now on everything it acknowledges. Payload:
// sequence u64, node ID str.
type ReplicaSynced struct {
	Seq    uint64
	NodeID string
}

// Type returns TypeReplicaSynced.
func (*ReplicaSynced) Type() Type { return TypeReplicaSynced }
func (f *ReplicaSynced) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Seq)
	return appendStr(b, f.NodeID)
}
func (f *ReplicaSynced) decodePayload(r *reader) {
	f.Seq = r.u64("sequence")
	f.NodeID = r.str("node ID")
}

// ReplicaFailback asks the live to hand over to this replica. Empty
// payload.
type ReplicaFailback struct{}

// Type returns TypeReplicaFailback.
func (*ReplicaFailback) Type() Type                    { return TypeReplicaFailback }
func (*ReplicaFailback) appendPayload(b []byte) []byte { return b }
func (*ReplicaFailback) decodePayload(*reader)         {}

// ReplicaHandover says the live stopped serving, the replica holds
// everything it wrote, and it releases the lock for the replica. Payload:
// sequence u64.
type ReplicaHandover struct {
	Seq uint64
}

// Type returns TypeReplicaHandover.
func (*ReplicaHandover) Type() Type { return TypeReplicaHandover }
func (f *ReplicaHandover) appendPayload(b []byte) []byte {
	return appendU64(b, f.Seq)
}
func (f *ReplicaHandover) decodePayload(r *reader) {
	f.Seq = r.u64("sequence")
}
