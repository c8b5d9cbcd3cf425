package broker

// Replication HA coordinated by the embedded quorum vote (issue 14:
// <replication> without <manager>): package ha's QuorumRunner decides,
// with the votes of the cluster's brokers, and runs the same hooks as the
// ZooKeeper pair (replication.go): the same Source and Replica, the same
// local activation sequence in server.lock, CanAck gating every
// acknowledgement. This file is the network adapter: a round's request
// goes to every broker of the cluster connection's static connectors (a
// Hello with wire.QuorumClientID and the cluster credentials, then one
// QuorumRequest; one QuorumAnswer back), and this broker's voter answers
// the others, whether it serves (the server hands the connection over)
// or waits (the refuser answers it).

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tandemmq/tandem/config"
	hasm "github.com/tandemmq/tandem/ha"
	"github.com/tandemmq/tandem/lockfile"
	"github.com/tandemmq/tandem/server"
	"github.com/tandemmq/tandem/tlsconfig"
	"github.com/tandemmq/tandem/wire"
)

// quorumTransport asks the other brokers of the cluster.
type quorumTransport struct {
	h       *haBroker
	targets []string // host:port
	self    func() wire.QuorumMember
	// pin, when set, is the only node whose live this broker may take
	// for its pair's (colocated.go: a colocated live is its own node's
	// only live, its hosted backup replicates from its requester only,
	// although every broker of the cluster shares one group-name). The
	// answers of other nodes' brokers still count as votes; only what
	// they say of themselves is not taken as this pair's live.
	pin func() lockfile.NodeID
	// heard, when set, gives the other brokers instead of targets: those
	// a discovery group heard (quorumDiscovery).
	heard func() []string
}

func (t *quorumTransport) Targets() []string {
	if t.heard != nil {
		return t.heard()
	}
	return t.targets
}

func (t *quorumTransport) Describe() string {
	if t.heard != nil {
		return fmt.Sprintf("quorum vote of the brokers heard on the discovery group, %d grants needed", t.h.cfg.HA.QuorumSize)
	}
	return fmt.Sprintf("quorum vote of %d brokers", len(t.targets)+1)
}

// Ask implements hasm.QuorumTransport.
func (t *quorumTransport) Ask(ctx context.Context, addr string, req hasm.QRequest) (hasm.QAnswer, hasm.QPeer, error) {
	h := t.h
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return hasm.QAnswer{}, hasm.QPeer{}, err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	tc, err := peerTLS(h.cfg, addr)
	if err != nil {
		return hasm.QAnswer{}, hasm.QPeer{}, err
	}
	if tc != nil {
		host, _, _ := net.SplitHostPort(addr)
		c := tls.Client(nc, tlsconfig.ForHost(tc, host))
		if err := c.HandshakeContext(ctx); err != nil {
			return hasm.QAnswer{}, hasm.QPeer{}, err
		}
		nc = c
	}
	hello := &wire.Hello{MinVersion: wire.MinVersion, MaxVersion: wire.Version, ClientID: wire.QuorumClientID,
		User: h.cfg.ClusterUser, Password: h.cfg.ClusterPassword}
	b, err := wire.AppendFrame(nil, 1, hello)
	if err != nil {
		return hasm.QAnswer{}, hasm.QPeer{}, err
	}
	b, err = wire.AppendFrame(b, 2, toWireRequest(req, t.self()))
	if err != nil {
		return hasm.QAnswer{}, hasm.QPeer{}, err
	}
	if _, err := nc.Write(b); err != nil {
		return hasm.QAnswer{}, hasm.QPeer{}, err
	}
	_, f, err := wire.NewDecoder(nc).Read()
	if err != nil {
		return hasm.QAnswer{}, hasm.QPeer{}, err
	}
	switch f := f.(type) {
	case *wire.QuorumAnswer:
		a, p := fromWireAnswer(f)
		if t.pin != nil {
			if id := t.pin(); !id.IsZero() && p.NodeID != id {
				p.State = stateOtherNode
			}
		}
		return a, p, nil
	case *wire.Error:
		return hasm.QAnswer{}, hasm.QPeer{}, fmt.Errorf("quorum vote refused by %s: %s", addr, f.Message)
	}
	return hasm.QAnswer{}, hasm.QPeer{}, fmt.Errorf("quorum vote: %s answered %s", addr, f.Type())
}

// serveQuorum answers one quorum request on nc (r: what follows the
// Hello, whose credentials were checked).
func (b *replBroker) serveQuorum(nc net.Conn, r *bufio.Reader, _ *wire.Hello, _ uint64) {
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	dec := wire.NewDecoder(r)
	hdr, f, err := dec.Read()
	if err != nil {
		return
	}
	req, ok := f.(*wire.QuorumRequest)
	if !ok {
		return
	}
	var out wire.Frame
	q, ok := b.repl.(*hasm.QuorumRunner)
	hr, err := fromWireRequest(req)
	switch {
	case !ok:
		out = &wire.Error{Code: wire.CodeUnavailable, Message: "this broker takes no part in a quorum vote"}
	case err != nil:
		out = &wire.Error{Code: wire.CodeProtocol, Message: err.Error()}
	default:
		a, p := q.Vote(hr)
		if a.Verdict == hasm.QNoAnswer {
			return
		}
		if h := b.haBroker; h.quorumPeerFor != nil && !hr.Node.IsZero() {
			// colocated.go: a backup this process hosts serves the
			// asker's node; say where (the asker finds its live).
			if hp, ok := h.quorumPeerFor(hr.Node); ok {
				p = hp
			}
		}
		out = toWireAnswer(a, p)
	}
	bs, err := wire.AppendFrame(nil, hdr.Corr, out)
	if err == nil {
		_, _ = nc.Write(bs)
	}
}

// quorumHandler is the server's hand-off of quorum vote connections.
func (b *replBroker) quorumHandler() *server.ReplicaHandler {
	return &server.ReplicaHandler{User: b.cfg.ClusterUser, Password: b.cfg.ClusterPassword, Serve: b.serveQuorum}
}

// quorumSelf is what this broker tells the others of itself.
func (b *replBroker) quorumSelf() hasm.QPeer {
	h := b.haBroker
	st := b.repl.Status()
	h.mu.Lock()
	node := h.nodeID
	h.mu.Unlock()
	id, _ := parseNodeID(node)
	if st.NodeID != "" {
		id, _ = parseNodeID(st.NodeID)
	}
	b.rmu.Lock()
	src := b.source
	b.rmu.Unlock()
	replica := false
	if src != nil {
		replica = src.Status().Peer != ""
	}
	return hasm.QPeer{NodeID: id, Group: h.cfg.HA.GroupName, Role: h.role, State: st.State, URL: h.selfURL, Seq: st.Epoch, Replica: replica}
}

func roleName(r hasm.Role) string { return r.String() }

func toWireMember(p hasm.QPeer) wire.QuorumMember {
	m := wire.QuorumMember{Voter: uint64(p.Voter), URL: p.URL, Group: p.Group, Role: roleName(p.Role), State: p.State, Seq: p.Seq}
	if !p.NodeID.IsZero() {
		m.NodeID = p.NodeID.String()
	}
	if p.Replica {
		m.Departed = false
		m.State += "+replica"
	}
	return m
}

func fromWireMember(m wire.QuorumMember) hasm.QPeer {
	p := hasm.QPeer{Voter: hasm.QuorumVoterID(m.Voter), URL: m.URL, Group: m.Group, Seq: m.Seq}
	p.State, p.Replica = strings.CutSuffix(m.State, "+replica")
	if m.NodeID != "" {
		p.NodeID, _ = parseNodeID(m.NodeID)
	}
	if m.Role == hasm.Backup.String() {
		p.Role = hasm.Backup
	}
	return p
}

var qKindWire = map[hasm.QKind]uint8{hasm.QInfo: wire.QuorumInfo, hasm.QClaim: wire.QuorumClaim, hasm.QLease: wire.QuorumLease,
	hasm.QRelease: wire.QuorumRelease, hasm.QDepart: wire.QuorumDepart, hasm.QJoin: wire.QuorumJoin,
	hasm.QCommitChange: wire.QuorumCommit, hasm.QAbortChange: wire.QuorumAbort}

func toWireView(v hasm.QView) wire.QuorumView {
	w := wire.QuorumView{Version: v.Version}
	for _, o := range v.Out {
		w.Out = append(w.Out, uint64(o))
	}
	return w
}

func fromWireView(w wire.QuorumView) hasm.QView {
	v := hasm.QView{Version: w.Version}
	for _, o := range w.Out {
		v.Out = append(v.Out, hasm.QuorumVoterID(o))
	}
	slices.Sort(v.Out)
	v.Out = slices.Compact(v.Out)
	return v
}

func toWireRegister(reg map[lockfile.NodeID]hasm.QEntry) []wire.QuorumEntry {
	var out []wire.QuorumEntry
	for id, e := range reg {
		out = append(out, wire.QuorumEntry{NodeID: nodeString(id), Seq: e.Seq, Owner: e.Owner, From: e.From, Leased: e.Leased, LeasedOwner: e.LeasedOwner})
	}
	slices.SortFunc(out, func(a, b wire.QuorumEntry) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}

func fromWireRegister(es []wire.QuorumEntry) (map[lockfile.NodeID]hasm.QEntry, error) {
	if len(es) == 0 {
		return nil, nil
	}
	reg := map[lockfile.NodeID]hasm.QEntry{}
	for _, e := range es {
		id, err := parseNodeID(e.NodeID)
		if err != nil {
			return nil, fmt.Errorf("register entry: %w", err)
		}
		reg[id] = hasm.QEntry{Seq: e.Seq, Owner: e.Owner, From: e.From, Leased: e.Leased, LeasedOwner: e.LeasedOwner}
	}
	return reg, nil
}

var qVerdictWire = map[hasm.QVerdict]uint8{hasm.QGranted: wire.QuorumGranted, hasm.QLiveAlive: wire.QuorumLiveAlive,
	hasm.QStale: wire.QuorumStale, hasm.QHigher: wire.QuorumHigher, hasm.QWait: wire.QuorumWait,
	hasm.QSuperseded: wire.QuorumSuperseded, hasm.QRefused: wire.QuorumRefused}

func nodeString(id lockfile.NodeID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

func toWireRequest(r hasm.QRequest, self wire.QuorumMember) *wire.QuorumRequest {
	w := &wire.QuorumRequest{Kind: qKindWire[r.Kind], NodeID: nodeString(r.Node), From: r.From, Seq: r.Seq, Owner: r.Owner,
		LeaseMs: uint32(r.Lease / time.Millisecond), Sender: self, Register: toWireRegister(r.Register),
		Voter: uint64(r.Voter), View: toWireView(r.View),
		ChangeVersion: r.Change.Version, ChangeVoter: uint64(r.Change.Voter), ChangeDepart: r.Change.Depart, Electorate: uint32(min(r.Electorate, 1<<20))}
	for id, g := range r.Grants {
		w.Grants = append(w.Grants, wire.QuorumGrant{NodeID: nodeString(id), Owner: g.Owner, RemainingMs: uint32(min(g.Until/time.Millisecond, 1<<31))})
	}
	return w
}

func fromWireRequest(f *wire.QuorumRequest) (hasm.QRequest, error) {
	r := hasm.QRequest{From: f.From, Seq: f.Seq, Owner: f.Owner, Lease: time.Duration(f.LeaseMs) * time.Millisecond}
	for k, w := range qKindWire {
		if w == f.Kind {
			r.Kind = k
		}
	}
	r.Voter, r.View = hasm.QuorumVoterID(f.Voter), fromWireView(f.View)
	r.Change = hasm.QChange{Version: f.ChangeVersion, Voter: hasm.QuorumVoterID(f.ChangeVoter), Depart: f.ChangeDepart}
	r.Electorate = int(f.Electorate)
	reg, err := fromWireRegister(f.Register)
	if err != nil {
		return r, err
	}
	r.Register = reg
	for _, g := range f.Grants {
		id, err := parseNodeID(g.NodeID)
		if err != nil {
			return r, fmt.Errorf("grant: %w", err)
		}
		if r.Grants == nil {
			r.Grants = map[lockfile.NodeID]hasm.QGrant{}
		}
		r.Grants[id] = hasm.QGrant{Owner: g.Owner, Until: time.Duration(g.RemainingMs) * time.Millisecond}
	}
	if f.NodeID != "" {
		id, err := parseNodeID(f.NodeID)
		if err != nil {
			return r, err
		}
		r.Node = id
	}
	return r, nil
}

func toWireAnswer(a hasm.QAnswer, p hasm.QPeer) *wire.QuorumAnswer {
	e := a.Entry
	reason := a.Reason
	if len(reason) > wire.MaxQuorumReason {
		reason = reason[:wire.MaxQuorumReason]
	}
	return &wire.QuorumAnswer{Verdict: qVerdictWire[a.Verdict], Voter: uint64(a.Voter),
		Entry:        wire.QuorumEntry{Seq: e.Seq, Owner: e.Owner, From: e.From, Leased: e.Leased, LeasedOwner: e.LeasedOwner},
		RetryAfterMs: uint32(min(a.RetryAfter/time.Millisecond, 1<<31)), Reason: reason, Self: toWireMember(p),
		View: toWireView(a.View), Register: toWireRegister(a.Register)}
}

func fromWireAnswer(f *wire.QuorumAnswer) (hasm.QAnswer, hasm.QPeer) {
	a := hasm.QAnswer{Voter: hasm.QuorumVoterID(f.Voter), RetryAfter: time.Duration(f.RetryAfterMs) * time.Millisecond, Reason: f.Reason,
		Entry: hasm.QEntry{Seq: f.Entry.Seq, Owner: f.Entry.Owner, From: f.Entry.From, Leased: f.Entry.Leased, LeasedOwner: f.Entry.LeasedOwner}}
	for k, w := range qVerdictWire {
		if w == f.Verdict {
			a.Verdict = k
		}
	}
	a.View = fromWireView(f.View)
	reg, err := fromWireRegister(f.Register)
	if err != nil {
		// A register that does not parse counts as no answer (a rejoin
		// must merge every member's).
		return hasm.QAnswer{Verdict: hasm.QNoAnswer}, hasm.QPeer{}
	}
	a.Register = reg
	p := fromWireMember(f.Self)
	p.Voter = a.Voter
	return a, p
}

// quorumConfig maps the replication policy's options to the vote's.
func quorumConfig(h *haBroker, role hasm.Role) (hasm.QuorumConfig, error) {
	ha := h.cfg.HA
	qc := hasm.DefaultQuorumConfig(role)
	qc.Group = ha.GroupName
	qc.AllowFailback = ha.AllowFailback
	qc.FailbackOnSync = ha.CheckForActiveServer
	if ha.VoteRetryWait > 0 {
		qc.SetLease(ha.VoteRetryWait)
	}
	if ha.VoteRetries > 0 {
		qc.VoteRetries = ha.VoteRetries
	}
	if ha.QuorumVoteWait > 0 {
		qc.VoteWait = ha.QuorumVoteWait
	}
	if ha.QuorumSize > 0 {
		qc.QuorumSize = ha.QuorumSize
	}
	if w := ha.RetryReplicationWait; w > 0 {
		qc.RetryInterval = min(w, qc.RetryInterval)
	}
	qc.RetryInterval = min(qc.RetryInterval, qc.RenewInterval)
	if err := qc.Validate(); err != nil {
		return qc, err
	}
	return qc, nil
}

// answerQuorum is the refuser's answer to a quorum vote connection (a
// waiting broker votes too).
func (r *refuser) answerQuorum(nc net.Conn, br *bufio.Reader, dec *wire.Decoder, hello *wire.Hello, corr uint64) bool {
	if r.h.quorumServe == nil || !r.h.clusterAuth(nc, hello) {
		return false
	}
	rd := bufio.NewReader(io.MultiReader(strings.NewReader(string(dec.Unread())), br))
	r.h.quorumServe(nc, rd, hello, corr)
	return true
}

// stateOtherNode replaces the state another node's broker reports of
// itself in a pinned vote (quorumTransport.pin): never "active".
const stateOtherNode = "other-node"

var errNoQuorumTargets = errors.New("replication with the quorum vote needs a cluster connection with static connectors naming the cluster's other brokers (at least two: three brokers or more)")

// quorumDiscovery names the discovery group the quorum vote's electorate
// comes from: the first cluster connection's discovery-group-ref ("" when
// it has static connectors).
func quorumDiscovery(cfg *config.Config) string {
	if len(cfg.ClusterConnections) == 0 {
		return ""
	}
	return cfg.ClusterConnections[0].DiscoveryGroupRef
}

// checkQuorumDiscovery checks a quorum pair whose electorate comes from a
// discovery group: the brokers heard change, so the number of grants a
// decision needs cannot come from them; quorum-size must say it (a
// majority of every broker of the cluster), and the broker must announce
// itself to the others.
func checkQuorumDiscovery(cfg *config.Config, at func(string, ...any) error) error {
	name := quorumDiscovery(cfg)
	found := false
	for _, g := range cfg.DiscoveryGroups {
		found = found || g.Name == name
	}
	switch {
	case !found:
		return at("the cluster connection names discovery group %q, which <discovery-groups> does not define", name)
	case len(cfg.BroadcastGroups) == 0:
		return at("replication with the quorum vote and a discovery group needs a <broadcast-group> too: the other brokers find this one by its announcements")
	case cfg.HA.QuorumSize < 2:
		return at("replication with the quorum vote and a discovery group needs <quorum-size> set to a majority of all the cluster's brokers (lives and backups; 4 for three pairs): the brokers heard on the group change, so the number of grants a decision needs cannot be learnt from them (see docs/ha-replication-quorum.md)")
	}
	return nil
}

// startQuorumDiscovery listens to the quorum's discovery group and
// announces this broker to its broadcast groups; the electorate is then
// this broker and every broker heard.
func startQuorumDiscovery(cfg *config.Config, node string, log *slog.Logger) (*discovery, *broadcaster, error) {
	name := quorumDiscovery(cfg)
	for _, g := range cfg.DiscoveryGroups {
		if g.Name != name {
			continue
		}
		disc, err := listenDiscovery(g, log)
		if err != nil {
			return nil, nil, fmt.Errorf("discovery group %q: %w", g.Name, err)
		}
		bc, err := startBroadcast(cfg, node, log)
		if err != nil {
			disc.close()
			return nil, nil, err
		}
		return disc, bc, nil
	}
	return nil, nil, fmt.Errorf("discovery group %q is not defined in <discovery-groups>", name)
}
