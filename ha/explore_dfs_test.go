package ha

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

var exploreProgress = flag.Bool("explore-progress", false, "print the exhaustive explorations' progress (every million states) to stderr")

// The exhaustive explorers of the replication pair (rsWorld) and of the
// quorum vote (qsWorld) share one search: exploreDFS, depth first over the
// world's steps, with a visited set of fixed-size state hashes. A breadth
// first search holds every world of a level at once (the quorum failback
// case grew past 20 GB that way); depth first holds only the worlds of the
// current path, at most maxDepth of them, and 16 bytes per visited state.

// simStep is one possible next step of a simulated world: desc says what
// happens, apply makes it happen (an error is an invariant violated while
// doing it).
type simStep[W any] struct {
	desc  string
	apply func(w W) error
}

// simWorld is what exploreDFS needs of a simulated world.
type simWorld[W any] interface {
	// clone returns an independent copy (sharing only the statistics).
	clone() W
	// replayCopy returns a copy whose steps record into statistics of
	// their own, for replaying a trace.
	replayCopy() W
	// steps lists every possible next step, in a deterministic order.
	steps() []simStep[W]
	// check asserts the invariants at the current instant (it may note
	// what it saw, e.g. the newest epoch that could acknowledge).
	check() error
	// key returns a 128-bit hash of the world's canonical encoding (equal
	// for worlds the invariants cannot tell apart, e.g. up to a shift of
	// time) and the encoding, built in buf.
	key(buf []byte) (key128, []byte)
	String() string
}

// exploreResult says how far an exploration went.
type exploreResult struct {
	states    int    // distinct states reached (each expanded once)
	maxDepth  int    // the longest path the search followed
	truncated int    // states reached at the depth bound: not expanded, the search is not exhaustive
	deepTrace string // a path to one of them
}

// exploreDFS visits every world state reachable from w0, depth first, and
// checks the invariants after every step. It returns an error naming the
// invariant and a trace to it (replayed from w0, one line per step, then
// the final world) on the first violation, and an error when more than
// maxStates distinct states are reached.
//
// Each distinct state (by key) is expanded once, when first reached. A
// state first reached by a path of maxDepth steps is not expanded:
// truncated counts those, and a test that requires an exhaustive search
// fails when it is not zero. When it is zero the visited states are closed
// under every step, so they are every state reachable from w0. The bound
// is on the search's path, which is longer than the shortest path to a
// state (a few hundred steps where breadth first search needs under a
// hundred); it keeps an unbounded state space (a counter that grows for
// ever) from exhausting memory: the path holds maxDepth worlds at most.
//
// The trace of a violation is the search's path, shortened (shortenTrace)
// to a path that ends in the same invariant's violation.
func exploreDFS[W simWorld[W]](w0 W, maxDepth, maxStates int) (exploreResult, error) {
	var res exploreResult
	var seen stateSet
	// The search makes garbage fast and keeps little besides the
	// visited set: collect less often, letting garbage grow to about
	// 512 MiB (GOGC=400 while the set is small, down to 25 as it grows).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	tableBytes := 0
	tuneGC := func() {
		if b := 16 * len(seen.slots); b != tableBytes {
			tableBytes = b
			debug.SetGCPercent(min(400, max(25, (512<<20)*100/(tableBytes+64<<20))))
		}
	}
	start := time.Now()
	root := w0.clone()
	type frame struct {
		w     W
		steps []simStep[W]
		next  int // the index of the next step to try; next-1 led to the frame above
	}
	path := func(stack []frame) []int {
		p := make([]int, len(stack))
		for i := range stack {
			p[i] = stack[i].next - 1
		}
		return p
	}
	k0, buf := w0.key(nil)
	seen.add(k0)
	stack := []frame{{w: w0, steps: w0.steps()}}
	var deepPath []int
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.next == len(f.steps) {
			stack[len(stack)-1] = frame{} // its world's memory goes now
			stack = stack[:len(stack)-1]
			continue
		}
		f.next++
		c := f.w.clone()
		err := f.steps[f.next-1].apply(c)
		if err == nil {
			err = c.check()
		}
		if err != nil {
			res.states = seen.n
			p := shortenTrace(root, path(stack), err)
			if _, _, rerr := replayTrace(root, p); rerr != nil && invariantOf(rerr) == invariantOf(err) {
				err = rerr // the violation at the end of the shortened trace
			}
			return res, fmt.Errorf("invariant violated: %v\ntrace (%d steps; the search's path had %d):\n  %s", err, len(p), len(stack), traceText(root, p))
		}
		var ck key128
		ck, buf = c.key(buf)
		if !seen.add(ck) {
			continue
		}
		tuneGC()
		if seen.n > maxStates {
			res.states = seen.n
			if res.truncated > 0 {
				res.deepTrace = traceText(root, deepPath)
			}
			return res, fmt.Errorf("more than %d states: lower the budget", maxStates)
		}
		if *exploreProgress && seen.n%1_000_000 == 0 {
			fmt.Fprintf(os.Stderr, "explore: %d states, path %d, %v\n", seen.n, len(stack), time.Since(start).Round(time.Second))
		}
		depth := len(stack)
		res.maxDepth = max(res.maxDepth, depth)
		if depth >= maxDepth {
			res.truncated++
			if deepPath == nil {
				deepPath = path(stack)
			}
			continue
		}
		stack = append(stack, frame{w: c, steps: c.steps()})
	}
	res.states = seen.n
	if res.truncated > 0 {
		res.deepTrace = traceText(root, deepPath)
	}
	return res, nil
}

// replayTrace replays path from root (on a copy with statistics of its
// own) and returns the worlds before each step, and the step and error of
// the first violation (-1, nil if none; also -1 when a step index does
// not exist, with an error saying so).
func replayTrace[W simWorld[W]](root W, path []int) ([]W, int, error) {
	w := root.replayCopy()
	var before []W
	for i, p := range path {
		before = append(before, w.clone())
		ss := w.steps()
		if p >= len(ss) {
			return before, -1, fmt.Errorf("no step %d", p)
		}
		err := ss[p].apply(w)
		if err == nil {
			err = w.check()
		}
		if err != nil {
			return before, i, err
		}
	}
	return before, -1, nil
}

// traceText replays path from root: one line per step, then the world.
func traceText[W simWorld[W]](root W, path []int) string {
	w := root.replayCopy()
	var lines []string
	for _, p := range path {
		s := w.steps()[p]
		lines = append(lines, s.desc)
		if err := s.apply(w); err != nil {
			break
		}
		if err := w.check(); err != nil {
			break
		}
	}
	return strings.Join(lines, "\n  ") + "\n  final: " + w.String()
}

// invariantOf names the invariant an error reports: its text before the
// first colon when that is one word ("I4", "Q1", "protocol"), else all of
// it.
func invariantOf(err error) string {
	s := err.Error()
	if name, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(name, " ") {
		return name
	}
	return s
}

// shortenTrace shortens the path to a violation that depth first search
// found (it can be hundreds of steps where a few dozen suffice): from each
// world on the path it tries every sequence of up to shortcutSteps steps,
// and takes one that reaches (by key) a later world of the path sooner, or
// violates the same invariant sooner, if replaying the shortened path from
// the start still ends in that invariant's violation. It repeats until no
// shortcut is left. Only the readability of the failure depends on it.
func shortenTrace[W simWorld[W]](root W, path []int, violation error) []int {
	const shortcutSteps = 2
	want := invariantOf(violation)
	holds := func(p []int) bool {
		_, at, err := replayTrace(root, p)
		return at == len(p)-1 && err != nil && invariantOf(err) == want
	}
	if !holds(path) {
		return path
	}
	var buf []byte
	type node struct {
		w   W
		sub []int
	}
	// shortcut returns a shorter path that leaves the path at world i.
	shortcut := func(before []W, pos map[key128]int, i int) []int {
		level := []node{{w: before[i]}}
		for d := 1; d <= shortcutSteps && i+d < len(path); d++ {
			var next []node
			for _, n := range level {
				for si, s := range n.w.steps() {
					c := n.w.clone()
					err := s.apply(c)
					if err == nil {
						err = c.check()
					}
					sub := append(append([]int(nil), n.sub...), si)
					var cand []int
					if err != nil {
						if invariantOf(err) == want {
							cand = append(append([]int(nil), path[:i]...), sub...)
						}
					} else {
						var k key128
						k, buf = c.key(buf)
						if j, ok := pos[k]; ok && j > i+d {
							cand = append(append(append([]int(nil), path[:i]...), sub...), path[j:]...)
						} else {
							next = append(next, node{c, sub})
						}
					}
					if cand != nil && len(cand) < len(path) && holds(cand) {
						return cand
					}
				}
			}
			level = next
		}
		return nil
	}
	var before []W
	var pos map[key128]int
	for i := 0; i < len(path); {
		if before == nil {
			before, _, _ = replayTrace(root, path)
			pos = map[key128]int{}
			for j, w := range before {
				var k key128
				k, buf = w.key(buf)
				pos[k] = j // the last world of the path with that key
			}
		}
		if p := shortcut(before, pos, i); p != nil {
			path, before = p, nil // the worlds up to i stay; try i again
			continue
		}
		i++
	}
	return path
}

// stateSet is a set of 128-bit state hashes: an open-addressing table
// of 16-byte slots (linear probing, at most 3/4 full), so a state costs 21
// to 43 bytes (the table doubles when full; while it grows both tables
// exist: 64 bytes a state at worst, for that moment).
//
// A slot keeps 127 bits of the key: bit 0 of the first word is forced to 1
// so that no slot of a state is zero (zero is empty). The two 64-bit
// halves are maphash with two independent random seeds, so two distinct
// encodings agree on all 127 bits with probability 2^-127, and among n
// states the chance of any collision is below n²/2^128: for 10^9 states
// (ten times more than any case explores) under 3·10^-21. A collision
// would merge two states (the second never explored), so that is the
// probability that one exploration silently misses part of the space;
// the seeds are random per process, so a rerun would not repeat it.
type stateSet struct {
	slots []key128
	n     int
}

// add adds k and reports whether it was new.
func (s *stateSet) add(k key128) bool {
	if 4*(s.n+1) > 3*len(s.slots) {
		s.grow()
	}
	k[0] |= 1
	i := s.find(k)
	if s.slots[i][0] != 0 {
		return false
	}
	s.slots[i] = k
	s.n++
	return true
}

// find returns the slot index of k, or of the empty slot where it belongs.
func (s *stateSet) find(k key128) int {
	mask := len(s.slots) - 1
	i := int(k[0]>>1) & mask
	for {
		e := s.slots[i]
		if e[0] == 0 || e == k {
			return i
		}
		i = (i + 1) & mask
	}
}

func (s *stateSet) grow() {
	old := s.slots
	s.slots = make([]key128, max(2*len(old), 1<<10))
	for _, e := range old {
		if e[0] != 0 {
			s.slots[s.find(e)] = e
		}
	}
}
