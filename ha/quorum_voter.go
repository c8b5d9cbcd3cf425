package ha

import (
	"fmt"
	"slices"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// Replication coordinated by a quorum vote (<replication> without
// <manager>, issue 14): no lock service; every broker of the cluster is a
// voter with a durable register, and the decisions "may I activate", "may
// I go on after losing my backup" and "may I acknowledge" need grants from
// a majority of the cluster's brokers. docs/ha-replication-quorum.md has
// the safety argument; this file is the voter: a pure function of its
// register, its lease grants and the request.
//
// Why every broker and not only the lives (Artemis): a pair's vote would
// move between its two brokers with a failover, and the register behind
// it (which sequence it saw, which live it promised to back) would not
// move with it; two incarnations could then answer for one pair on the
// two sides of a partition and two majorities would no longer share a
// memory. A broker's register stays on its own disk, so any two
// majorities of brokers share one that remembers both decisions.

// QuorumVoterID names a voter: random, persisted with its register (a
// wiped data directory is a new voter).
type QuorumVoterID uint64

// QEntry is what a voter's register holds for one node ID (a pair).
type QEntry struct {
	// Seq, Owner and From: the newest claim this voter granted: the
	// claimant Owner (an incarnation ID) activates at Seq with data
	// complete for From. Owner 0: none.
	Seq, Owner, From uint64
	// Leased and LeasedOwner: the newest sequence a live was granted a
	// lease under (it may have acknowledged under it): a broker whose
	// data is older can never become live again.
	Leased, LeasedOwner uint64
}

// Newest is the newest data version the entry knows of.
func (e QEntry) Newest() uint64 { return max(e.Leased, e.From) }

// QGrant is a lease grant a voter holds (in memory): until Until (the
// voter's clock) it refuses to let any other owner activate the node ID.
type QGrant struct {
	Owner uint64
	Until time.Duration
}

// QKind is the kind of a quorum request.
type QKind uint8

// Quorum request kinds.
const (
	// QInfo asks who the voter is (membership, the live of a pair); it
	// changes nothing.
	QInfo QKind = iota + 1
	// QClaim asks to activate Node at Seq with data complete for From.
	QClaim
	// QLease asks for (or renews) a lease: Owner is live of Node at Seq
	// (activated with data complete for From) for Lease.
	QLease
	// QRelease gives a lease back (a clean stop or a failback).
	QRelease
	// QDepart prepares the departure of Voter from membership version
	// View.Version (quorum_members.go); it carries the voter's register
	// and grants, which the members adopt.
	QDepart
	// QJoin prepares the rejoin of Voter at View.Version+1; a member's
	// grant carries its register.
	QJoin
	// QCommitChange and QAbortChange end the prepared Change.
	QCommitChange
	QAbortChange
)

var qKindNames = [...]string{"", "info", "claim", "lease", "release", "depart", "join", "commit-change", "abort-change"}

func (k QKind) String() string {
	if int(k) < len(qKindNames) && k > 0 {
		return qKindNames[k]
	}
	return fmt.Sprintf("QKind(%d)", int(k))
}

// QRequest is a request to a voter.
type QRequest struct {
	Kind      QKind
	Node      lockfile.NodeID
	From, Seq uint64
	Owner     uint64
	Lease     time.Duration
	// Depart: the leaving voter's register and grants (Until relative to
	// the request: remaining time). Depart, Join: Voter is the voter
	// leaving or rejoining.
	Voter    QuorumVoterID
	Register map[lockfile.NodeID]QEntry
	Grants   map[lockfile.NodeID]QGrant
	// View is the sender's committed membership view (every request);
	// Change the change a CommitChange or AbortChange ends.
	View   QView
	Change QChange
	// Electorate is the sender's electorate size (Depart, Join): a voter
	// counting another refuses the change (every broker must list the
	// same brokers).
	Electorate int
}

// QVerdict is a voter's answer.
type QVerdict uint8

// Verdicts.
const (
	// QNoAnswer: the voter did not answer (unreachable, timed out); the
	// runtime reports it so a round can end.
	QNoAnswer QVerdict = iota
	// QGranted: the request is granted (Info: the voter answered).
	QGranted
	// QLiveAlive: the voter backs another live of the node for
	// RetryAfter more.
	QLiveAlive
	// QStale: the requester's data is older than a version the voter
	// knows of (Entry).
	QStale
	// QHigher: another claim at Entry.Seq is in progress from data no
	// newer than the requester's: claim above it.
	QHigher
	// QWait: the voter restarted less than a lease ago and may have
	// forgotten a grant: ask again after RetryAfter.
	QWait
	// QSuperseded: another live of the node leased a newer (or the same)
	// sequence: the requester must stop.
	QSuperseded
	// QRefused: the request cannot be granted by this voter's
	// configuration (a lease longer than its own): Reason says why.
	QRefused
)

var qVerdictNames = [...]string{"no-answer", "granted", "live-alive", "stale", "higher", "wait", "superseded", "refused"}

func (v QVerdict) String() string {
	if int(v) < len(qVerdictNames) {
		return qVerdictNames[v]
	}
	return fmt.Sprintf("QVerdict(%d)", int(v))
}

// QAnswer is a voter's answer to one request.
type QAnswer struct {
	Verdict    QVerdict
	Voter      QuorumVoterID
	Entry      QEntry        // the voter's register entry for the node, after the request
	RetryAfter time.Duration // QLiveAlive, QWait
	Reason     string        // QRefused
	// View is the voter's committed membership view; Register its whole
	// register when it accepts a QJoin.
	View     QView
	Register map[lockfile.NodeID]QEntry
}

// seededVoterBug breaks the voter on purpose (the explorer's self-check).
type seededVoterBug int

const (
	seedVoterStaleAccepted seededVoterBug = 1 << iota // no data-version check on a claim or a lease
	seedVoterNoGrace                                  // grants claims right after a restart
)

// QuorumVoter is one broker's voter: its durable register (what it
// granted: claims and leased sequences per node ID) and its lease grants
// (in memory: a restart forgets them, so for one lease after its start it
// lets nobody activate). Pure: the caller persists the register before it
// sends an answer whenever Handle reports a change, and serialises calls.
type QuorumVoter struct {
	id       QuorumVoterID
	maxLease time.Duration // the longest lease it grants; also the grace after its start
	start    time.Duration // when this incarnation started (grace until start+maxLease)
	reg      map[lockfile.NodeID]QEntry
	grants   map[lockfile.NodeID]QGrant
	seeded   seededVoterBug

	// Membership (quorum_members.go): the committed view, the change
	// accepted and not ended (until pendingUntil), and leaving: a
	// departure is being prepared (claims and leases are refused).
	view         QView
	pending      *QChange
	pendingUntil time.Duration
	leaving      bool
	electorate   int // the runner's electorate size (0: not checked)
}

// NewQuorumVoter returns a voter that started at start with the register
// reg (nil: empty), granting leases of at most maxLease.
func NewQuorumVoter(id QuorumVoterID, maxLease, start time.Duration, reg map[lockfile.NodeID]QEntry) *QuorumVoter {
	v := &QuorumVoter{id: id, maxLease: maxLease, start: start, reg: map[lockfile.NodeID]QEntry{}, grants: map[lockfile.NodeID]QGrant{}}
	for k, e := range reg {
		v.reg[k] = e
	}
	return v
}

// ID returns the voter's ID.
func (v *QuorumVoter) ID() QuorumVoterID { return v.id }

// Entry returns the register entry for node.
func (v *QuorumVoter) Entry(node lockfile.NodeID) QEntry { return v.reg[node] }

// Register returns a copy of the register (to persist it).
func (v *QuorumVoter) Register() map[lockfile.NodeID]QEntry {
	out := make(map[lockfile.NodeID]QEntry, len(v.reg))
	for k, e := range v.reg {
		out[k] = e
	}
	return out
}

// Grant returns the grant held for node (zero when none).
func (v *QuorumVoter) Grant(node lockfile.NodeID) QGrant { return v.grants[node] }

// Grants returns the grants still valid at now with their remaining time
// (for a departure).
func (v *QuorumVoter) Grants(now time.Duration) map[lockfile.NodeID]QGrant {
	out := map[lockfile.NodeID]QGrant{}
	for k, g := range v.grants {
		if now < g.Until {
			out[k] = QGrant{Owner: g.Owner, Until: g.Until - now}
		}
	}
	return out
}

// validGrant returns the grant for node if it is still valid at now.
func (v *QuorumVoter) validGrant(node lockfile.NodeID, now time.Duration) (QGrant, bool) {
	g, ok := v.grants[node]
	return g, ok && now < g.Until
}

// Handle answers req at now (the voter's clock). changed: the register
// changed and must be durable before the answer leaves.
func (v *QuorumVoter) Handle(req QRequest, now time.Duration) (QAnswer, bool) {
	a := QAnswer{Verdict: QGranted, Voter: v.id}
	e := v.reg[req.Node]
	changed := v.learn(req.View, now)
	out := v.leaving || v.view.IsOut(v.id)
	switch req.Kind {
	case QInfo:
	case QClaim, QLease:
		switch {
		case out:
			a.Verdict, a.Reason = QRefused, "this broker left the cluster (or is leaving): it votes again once it rejoined"
		case req.Kind == QClaim:
			var c bool
			a, c = v.claim(req, e, now)
			changed = changed || c
		default:
			var c bool
			a, c = v.lease(req, e, now)
			changed = changed || c
		}
	case QRelease:
		if g, ok := v.grants[req.Node]; ok && g.Owner == req.Owner {
			delete(v.grants, req.Node)
		}
	case QDepart, QJoin, QCommitChange, QAbortChange:
		var c bool
		a, c = v.member(req, now)
		changed = changed || c
	default:
		a.Verdict, a.Reason = QRefused, fmt.Sprintf("unknown request kind %d", req.Kind)
	}
	a.Voter = v.id
	a.Entry = v.reg[req.Node]
	a.View = QView{Version: v.view.Version, Out: slices.Clone(v.view.Out)}
	return a, changed
}

func (v *QuorumVoter) claim(req QRequest, e QEntry, now time.Duration) (QAnswer, bool) {
	a := QAnswer{Verdict: QGranted}
	g, live := v.validGrant(req.Node, now)
	switch {
	case live && g.Owner != req.Owner:
		// The live of this pair renewed its lease here: it is alive as
		// far as this voter can tell.
		a.Verdict, a.RetryAfter = QLiveAlive, g.Until-now
	case now < v.start+v.maxLease && !(live && g.Owner == req.Owner) && v.seeded&seedVoterNoGrace == 0:
		// Restarted less than a lease ago: a grant made before the
		// restart may still be trusted by a live.
		a.Verdict, a.RetryAfter = QWait, v.start+v.maxLease-now
	case e.Newest() > req.From && v.seeded&seedVoterStaleAccepted == 0:
		a.Verdict = QStale
	case e.Owner == req.Owner && e.Seq == req.Seq:
		// The same claim again (an answer was lost).
	case e.Seq >= req.Seq:
		a.Verdict = QHigher
	default:
		e.Seq, e.Owner, e.From = req.Seq, req.Owner, req.From
		v.reg[req.Node] = e
		return a, true
	}
	return a, false
}

func (v *QuorumVoter) lease(req QRequest, e QEntry, now time.Duration) (QAnswer, bool) {
	a := QAnswer{Verdict: QGranted}
	if req.Lease > v.maxLease {
		a.Verdict = QRefused
		a.Reason = fmt.Sprintf("lease %v asked for is longer than this broker's %v (vote-retry-wait must be the same on every broker)", req.Lease, v.maxLease)
		return a, false
	}
	g, live := v.validGrant(req.Node, now)
	changed := false
	switch {
	case e.Leased > req.Seq || e.Leased == req.Seq && e.Leased != 0 && e.LeasedOwner != req.Owner:
		a.Verdict = QSuperseded
		return a, false
	case e.Owner != 0 && e.Owner != req.Owner && e.Seq >= req.Seq:
		// Another broker's claim at or above Seq was granted here (this
		// live's grant had run out): a lease below it would let that
		// claim's broker activate above a sequence served after it.
		a.Verdict = QHigher
		return a, false
	case e.Leased == req.Seq && e.LeasedOwner == req.Owner:
		// A renewal.
	case live && g.Owner != req.Owner:
		a.Verdict, a.RetryAfter = QLiveAlive, g.Until-now
		return a, false
	case e.Leased > req.From && v.seeded&seedVoterStaleAccepted == 0:
		// Someone served under a sequence newer than the requester's
		// data: it misses what that live acknowledged.
		a.Verdict = QStale
		return a, false
	default:
		// The first lease under Seq seen here (this voter may have
		// missed the claim).
		e.Leased, e.LeasedOwner = req.Seq, req.Owner
		if e.Seq < req.Seq {
			e.Seq, e.Owner, e.From = req.Seq, req.Owner, req.From
		}
		v.reg[req.Node] = e
		changed = true
	}
	v.grants[req.Node] = QGrant{Owner: req.Owner, Until: now + req.Lease}
	return a, changed
}

// adopt takes over a departing voter's register (raise only) and grants
// (a grant it made keeps binding for its remaining time here).
func (v *QuorumVoter) adopt(req QRequest, now time.Duration) bool {
	changed := false
	for node, d := range req.Register {
		e := v.reg[node]
		n := e
		if d.Leased > n.Leased {
			n.Leased, n.LeasedOwner = d.Leased, d.LeasedOwner
		}
		if d.Seq > n.Seq {
			n.Seq, n.Owner, n.From = d.Seq, d.Owner, d.From
		}
		if n != e {
			v.reg[node] = n
			changed = true
		}
	}
	for node, d := range req.Grants {
		if g, ok := v.validGrant(node, now); !ok || now+d.Until > g.Until {
			v.grants[node] = QGrant{Owner: d.Owner, Until: now + d.Until}
		}
	}
	return changed
}
