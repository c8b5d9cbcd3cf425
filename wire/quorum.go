package wire

// Quorum vote frames (issue 14): brokers of a cluster coordinated by the
// embedded quorum vote ask each other for votes and learn the cluster's
// membership. A broker connects to another's acceptor, sends Hello with
// ClientID QuorumClientID and the cluster credentials, then one
// QuorumRequest; the other answers with one QuorumAnswer (same corr), or
// with Error (CodeAuthFailed: wrong cluster credentials; CodeUnavailable:
// it takes no part in a vote), and closes the connection:
//
//	requester                            voter
//	Hello{QuorumClientID, cluster user} ->
//	QuorumRequest{kind, node, from, seq, owner, lease, sender}  c ->
//	                                  <- QuorumAnswer{verdict, voter, entry, self, members} c
//
// Every request and every member carries an activation sequence (the data
// version): a voter refuses a broker whose data is older than a version it
// knows of for that node ID.

// QuorumClientID is the Hello client ID of a quorum vote connection.
const QuorumClientID = "$tandem.quorum"

// Quorum frame types.
const (
	TypeQuorumRequest Type = 90 // requester -> voter, after Hello
	TypeQuorumAnswer  Type = 91 // voter -> requester
)

// Quorum request kinds (QuorumRequest.Kind).
const (
	QuorumInfo    uint8 = 1 // who are you; changes nothing
	QuorumClaim   uint8 = 2 // may Owner activate Node at Seq with data complete for From
	QuorumLease   uint8 = 3 // Owner is live of Node at Seq: back it for LeaseMs
	QuorumRelease uint8 = 4 // Owner gives its lease back
	QuorumDepart  uint8 = 5 // prepare Voter's departure: adopt its register and grants
	QuorumJoin    uint8 = 6 // prepare Voter's rejoin (a grant carries the register)
	QuorumCommit  uint8 = 7 // commit Change
	QuorumAbort   uint8 = 8 // abort Change
)

// Quorum verdicts (QuorumAnswer.Verdict).
const (
	QuorumGranted    uint8 = 1
	QuorumLiveAlive  uint8 = 2 // another live of the node is backed for RetryAfterMs
	QuorumStale      uint8 = 3 // the requester's data is older than Entry's
	QuorumHigher     uint8 = 4 // claim above Entry.Seq
	QuorumWait       uint8 = 5 // the voter restarted less than a lease ago
	QuorumSuperseded uint8 = 6 // a newer live of the node was leased
	QuorumRefused    uint8 = 7 // Reason says why
)

// Limits of the quorum frames: a cluster has at most MaxQuorumMembers
// brokers (and as many register entries), a Reason at most MaxQuorumReason
// bytes.
const (
	MaxQuorumMembers = 256
	MaxQuorumReason  = 1024
)

func init() {
	typeNames[TypeQuorumRequest] = "QuorumRequest"
	typeNames[TypeQuorumAnswer] = "QuorumAnswer"
}

// newQuorumFrame returns a zero quorum frame of type t, or nil.
func newQuorumFrame(t Type) Frame {
	switch t {
	case TypeQuorumRequest:
		return new(QuorumRequest)
	case TypeQuorumAnswer:
		return new(QuorumAnswer)
	}
	return nil
}

// QuorumMember is a broker of the cluster as one broker knows it.
// Payload: voter u64, URL str, node ID str, group str, role str, state
// str, seq u64, departed bool.
type QuorumMember struct {
	Voter    uint64
	URL      string
	NodeID   string
	Group    string
	Role     string
	State    string // active, waiting, syncing, stopping, down
	Seq      uint64 // its activation sequence (L)
	Departed bool   // it left the cluster cleanly
}

func appendQuorumMember(b []byte, m *QuorumMember) []byte {
	b = appendU64(b, m.Voter)
	b = appendStr(b, m.URL)
	b = appendStr(b, m.NodeID)
	b = appendStr(b, m.Group)
	b = appendStr(b, m.Role)
	b = appendStr(b, m.State)
	b = appendU64(b, m.Seq)
	return appendBool(b, m.Departed)
}

func (m *QuorumMember) decode(r *reader) {
	m.Voter = r.u64("member voter")
	m.URL = r.str("member URL")
	m.NodeID = r.str("member node ID")
	m.Group = r.str("member group")
	m.Role = r.str("member role")
	m.State = r.str("member state")
	m.Seq = r.u64("member seq")
	m.Departed = r.boolean("member departed")
}

// QuorumEntry is a voter's register entry for one node ID. Payload: node
// ID str, seq u64, owner u64, from u64, leased u64, leased owner u64.
type QuorumEntry struct {
	NodeID              string
	Seq, Owner, From    uint64
	Leased, LeasedOwner uint64
}

func appendQuorumEntry(b []byte, e *QuorumEntry) []byte {
	b = appendStr(b, e.NodeID)
	b = appendU64(b, e.Seq)
	b = appendU64(b, e.Owner)
	b = appendU64(b, e.From)
	b = appendU64(b, e.Leased)
	return appendU64(b, e.LeasedOwner)
}

func (e *QuorumEntry) decode(r *reader) {
	e.NodeID = r.str("entry node ID")
	e.Seq = r.u64("entry seq")
	e.Owner = r.u64("entry owner")
	e.From = r.u64("entry from")
	e.Leased = r.u64("entry leased")
	e.LeasedOwner = r.u64("entry leased owner")
}

// QuorumGrant is a lease grant a departing voter hands over. Payload:
// node ID str, owner u64, remaining ms u32.
type QuorumGrant struct {
	NodeID      string
	Owner       uint64
	RemainingMs uint32
}

// QuorumView is a committed membership version and the voters out of
// the configured electorate at it. Payload: version u64, out list of u64.
type QuorumView struct {
	Version uint64
	Out     []uint64
}

func appendQuorumView(b []byte, v *QuorumView) []byte {
	b = appendU64(b, v.Version)
	b = appendCount(b, len(v.Out))
	for _, o := range v.Out {
		b = appendU64(b, o)
	}
	return b
}

func (v *QuorumView) decode(r *reader) {
	v.Version = r.u64("view version")
	n := r.count("view out count", 8)
	if n > MaxQuorumMembers {
		r.fail("view out count", "more than MaxQuorumMembers")
		return
	}
	v.Out = nil
	for i := 0; i < n && r.err == nil; i++ {
		v.Out = append(v.Out, r.u64("view out voter"))
	}
}

// QuorumRequest asks a voter. Payload: kind u8, node ID str, from u64,
// seq u64, owner u64, lease ms u32, sender member, register list of
// entries, grants list (register and grants: QuorumDepart only, else
// empty); then the membership block: voter u64 (Depart, Join), the
// sender's view, the change (version u64, voter u64, depart bool: Commit,
// Abort), the sender's electorate size u32 (Depart, Join). A request without the block (a broker of an earlier version)
// reads as view 0.
type QuorumRequest struct {
	Kind     uint8
	NodeID   string
	From     uint64
	Seq      uint64
	Owner    uint64
	LeaseMs  uint32
	Sender   QuorumMember
	Register []QuorumEntry
	Grants   []QuorumGrant

	Voter         uint64
	View          QuorumView
	ChangeVersion uint64
	ChangeVoter   uint64
	ChangeDepart  bool
	Electorate    uint32
}

// Type returns TypeQuorumRequest.
func (*QuorumRequest) Type() Type { return TypeQuorumRequest }
func (f *QuorumRequest) appendPayload(b []byte) []byte {
	b = appendU8(b, f.Kind)
	b = appendStr(b, f.NodeID)
	b = appendU64(b, f.From)
	b = appendU64(b, f.Seq)
	b = appendU64(b, f.Owner)
	b = appendU32(b, f.LeaseMs)
	b = appendQuorumMember(b, &f.Sender)
	b = appendCount(b, len(f.Register))
	for i := range f.Register {
		b = appendQuorumEntry(b, &f.Register[i])
	}
	b = appendCount(b, len(f.Grants))
	for i := range f.Grants {
		g := &f.Grants[i]
		b = appendStr(b, g.NodeID)
		b = appendU64(b, g.Owner)
		b = appendU32(b, g.RemainingMs)
	}
	b = appendU64(b, f.Voter)
	b = appendQuorumView(b, &f.View)
	b = appendU64(b, f.ChangeVersion)
	b = appendU64(b, f.ChangeVoter)
	b = appendBool(b, f.ChangeDepart)
	return appendU32(b, f.Electorate)
}
func (f *QuorumRequest) decodePayload(r *reader) {
	f.Kind = r.u8("kind")
	if f.Kind < QuorumInfo || f.Kind > QuorumAbort {
		r.fail("kind", "unknown quorum request kind")
		return
	}
	f.NodeID = r.str("node ID")
	f.From = r.u64("from")
	f.Seq = r.u64("seq")
	f.Owner = r.u64("owner")
	f.LeaseMs = r.u32("lease ms")
	f.Sender.decode(r)
	f.Register = decodeQuorumEntries(r)
	n := r.count("grant count", 13)
	if n > MaxQuorumMembers {
		r.fail("grant count", "more than MaxQuorumMembers")
		return
	}
	f.Grants = nil
	for i := 0; i < n && r.err == nil; i++ {
		var g QuorumGrant
		g.NodeID = r.str("grant node ID")
		g.Owner = r.u64("grant owner")
		g.RemainingMs = r.u32("grant remaining ms")
		f.Grants = append(f.Grants, g)
	}
	if r.err != nil || r.off == len(r.b) {
		return // no membership block
	}
	f.Voter = r.u64("voter")
	f.View.decode(r)
	f.ChangeVersion = r.u64("change version")
	f.ChangeVoter = r.u64("change voter")
	f.ChangeDepart = r.boolean("change depart")
	f.Electorate = r.u32("electorate")
}

// QuorumAnswer answers a QuorumRequest. Payload: verdict u8, voter u64,
// entry, retry-after ms u32, reason str, self member, members list; then
// the membership block: the voter's view, its register (a granted Join's
// only, else empty). An answer without the block reads as view 0.
type QuorumAnswer struct {
	Verdict      uint8
	Voter        uint64
	Entry        QuorumEntry // the voter's entry for the request's node ID
	RetryAfterMs uint32
	Reason       string
	Self         QuorumMember   // the answering broker
	Members      []QuorumMember // the other brokers it knows of
	View         QuorumView
	Register     []QuorumEntry
}

// Type returns TypeQuorumAnswer.
func (*QuorumAnswer) Type() Type { return TypeQuorumAnswer }
func (f *QuorumAnswer) appendPayload(b []byte) []byte {
	b = appendU8(b, f.Verdict)
	b = appendU64(b, f.Voter)
	b = appendQuorumEntry(b, &f.Entry)
	b = appendU32(b, f.RetryAfterMs)
	b = appendStr(b, f.Reason)
	b = appendQuorumMember(b, &f.Self)
	b = appendCount(b, len(f.Members))
	for i := range f.Members {
		b = appendQuorumMember(b, &f.Members[i])
	}
	b = appendQuorumView(b, &f.View)
	b = appendCount(b, len(f.Register))
	for i := range f.Register {
		b = appendQuorumEntry(b, &f.Register[i])
	}
	return b
}
func (f *QuorumAnswer) decodePayload(r *reader) {
	f.Verdict = r.u8("verdict")
	if f.Verdict < QuorumGranted || f.Verdict > QuorumRefused {
		r.fail("verdict", "unknown quorum verdict")
		return
	}
	f.Voter = r.u64("voter")
	f.Entry.decode(r)
	f.RetryAfterMs = r.u32("retry after ms")
	f.Reason = r.str("reason")
	if len(f.Reason) > MaxQuorumReason {
		r.fail("reason", "longer than MaxQuorumReason")
		return
	}
	f.Self.decode(r)
	n := r.count("member count", 23)
	if n > MaxQuorumMembers {
		r.fail("member count", "more than MaxQuorumMembers")
		return
	}
	f.Members = nil
	for i := 0; i < n && r.err == nil; i++ {
		var m QuorumMember
		m.decode(r)
		f.Members = append(f.Members, m)
	}
	if r.err != nil || r.off == len(r.b) {
		return // no membership block
	}
	f.View.decode(r)
	f.Register = decodeQuorumEntries(r)
}

// decodeQuorumEntries reads a register: a count, at most
// MaxQuorumMembers, then that many entries.
func decodeQuorumEntries(r *reader) []QuorumEntry {
	n := r.count("register count", 41)
	if n > MaxQuorumMembers {
		r.fail("register count", "more than MaxQuorumMembers")
		return nil
	}
	var out []QuorumEntry
	for i := 0; i < n && r.err == nil; i++ {
		var e QuorumEntry
		e.decode(r)
		out = append(out, e)
	}
	return out
}
