package ha

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The runner's side of clean departures and rejoins (quorum_members.go):
// a clean stop prepares the departure with every other member, commits it
// when all accepted (else aborts it), and a broker that starts out of the
// cluster rejoins in the background, retrying until every member accepts.

// memberWait bounds one membership round's answers.
const memberWait = 5 * time.Second

// askAll sends req to every target at once and returns the answers (no
// answer for those that gave none within memberWait).
func (r *QuorumRunner) askAll(ctx context.Context, req QRequest) []QAnswer {
	targets := r.tr.Targets()
	out := make([]QAnswer, len(targets))
	actx, cancel := context.WithTimeout(ctx, memberWait)
	defer cancel()
	var wg sync.WaitGroup
	for i, url := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, _, err := r.tr.Ask(actx, url, req)
			if err != nil {
				a = QAnswer{Verdict: QNoAnswer}
			}
			out[i] = a
		}()
	}
	wg.Wait()
	return out
}

// tally counts the distinct members of view (other than self) that
// granted, and returns the newest view an answer showed.
func tally(answers []QAnswer, view QView, self QuorumVoterID) (int, QView, string) {
	granted := map[QuorumVoterID]bool{}
	newest := view
	why := ""
	for _, a := range answers {
		if a.Verdict == QNoAnswer {
			continue
		}
		if newest.newer(a.View) {
			newest = a.View
		}
		switch {
		case a.Verdict == QGranted && a.Voter != self && !view.IsOut(a.Voter):
			granted[a.Voter] = true
		case a.Verdict != QGranted && a.Reason != "":
			why = a.Reason
		}
	}
	return len(granted), newest, why
}

// membersExpected is how many other members view has: the configured
// electorate (the targets and this broker) less the voters out of it,
// less this broker when it is a member.
func (r *QuorumRunner) membersExpected(view QView) int {
	n := len(r.tr.Targets()) + 1 - len(view.Out)
	if !view.IsOut(r.voter.ID()) {
		n--
	}
	return n
}

// learnView adopts a newer committed view (from the answers of a round).
func (r *QuorumRunner) learnView(view QView) {
	r.vmu.Lock()
	defer r.vmu.Unlock()
	if r.voter.learn(view, r.since(time.Now())) {
		if err := r.saveLocked(); err != nil {
			r.log.Error("saving the quorum voter's membership", "err", err)
		}
	}
}

// depart leaves the electorate on a clean stop (best effort: when not
// every other member accepts, the cluster goes on counting this broker).
func (r *QuorumRunner) depart(ctx context.Context) {
	if r.node.Config().StayOnStop {
		return
	}
	id := r.voter.ID()
	for attempt := 0; attempt < 3; attempt++ {
		now := r.since(time.Now())
		r.vmu.Lock()
		view, pending, out := r.voter.Members()
		if out {
			r.vmu.Unlock()
			return
		}
		if pending != nil {
			r.vmu.Unlock()
			r.log.Warn("not leaving the cluster's electorate: a membership change is pending here; the cluster goes on counting this broker (as down)", "pending", pending.String())
			return
		}
		reg, grants := r.voter.Leaving(now)
		r.vmu.Unlock()
		change := QChange{Version: view.Version + 1, Voter: id, Depart: true}
		answers := r.askAll(ctx, QRequest{Kind: QDepart, Voter: id, Register: reg, Grants: grants, View: view, Electorate: len(r.tr.Targets()) + 1})
		got, newest, why := tally(answers, view, id)
		want := r.membersExpected(view)
		if got < want {
			r.vmu.Lock()
			r.voter.Stay()
			r.vmu.Unlock()
			r.askAll(ctx, QRequest{Kind: QAbortChange, Change: change, View: view})
			if view.newer(newest) {
				r.learnView(newest)
				continue // prepared against an old view: again with the newer one
			}
			r.log.Warn(fmt.Sprintf("could not leave the cluster's electorate: %d of the %d other brokers accepted (every one must); the cluster goes on counting this broker, as down, until it starts again", got, want),
				"why", why)
			return
		}
		r.vmu.Lock()
		err := r.voter.Apply(change)
		if err == nil {
			err = r.saveLocked()
		}
		r.vmu.Unlock()
		if err != nil {
			r.log.Error("leaving the cluster's electorate: recording it failed; the departure is not committed", "err", err)
			r.askAll(ctx, QRequest{Kind: QAbortChange, Change: change, View: view})
			return
		}
		after := view.apply(change)
		r.askAll(ctx, QRequest{Kind: QCommitChange, Change: change, View: after})
		left := len(r.tr.Targets()) + 1 - len(after.Out)
		r.log.Info(fmt.Sprintf("left the cluster's electorate: its decisions now need %d of the %d brokers that remain; this broker rejoins when it starts again", left/2+1, left),
			"membership_version", after.Version)
		return
	}
}

// rejoin brings a broker that left cleanly back into the electorate,
// retrying every RetryInterval until every member accepts or ctx ends.
func (r *QuorumRunner) rejoin(ctx context.Context) {
	id := r.voter.ID()
	every := max(r.node.Config().RetryInterval, 200*time.Millisecond)
	var lastLog time.Time
	for {
		r.vmu.Lock()
		view, _, out := r.voter.Members()
		r.vmu.Unlock()
		if !out {
			return
		}
		// The newest view first: the cluster may have moved on (or never
		// committed this broker's departure).
		_, newest, _ := tally(r.askAll(ctx, QRequest{Kind: QInfo, View: view}), view, id)
		if view.newer(newest) {
			r.learnView(newest)
			continue
		}
		change := QChange{Version: view.Version + 1, Voter: id}
		answers := r.askAll(ctx, QRequest{Kind: QJoin, Voter: id, View: view, Electorate: len(r.tr.Targets()) + 1})
		got, newest, why := tally(answers, view, id)
		want := r.membersExpected(view)
		if got >= want {
			r.vmu.Lock()
			for _, a := range answers {
				if a.Verdict == QGranted && a.Voter != id && !view.IsOut(a.Voter) {
					r.voter.Merge(a.Register)
				}
			}
			err := r.voter.Apply(change)
			if err == nil {
				err = r.saveLocked()
			}
			r.vmu.Unlock()
			if err != nil {
				r.log.Error("rejoining the cluster's electorate: recording it failed", "err", err)
				r.askAll(ctx, QRequest{Kind: QAbortChange, Change: change, View: view})
				r.StorageError(err)
				return
			}
			after := view.apply(change)
			r.askAll(ctx, QRequest{Kind: QCommitChange, Change: change, View: after})
			r.log.Info("rejoined the cluster's electorate: this broker votes again", "membership_version", after.Version)
			return
		}
		r.askAll(ctx, QRequest{Kind: QAbortChange, Change: change, View: view})
		if view.newer(newest) {
			r.learnView(newest)
			continue
		}
		if time.Since(lastLog) > time.Minute {
			lastLog = time.Now()
			r.log.Warn(fmt.Sprintf("this broker left the cluster cleanly and rejoins once every other broker accepts: %d of %d did; until then it does not vote", got, want), "why", why)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
