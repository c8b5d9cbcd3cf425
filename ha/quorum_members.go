package ha

import (
	"fmt"
	"slices"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// Clean departures and rejoins (issue 14, item 4): a broker stopped
// cleanly (SIGTERM) leaves the cluster's electorate, so that the quorum
// needed afterwards is a majority of the brokers that remain; a broker that
// disappears silently (a crash, a partition) never lowers it. A departed
// broker that starts again rejoins. docs/ha-replication-quorum.md has the
// user's view; this is the protocol and its safety argument.
//
// The membership is a sequence of versions: version 0 is the configured
// electorate; each change removes one voter (a departure) or adds one back
// (a rejoin). A voter keeps the newest version it knows committed (Out:
// the voters departed at it) and at most one pending change. A change
// from version v to v+1 takes two rounds:
//
//   - prepare: the changer asks every member of version v; a member
//     accepts only at version v with nothing else pending (a departure
//     also hands over the departing voter's register and lease grants,
//     which the member adopts; a member's acceptance of a rejoin carries
//     its register, which the joiner merges);
//   - commit, only when every member accepted (unanimity); otherwise
//     abort. A departing voter refuses every claim and lease from the
//     moment it takes the snapshot of its register for the prepare round,
//     and marks itself out before it sends a commit; a rejoining one votes
//     again only once it committed.
//
// Every request carries the sender's committed view and every answer the
// voter's, so a voter that missed a commit learns it (a committed version
// implies that every member of the previous one accepted the change, this
// voter included); a pending change expires after pendingLife without a
// commit (an abort or a commit that was lost). A node counts a grant only
// from a voter that is not out in the newest view it saw and needs a
// majority of the configured electorate less the voters out.
//
// Why it is safe. Unanimity makes the members' committed versions differ
// by at most one at any time (change v+1 cannot be prepared at a member
// until every member committed v), so two decisions are made under
// majorities of one version or of two neighbouring ones, m members and
// m-1 or m+1: a majority of m has at least floor(m/2) brokers among the
// m-1 the two versions share, a majority of m-1 has floor((m-1)/2)+1, and
// floor(m/2) + floor((m-1)/2) + 1 = m > m-1, so they share one. What a
// departed voter granted before it left stays with every remaining member
// (it adopted the register and the grants), so a record held by a
// majority of version v is held by a majority of v+1; what a rejoining
// voter missed while its prepare round ran is held by a majority of the
// version before, which the next change repairs (its departing voter's
// register is adopted by all, or its joiner merges every member's).
// Refusals are always safe, so a member that cannot accept, a lost
// message or a changer that crashes only leaves the electorate as it was:
// the cluster goes on counting the departing broker (as down) until it
// can leave or rejoin. ha/quorum_members_explore_test.go explores it.

// pendingLife is how long a voter keeps a change it accepted without a
// commit or an abort.
const pendingLife = time.Minute

// QChange is a membership change: Voter leaves (Depart) or rejoins at
// Version.
type QChange struct {
	Version uint64
	Voter   QuorumVoterID
	Depart  bool
}

func (c QChange) String() string {
	verb := "rejoin"
	if c.Depart {
		verb = "departure"
	}
	return fmt.Sprintf("%s of voter %x at version %d", verb, uint64(c.Voter), c.Version)
}

// QView is a committed membership version: the voters out of the
// configured electorate at it.
type QView struct {
	Version uint64
	Out     []QuorumVoterID // sorted
}

// IsOut reports whether voter is out at this view.
func (v QView) IsOut(voter QuorumVoterID) bool {
	_, ok := slices.BinarySearch(v.Out, voter)
	return ok
}

// apply returns the view after c.
func (v QView) apply(c QChange) QView {
	out := slices.Clone(v.Out)
	i, found := slices.BinarySearch(out, c.Voter)
	switch {
	case c.Depart && !found:
		out = slices.Insert(out, i, c.Voter)
	case !c.Depart && found:
		out = slices.Delete(out, i, i+1)
	}
	return QView{Version: c.Version, Out: out}
}

// newer reports whether w is a newer view than v.
func (v QView) newer(w QView) bool { return w.Version > v.Version }

// Members returns the voter's committed view, its pending change (nil when
// none) and whether it is out itself.
func (v *QuorumVoter) Members() (QView, *QChange, bool) {
	var p *QChange
	if v.pending != nil {
		c := *v.pending
		p = &c
	}
	return QView{Version: v.view.Version, Out: slices.Clone(v.view.Out)}, p, v.view.IsOut(v.id)
}

// SetElectorate sets the electorate size this voter belongs to: a
// departure or rejoin from a broker counting another is refused.
func (v *QuorumVoter) SetElectorate(n int) { v.electorate = n }

// SetMembers restores the membership from the voter's state file.
func (v *QuorumVoter) SetMembers(view QView, pending *QChange) {
	v.view = QView{Version: view.Version, Out: slices.Clone(view.Out)}
	slices.Sort(v.view.Out)
	v.pending = nil
	if pending != nil && pending.Version == view.Version+1 {
		c := *pending
		v.pending = &c
		v.pendingUntil = v.start + pendingLife
	}
}

// learn adopts a newer committed view a request shows; it reports a
// change to persist.
func (v *QuorumVoter) learn(view QView, now time.Duration) bool {
	changed := false
	if v.pending != nil && now >= v.pendingUntil {
		v.pending = nil
		changed = true
	}
	if !v.view.newer(view) {
		return changed
	}
	v.view = QView{Version: view.Version, Out: slices.Clone(view.Out)}
	slices.Sort(v.view.Out)
	if v.pending != nil && v.pending.Version <= v.view.Version {
		v.pending = nil
	}
	return true
}

// member handles the membership requests (QDepart, QJoin, QCommit,
// QAbort).
func (v *QuorumVoter) member(req QRequest, now time.Duration) (QAnswer, bool) {
	a := QAnswer{Verdict: QGranted}
	c := QChange{Version: req.View.Version + 1, Voter: req.Voter, Depart: req.Kind == QDepart}
	switch req.Kind {
	case QCommitChange, QAbortChange:
		c = QChange{Version: req.Change.Version, Voter: req.Change.Voter, Depart: req.Change.Depart}
	}
	refuse := func(format string, args ...any) (QAnswer, bool) {
		a.Verdict, a.Reason = QRefused, fmt.Sprintf(format, args...)
		return a, false
	}
	switch req.Kind {
	case QDepart, QJoin:
		switch {
		case req.Voter == v.id:
			return refuse("a voter does not vote on its own membership")
		case v.view.IsOut(v.id):
			return refuse("this voter left the cluster and has not rejoined")
		case v.electorate != 0 && req.Electorate != v.electorate:
			return refuse("the electorate of the broker changing is %d brokers, this one's %d: every broker must list the same brokers", req.Electorate, v.electorate)
		case req.View.Version != v.view.Version:
			return refuse("membership version %d, not %d", v.view.Version, req.View.Version)
		case v.pending != nil && *v.pending != c:
			return refuse("another membership change is pending (%v)", *v.pending)
		case c.Depart == v.view.IsOut(c.Voter):
			return a, false // nothing to change (an answer was lost)
		}
		changed := v.pending == nil
		v.pending, v.pendingUntil = &c, now+pendingLife
		if c.Depart {
			v.adopt(req, now)
			changed = true
		} else {
			a.Register = v.Register()
		}
		return a, changed
	case QCommitChange:
		switch {
		case v.view.Version >= c.Version:
			return a, false
		case v.view.Version+1 != c.Version:
			return refuse("membership version %d: cannot commit version %d", v.view.Version, c.Version)
		}
		v.view = v.view.apply(c)
		v.pending = nil
		return a, true
	case QAbortChange:
		if v.pending != nil && *v.pending == c {
			v.pending = nil
			return a, true
		}
		return a, false
	}
	return refuse("unknown membership request %v", req.Kind)
}

// Leaving marks the voter as leaving (it refuses every claim and lease
// until Stay) and returns what a departure hands over: its register and
// its grants valid at now.
func (v *QuorumVoter) Leaving(now time.Duration) (map[lockfile.NodeID]QEntry, map[lockfile.NodeID]QGrant) {
	v.leaving = true
	return v.Register(), v.Grants(now)
}

// Stay undoes Leaving (a departure that could not be made).
func (v *QuorumVoter) Stay() { v.leaving = false }

// Apply commits change c on this voter itself (the changer's own side: a
// departure once every member accepted, a rejoin once every member
// accepted and their registers are merged).
func (v *QuorumVoter) Apply(c QChange) error {
	if v.view.Version+1 != c.Version {
		return fmt.Errorf("ha: membership version %d: cannot apply %v", v.view.Version, c)
	}
	v.view = v.view.apply(c)
	v.pending = nil
	if !c.Depart {
		v.leaving = false
	}
	return nil
}

// Merge raises the register with entries (a rejoining voter takes what
// the members it asked know).
func (v *QuorumVoter) Merge(reg map[lockfile.NodeID]QEntry) bool {
	return v.adopt(QRequest{Register: reg}, 0)
}
