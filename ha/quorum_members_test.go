package ha

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/lockfile"
)

// voterNet is a transport to bare voters by URL (a missing or down one
// gives no answer), for the runner's membership rounds.
type voterNet struct {
	mu     sync.Mutex
	voters map[string]*QuorumVoter
	down   map[string]bool
	seen   []QRequest
}

func (n *voterNet) Targets() []string {
	out := make([]string, 0, len(n.voters))
	for u := range n.voters {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

func (n *voterNet) Ask(_ context.Context, url string, req QRequest) (QAnswer, QPeer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seen = append(n.seen, req)
	v := n.voters[url]
	if v == nil || n.down[url] {
		return QAnswer{}, QPeer{}, errors.New("down")
	}
	a, _ := v.Handle(req, time.Hour)
	return a, QPeer{Voter: v.ID()}, nil
}

func (n *voterNet) Describe() string { return "test voters" }

func noHooks() ReplHooks {
	return ReplHooks{LoadStore: func(context.Context, uint64) error { return nil }, StartServing: func(uint64) {}, StopServing: func() {},
		StartReplica: func(string) {}, StopReplica: func() {}, RequestFailback: func() {}, ReleaseHeld: func() {},
		Handover: func(context.Context) error { return nil }, Logger: slog.New(slog.DiscardHandler)}
}

func newMemberNet(ids ...QuorumVoterID) *voterNet {
	n := &voterNet{voters: map[string]*QuorumVoter{}, down: map[string]bool{}}
	for i, id := range ids {
		n.voters[string(rune('b'+i))] = NewQuorumVoter(id, time.Second, 0, nil)
	}
	return n
}

func memberRunner(t *testing.T, dir string, net *voterNet) *QuorumRunner {
	t.Helper()
	r, err := NewQuorumRunner(net, nil, dir, DefaultQuorumConfig(Primary), func() QPeer { return QPeer{} }, noHooks())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMembershipDepartRejoin: a broker stopped cleanly leaves the
// electorate once every other member accepted (each adopts its register,
// the departure is durable on its side and committed on theirs, and a
// node then needs a majority of the brokers that remain); started again,
// it rejoins (merging the members' registers) and votes again.
func TestMembershipDepartRejoin(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	net := newMemberNet(11, 12, 13)
	a := memberRunner(t, dir, net)
	id := a.voter.ID()
	node := lockfile.NodeID{1}
	a.voter.reg[node] = QEntry{Seq: 5, Owner: 9, From: 4, Leased: 5, LeasedOwner: 9}

	a.depart(ctx)
	for u, v := range net.voters {
		view, pending, _ := v.Members()
		if view.Version != 1 || !view.IsOut(id) || pending != nil {
			t.Fatalf("voter %s after the departure: view %+v pending %v", u, view, pending)
		}
		if e := v.Entry(node); e.Leased != 5 {
			t.Fatalf("voter %s did not adopt the departed voter's register: %+v", u, e)
		}
	}
	if _, _, out := a.voter.Members(); !out {
		t.Fatal("the departed voter does not know it is out")
	}
	if ans, _ := a.voter.Handle(QRequest{Kind: QClaim, Node: node, Seq: 6, From: 5, Owner: 1}, time.Hour); ans.Verdict != QRefused {
		t.Fatalf("a departed voter answered a claim with %v", ans.Verdict)
	}
	// A node that saw the new view needs 2 of the 3 brokers left.
	n, _ := NewQuorumNode(DefaultQuorumConfig(Backup), 1)
	n.quorum = 4
	r := &qRound{grants: map[QuorumVoterID]bool{11: true, id: true}}
	n.view = QView{Version: 1, Out: []QuorumVoterID{id}}
	if n.need(r) != 2 || n.granted(r) != 1 {
		t.Fatalf("after the departure: need %d, granted %d (the departed voter's grant counts for nothing)", n.need(r), n.granted(r))
	}

	// Started again: it is still out (the file says so) and rejoins.
	b := memberRunner(t, dir, net)
	if _, _, out := b.voter.Members(); !out {
		t.Fatal("a restarted departed voter does not know it is out")
	}
	net.voters["b"].reg[lockfile.NodeID{2}] = QEntry{Seq: 7, Owner: 3, From: 6, Leased: 7, LeasedOwner: 3}
	b.rejoin(ctx)
	view, _, out := b.voter.Members()
	if out || view.Version != 2 || len(view.Out) != 0 {
		t.Fatalf("after the rejoin: view %+v out %v", view, out)
	}
	if e := b.voter.Entry(lockfile.NodeID{2}); e.Leased != 7 {
		t.Fatalf("the rejoined voter did not merge a member's register: %+v", e)
	}
	for u, v := range net.voters {
		if view, pending, _ := v.Members(); view.Version != 2 || view.IsOut(id) || pending != nil {
			t.Fatalf("voter %s after the rejoin: view %+v pending %v", u, view, pending)
		}
	}
	st, err := LoadQuorumState(dir)
	if err != nil || st.View.Version != 2 || len(st.View.Out) != 0 {
		t.Fatalf("state file after the rejoin: %+v, %v", st.View, err)
	}
}

// TestMembershipNeedsEveryMember: with one member unreachable the
// departure is aborted: no member keeps it pending, nobody is out, and the
// broker that tried votes again (it refused claims while it prepared).
func TestMembershipNeedsEveryMember(t *testing.T) {
	ctx := context.Background()
	net := newMemberNet(11, 12, 13)
	net.down["d"] = true
	a := memberRunner(t, t.TempDir(), net)
	a.depart(ctx)
	for u, v := range net.voters {
		if view, pending, _ := v.Members(); view.Version != 0 || pending != nil {
			t.Fatalf("voter %s after a departure one member missed: view %+v pending %v", u, view, pending)
		}
	}
	if _, _, out := a.voter.Members(); out || a.voter.leaving {
		t.Fatal("the broker counts itself out after an aborted departure")
	}
	aborts := 0
	for _, r := range net.seen {
		if r.Kind == QAbortChange {
			aborts++
		}
	}
	if aborts != 3 {
		t.Fatalf("%d aborts sent, want one to each member", aborts)
	}
}

// TestMembershipVoterRules: what a voter accepts, refuses and learns.
func TestMembershipVoterRules(t *testing.T) {
	const x, y = QuorumVoterID(21), QuorumVoterID(22)
	v := NewQuorumVoter(1, time.Second, 0, nil)
	now := 2 * time.Second
	depart := func(voter QuorumVoterID, version uint64) QAnswer {
		a, _ := v.Handle(QRequest{Kind: QDepart, Voter: voter, View: QView{Version: version}}, now)
		return a
	}
	if a := depart(x, 0); a.Verdict != QGranted {
		t.Fatalf("a departure: %v %s", a.Verdict, a.Reason)
	}
	if a := depart(y, 0); a.Verdict != QRefused {
		t.Fatalf("a second change while one is pending: %v", a.Verdict)
	}
	if a := depart(x, 0); a.Verdict != QGranted {
		t.Fatalf("the same departure again (an answer lost): %v %s", a.Verdict, a.Reason)
	}
	// The commit never comes, but a request shows the committed view.
	if a, _ := v.Handle(QRequest{Kind: QInfo, View: QView{Version: 1, Out: []QuorumVoterID{x}}}, now); a.View.Version != 1 || !a.View.IsOut(x) {
		t.Fatalf("a voter that missed a commit did not learn it: %+v", a.View)
	}
	if _, p, _ := v.Members(); p != nil {
		t.Fatalf("pending %v after learning the commit", p)
	}
	if a := depart(y, 0); a.Verdict != QRefused {
		t.Fatalf("a departure prepared against version 0 at a voter of version 1: %v", a.Verdict)
	}
	// A pending change that is never ended expires.
	if a := depart(y, 1); a.Verdict != QGranted {
		t.Fatalf("departure of y: %v %s", a.Verdict, a.Reason)
	}
	v.Handle(QRequest{Kind: QInfo}, now+pendingLife)
	if _, p, _ := v.Members(); p != nil {
		t.Fatalf("pending %v after pendingLife", p)
	}
	// A broker counting another electorate cannot change this one's.
	v.SetElectorate(6)
	if a, _ := v.Handle(QRequest{Kind: QDepart, Voter: 33, View: QView{Version: 1, Out: []QuorumVoterID{x}}, Electorate: 7}, now+pendingLife); a.Verdict != QRefused {
		t.Fatalf("a departure from a broker with another electorate: %v", a.Verdict)
	}
	// A voter that is leaving refuses claims and leases.
	v.Leaving(now)
	if a, _ := v.Handle(QRequest{Kind: QLease, Seq: 1, From: 1, Owner: 5, Lease: time.Second}, now); a.Verdict != QRefused {
		t.Fatalf("a leaving voter answered a lease with %v", a.Verdict)
	}
	v.Stay()
	if a, _ := v.Handle(QRequest{Kind: QLease, Seq: 1, From: 1, Owner: 5, Lease: time.Second}, now); a.Verdict != QGranted {
		t.Fatalf("a voter that stayed answered a lease with %v %s", a.Verdict, a.Reason)
	}
}
