package wire

import "fmt"

// Cluster frames (issue 19): a live broker moves messages to another live
// broker of its cluster (scale-down on a graceful stop). The source
// connects to the target's acceptor and sends Hello with ClientID
// ClusterClientID and the cluster credentials; after Welcome:
//
//	source                                    target
//	ClusterJoin{node, name, epoch, stream}  ->
//	                                        <- ClusterJoined{node, group, epoch, watermark}
//	ClusterMessages{epoch, messages}     c  ->
//	                                        <- ClusterAck c (once durable)
//	ClusterDupIDs{epoch, addresses}      c  ->
//	                                        <- ClusterAck c (once durable)
//
// Every ClusterMessage names the source's message ID; the source sends a
// stream's messages in ascending ID order, and the target keeps, durably
// and in the same journal append as the messages, the highest ID it
// applied per source node and stream (the watermark): a resend of what it
// holds (the source crashed before it recorded the answer) is dropped, not
// stored twice. The source's epoch is checked against the largest the
// target has seen from that node: an older one is refused
// (CodeUnavailable). A ClusterAck with a code other than CodeOK means
// nothing of the frame was stored.

// ClusterClientID is the Hello client ID of a cluster connection.
const ClusterClientID = "$tandem.cluster"

// Cluster frame types.
const (
	TypeClusterJoin     Type = 96  // source -> target, after Welcome
	TypeClusterJoined   Type = 97  // target -> source
	TypeClusterMessages Type = 98  // source -> target
	TypeClusterDupIDs   Type = 99  // source -> target
	TypeClusterAck      Type = 100 // target -> source: answer to Messages and DupIDs
	TypeBackupRequest   Type = 101 // requester -> host, after Welcome
	TypeBackupAnswer    Type = 102 // host -> requester
	TypeClusterBindings Type = 103 // target -> source, after ClusterJoin with stream BindingsStream
)

// Streams of ClusterJoin besides scale-down's (docs/clustering.md):
// ForwardStream carries messages load balancing or redistribution sends
// to another live (each with a duplicate ID the target's cache checks; no
// watermark), BindingsStream asks the target to push its queues and
// consumer counts (ClusterBindings) for as long as the connection lasts.
const (
	ForwardStream  = "forward"
	BindingsStream = "bindings"
)

// ForwardIDProperty and RedistIDProperty are the string properties that
// give every message on a ForwardStream its forward ID, the duplicate ID
// the target's cache checks and keeps for it: ForwardIDProperty on a
// load-balanced message (the target checks and keeps the message's own
// duplicate ID too: a client may have resent it there), RedistIDProperty
// on a redistributed one (only its own). The source makes them of its
// node ID and message ID, which its journal keeps. The target removes
// them before storing; the message's duplicate ID stays as the client
// sent it.
const (
	ForwardIDProperty = "_TANDEM_FWD_ID"
	RedistIDProperty  = "_TANDEM_REDIST_ID"
)

// OriginProperty is the string property every message on a ForwardStream
// or a scale-down carries: the node ID of the broker a client sent it to
// (the broker whose duplicate-ID cache registered the client's duplicate
// ID). The target removes it and keeps it with the message; a target that
// is that broker does not drop the message for its own cache's entry.
const OriginProperty = "_TANDEM_ORIGIN"

// Flags of a ClusterQueue and of a ClusterAddress.
const (
	// ClusterDurable marks a durable queue.
	ClusterDurable uint8 = 1 << 0
	// ClusterAutoCreated marks a queue or address a client's send or
	// consumer created (auto-create), so the target may auto-delete it.
	ClusterAutoCreated uint8 = 1 << 1
	// ClusterAnycast and ClusterMulticast are an address's routing types.
	ClusterAnycast   uint8 = 1 << 2
	ClusterMulticast uint8 = 1 << 3

	clusterQueueFlags   = ClusterDurable | ClusterAutoCreated
	clusterAddressFlags = ClusterAutoCreated | ClusterAnycast | ClusterMulticast
)

func init() {
	for t, n := range map[Type]string{
		TypeClusterJoin: "ClusterJoin", TypeClusterJoined: "ClusterJoined", TypeClusterMessages: "ClusterMessages",
		TypeClusterDupIDs: "ClusterDupIDs", TypeClusterAck: "ClusterAck", TypeBackupRequest: "BackupRequest",
		TypeBackupAnswer: "BackupAnswer", TypeClusterBindings: "ClusterBindings",
	} {
		typeNames[t] = n
	}
}

// newClusterFrame returns a zero cluster frame of type t, or nil.
func newClusterFrame(t Type) Frame {
	switch t {
	case TypeClusterJoin:
		return new(ClusterJoin)
	case TypeClusterJoined:
		return new(ClusterJoined)
	case TypeClusterMessages:
		return new(ClusterMessages)
	case TypeClusterDupIDs:
		return new(ClusterDupIDs)
	case TypeClusterAck:
		return new(ClusterAck)
	case TypeBackupRequest:
		return new(BackupRequest)
	case TypeBackupAnswer:
		return new(BackupAnswer)
	case TypeClusterBindings:
		return new(ClusterBindings)
	}
	return nil
}

// ClusterJoin opens a cluster conversation. Payload: node ID str, name
// str, epoch u64, stream str.
type ClusterJoin struct {
	NodeID string // the source's node ID
	Name   string // the source's <name>, for logs
	Epoch  uint64 // the source's activation epoch
	Stream string // what the messages are for ("scale-down")
}

// Type returns TypeClusterJoin.
func (*ClusterJoin) Type() Type { return TypeClusterJoin }
func (f *ClusterJoin) appendPayload(b []byte) []byte {
	b = appendStr(b, f.NodeID)
	b = appendStr(b, f.Name)
	b = appendU64(b, f.Epoch)
	return appendStr(b, f.Stream)
}
func (f *ClusterJoin) decodePayload(r *reader) {
	f.NodeID = r.str("node ID")
	f.Name = r.str("name")
	f.Epoch = r.u64("epoch")
	f.Stream = r.str("stream")
}

// ClusterJoined answers ClusterJoin. Payload: code u16, message str, node
// ID str, name str, group str, epoch u64, watermark u64.
type ClusterJoined struct {
	Code    Code
	Message string
	NodeID  string // the target's node ID
	Name    string // the target's <name>
	Group   string // the target's group name ("" = none)
	Epoch   uint64 // the target's epoch
	// Watermark is the highest source message ID the target holds from
	// this source node and stream (0: none).
	Watermark uint64
}

// Type returns TypeClusterJoined.
func (*ClusterJoined) Type() Type { return TypeClusterJoined }
func (f *ClusterJoined) appendPayload(b []byte) []byte {
	b = appendU16(b, uint16(f.Code))
	b = appendStr(b, f.Message)
	b = appendStr(b, f.NodeID)
	b = appendStr(b, f.Name)
	b = appendStr(b, f.Group)
	b = appendU64(b, f.Epoch)
	return appendU64(b, f.Watermark)
}
func (f *ClusterJoined) decodePayload(r *reader) {
	f.Code = Code(r.u16("code"))
	f.Message = r.str("message")
	f.NodeID = r.str("node ID")
	f.Name = r.str("name")
	f.Group = r.str("group")
	f.Epoch = r.u64("epoch")
	f.Watermark = r.u64("watermark")
}

// ClusterQueue is one queue a moved message is in on the source.
type ClusterQueue struct {
	Name       string
	Address    string
	Routing    RoutingType
	Flags      uint8  // ClusterDurable, ClusterAutoCreated
	Deliveries uint32 // times the source delivered it from this queue
}

// ClusterMessage is one moved message: its ID on the source, the queues
// holding it there, and the message (properties, duplicate ID, body).
type ClusterMessage struct {
	ID      uint64
	Queues  []ClusterQueue
	Message Message
}

// ClusterMessages moves messages, in ascending ID order. Payload: epoch
// u64, list of {ID u64, list of {name str, address str, routing u8, flags
// u8, deliveries u32}, message}.
type ClusterMessages struct {
	Epoch    uint64
	Messages []ClusterMessage
}

// Type returns TypeClusterMessages.
func (*ClusterMessages) Type() Type { return TypeClusterMessages }
func (f *ClusterMessages) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Epoch)
	b = appendCount(b, len(f.Messages))
	for i := range f.Messages {
		m := &f.Messages[i]
		b = appendU64(b, m.ID)
		b = appendCount(b, len(m.Queues))
		for j := range m.Queues {
			q := &m.Queues[j]
			b = appendStr(b, q.Name)
			b = appendStr(b, q.Address)
			b = appendU8(b, uint8(q.Routing))
			b = appendU8(b, q.Flags)
			b = appendU32(b, q.Deliveries)
		}
		b = m.Message.appendTo(b)
	}
	return b
}
func (f *ClusterMessages) decodePayload(r *reader) {
	f.Epoch = r.u64("epoch")
	// A message takes at least 8 (ID) + 1 (queue count) + 13 (an empty
	// message: flags, routing, address, duplicate ID, timestamp, counts)
	// bytes.
	n := r.count("message count", 22)
	f.Messages = nil
	if n > 0 {
		f.Messages = make([]ClusterMessage, 0, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		var m ClusterMessage
		m.ID = r.u64("message ID")
		nq := r.count("queue count", 8)
		if nq > 0 {
			m.Queues = make([]ClusterQueue, 0, nq)
		}
		for j := 0; j < nq && r.err == nil; j++ {
			var q ClusterQueue
			q.Name = r.str("queue name")
			q.Address = r.str("queue address")
			q.Routing = RoutingType(r.u8("queue routing"))
			if !q.Routing.valid() || q.Routing == RoutingDefault {
				r.fail("queue routing", fmt.Sprintf("invalid routing type %d", q.Routing))
			}
			q.Flags = r.u8("queue flags")
			if q.Flags&^clusterQueueFlags != 0 {
				r.fail("queue flags", fmt.Sprintf("unknown bits %#x", q.Flags))
			}
			q.Deliveries = r.u32("deliveries")
			m.Queues = append(m.Queues, q)
		}
		m.Message.decode(r)
		f.Messages = append(f.Messages, m)
	}
}

// ClusterAddress is one address's duplicate-ID cache on the source.
type ClusterAddress struct {
	Name  string
	Flags uint8 // ClusterAnycast, ClusterMulticast, ClusterAutoCreated
	IDs   []string
}

// ClusterDupIDs moves duplicate-ID caches (after the messages). Payload:
// epoch u64, list of {name str, flags u8, list of ID str}.
type ClusterDupIDs struct {
	Epoch     uint64
	Addresses []ClusterAddress
}

// Type returns TypeClusterDupIDs.
func (*ClusterDupIDs) Type() Type { return TypeClusterDupIDs }
func (f *ClusterDupIDs) appendPayload(b []byte) []byte {
	b = appendU64(b, f.Epoch)
	b = appendCount(b, len(f.Addresses))
	for i := range f.Addresses {
		a := &f.Addresses[i]
		b = appendStr(b, a.Name)
		b = appendU8(b, a.Flags)
		b = appendCount(b, len(a.IDs))
		for _, id := range a.IDs {
			b = appendStr(b, id)
		}
	}
	return b
}
func (f *ClusterDupIDs) decodePayload(r *reader) {
	f.Epoch = r.u64("epoch")
	n := r.count("address count", 3)
	f.Addresses = nil
	if n > 0 {
		f.Addresses = make([]ClusterAddress, 0, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		var a ClusterAddress
		a.Name = r.str("address")
		a.Flags = r.u8("address flags")
		if a.Flags&^clusterAddressFlags != 0 {
			r.fail("address flags", fmt.Sprintf("unknown bits %#x", a.Flags))
		}
		ni := r.count("ID count", 1)
		if ni > 0 {
			a.IDs = make([]string, 0, ni)
		}
		for j := 0; j < ni && r.err == nil; j++ {
			a.IDs = append(a.IDs, r.str("duplicate ID"))
		}
		f.Addresses = append(f.Addresses, a)
	}
}

// ClusterAck answers ClusterMessages and ClusterDupIDs once what they
// carried is durable on the target. Payload: code u16, message str,
// watermark u64, stored u32, dropped u32.
type ClusterAck struct {
	Code      Code
	Message   string
	Watermark uint64 // the target's watermark for the source after this frame
	Stored    uint32 // messages (or IDs) stored
	Dropped   uint32 // already held (at or below the watermark, or a known duplicate ID)
}

// Type returns TypeClusterAck.
func (*ClusterAck) Type() Type { return TypeClusterAck }
func (f *ClusterAck) appendPayload(b []byte) []byte {
	b = appendU16(b, uint16(f.Code))
	b = appendStr(b, f.Message)
	b = appendU64(b, f.Watermark)
	b = appendU32(b, f.Stored)
	return appendU32(b, f.Dropped)
}
func (f *ClusterAck) decodePayload(r *reader) {
	f.Code = Code(r.u16("code"))
	f.Message = r.str("message")
	f.Watermark = r.u64("watermark")
	f.Stored = r.u32("stored")
	f.Dropped = r.u32("dropped")
}

// BackupRequest asks another live broker to host a colocated backup of
// the sender (<colocated><request-backup>), on a cluster connection after
// Welcome. The configuration is the sender's broker.xml (relative paths
// relative to InstanceDir) with what `tandem run` flags changed: the first
// acceptor's URL and the data directories as the sender runs them.
// Payload: node ID str, name str, store str ("shared-store" or
// "replication"), instance directory str, config name str, config bytes,
// listen str, list of directory str (journal, bindings, paging, large
// messages, node-manager lock).
type BackupRequest struct {
	NodeID      string
	Name        string
	Store       string
	InstanceDir string
	ConfigName  string
	Config      []byte
	Listen      string   // the first acceptor's URL as the sender runs it
	Dirs        []string // journal, bindings, paging, large messages, lock
}

// Type returns TypeBackupRequest.
func (*BackupRequest) Type() Type { return TypeBackupRequest }
func (f *BackupRequest) appendPayload(b []byte) []byte {
	b = appendStr(b, f.NodeID)
	b = appendStr(b, f.Name)
	b = appendStr(b, f.Store)
	b = appendStr(b, f.InstanceDir)
	b = appendStr(b, f.ConfigName)
	b = appendBytes(b, f.Config)
	b = appendStr(b, f.Listen)
	b = appendCount(b, len(f.Dirs))
	for _, d := range f.Dirs {
		b = appendStr(b, d)
	}
	return b
}
func (f *BackupRequest) decodePayload(r *reader) {
	f.NodeID = r.str("node ID")
	f.Name = r.str("name")
	f.Store = r.str("store")
	f.InstanceDir = r.str("instance directory")
	f.ConfigName = r.str("config name")
	f.Config = r.bytes("config")
	f.Listen = r.str("listen")
	n := r.count("directory count", 1)
	f.Dirs = nil
	for i := 0; i < n && r.err == nil; i++ {
		f.Dirs = append(f.Dirs, r.str("directory"))
	}
}

// BackupAnswer answers BackupRequest: CodeOK once the backup runs (its
// acceptor answers), CodeLimit when the host runs max-backups already.
// Payload: code u16, message str, backup name str, URL str.
type BackupAnswer struct {
	Code    Code
	Message string
	Name    string // the hosted backup's name (colocated_backup_N)
	URL     string // where the backup's acceptor is (tcp://host:port)
}

// Type returns TypeBackupAnswer.
func (*BackupAnswer) Type() Type { return TypeBackupAnswer }
func (f *BackupAnswer) appendPayload(b []byte) []byte {
	b = appendU16(b, uint16(f.Code))
	b = appendStr(b, f.Message)
	b = appendStr(b, f.Name)
	return appendStr(b, f.URL)
}
func (f *BackupAnswer) decodePayload(r *reader) {
	f.Code = Code(r.u16("code"))
	f.Message = r.str("message")
	f.Name = r.str("name")
	f.URL = r.str("url")
}

// ClusterBinding is one queue of a broker as its cluster peers see it
// (a remote binding there).
type ClusterBinding struct {
	Name      string
	Address   string
	Routing   RoutingType // RoutingAnycast or RoutingMulticast
	Filter    string      // the queue's filter ("" = none)
	Consumers uint32      // consumers attached now
}

// ClusterBindings is a broker's full set of queues with their consumer
// counts, pushed on a BindingsStream connection at the join and after
// every change (queue created or deleted, consumer count changed); each
// replaces the previous one. A broker that scaled down pushes a last one
// naming its target (ScaledDownTo): its peers then send what waits for it
// to that target. Payload: node ID str, epoch u64, sequence u64, scaled
// down to str, list of {name str, address str, routing u8, filter str,
// consumers u32}.
type ClusterBindings struct {
	NodeID   string
	Epoch    uint64
	Sequence uint64 // increases with every push on a connection
	// ScaledDownTo is the node ID of the broker this one scaled down
	// into ("": it serves).
	ScaledDownTo string
	Queues       []ClusterBinding
}

// Type returns TypeClusterBindings.
func (*ClusterBindings) Type() Type { return TypeClusterBindings }
func (f *ClusterBindings) appendPayload(b []byte) []byte {
	b = appendStr(b, f.NodeID)
	b = appendU64(b, f.Epoch)
	b = appendU64(b, f.Sequence)
	b = appendStr(b, f.ScaledDownTo)
	b = appendCount(b, len(f.Queues))
	for i := range f.Queues {
		q := &f.Queues[i]
		b = appendStr(b, q.Name)
		b = appendStr(b, q.Address)
		b = appendU8(b, uint8(q.Routing))
		b = appendStr(b, q.Filter)
		b = appendU32(b, q.Consumers)
	}
	return b
}
func (f *ClusterBindings) decodePayload(r *reader) {
	f.NodeID = r.str("node ID")
	f.Epoch = r.u64("epoch")
	f.Sequence = r.u64("sequence")
	f.ScaledDownTo = r.str("scaled down to")
	// A binding takes at least 3 (empty strings) + 1 (routing) + 4 bytes.
	n := r.count("queue count", 8)
	f.Queues = nil
	if n > 0 {
		f.Queues = make([]ClusterBinding, 0, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		var q ClusterBinding
		q.Name = r.str("queue name")
		q.Address = r.str("queue address")
		q.Routing = RoutingType(r.u8("queue routing"))
		if q.Routing != RoutingAnycast && q.Routing != RoutingMulticast {
			r.fail("queue routing", fmt.Sprintf("invalid routing type %d", q.Routing))
		}
		q.Filter = r.str("queue filter")
		q.Consumers = r.u32("consumers")
		f.Queues = append(f.Queues, q)
	}
}
