package e2e

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Ledger records one run: what producers sent and how each send ended,
// and what consumers received with a confirmed ack.
type Ledger struct {
	mu       sync.Mutex
	sent     map[string]bool // ID -> attempted
	acked    map[string]bool // the broker confirmed the send
	unknown  map[string]bool // the send's outcome is unknown
	consumed map[string]int  // confirmed acks per ID
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{sent: map[string]bool{}, acked: map[string]bool{}, unknown: map[string]bool{}, consumed: map[string]int{}}
}

// Sent records a send attempt of id.
func (l *Ledger) Sent(id string) {
	l.mu.Lock()
	l.sent[id] = true
	l.mu.Unlock()
}

// SendDone records a send's outcome: err nil means acknowledged; any error
// leaves the outcome unknown (the broker may have stored it).
func (l *Ledger) SendDone(id string, err error) {
	l.mu.Lock()
	if err == nil {
		l.acked[id] = true
		delete(l.unknown, id)
	} else if !l.acked[id] {
		l.unknown[id] = true
	}
	l.mu.Unlock()
}

// Consumed records a consumed message whose ack the broker confirmed.
func (l *Ledger) Consumed(id string) {
	l.mu.Lock()
	l.consumed[id]++
	l.mu.Unlock()
}

// Unknown returns the IDs whose send outcome is unknown, sorted.
func (l *Ledger) Unknown() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sortedKeys(l.unknown)
}

// Report is the classification of a run.
type Report struct {
	Sent, Acked, Consumed int
	Lost                  []string // acknowledged, never consumed
	Unexpected            []string // consumed, never sent
	Duplicated            []string // consumed (ack confirmed) more than once
	Recovered             []string // outcome unknown, then consumed
}

// OK reports whether the run kept the invariants: nothing lost,
// unexpected or duplicated.
func (r Report) OK() bool { return len(r.Lost)+len(r.Unexpected)+len(r.Duplicated) == 0 }

func (r Report) String() string {
	short := func(ids []string) string {
		if len(ids) > 10 {
			return strings.Join(ids[:10], " ") + fmt.Sprintf(" ... (%d)", len(ids))
		}
		return strings.Join(ids, " ")
	}
	return fmt.Sprintf("sent %d, acknowledged %d, consumed %d; lost %d [%s], unexpected %d [%s], duplicated %d [%s], recovered %d",
		r.Sent, r.Acked, r.Consumed, len(r.Lost), short(r.Lost), len(r.Unexpected), short(r.Unexpected),
		len(r.Duplicated), short(r.Duplicated), len(r.Recovered))
}

// Check classifies the run.
func (l *Ledger) Check() Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := Report{Sent: len(l.sent), Acked: len(l.acked), Consumed: len(l.consumed)}
	for id := range l.acked {
		if l.consumed[id] == 0 {
			r.Lost = append(r.Lost, id)
		}
	}
	for id, n := range l.consumed {
		if !l.sent[id] {
			r.Unexpected = append(r.Unexpected, id)
		}
		if n > 1 {
			r.Duplicated = append(r.Duplicated, id)
		}
		if l.unknown[id] && !l.acked[id] {
			r.Recovered = append(r.Recovered, id)
		}
	}
	sort.Strings(r.Lost)
	sort.Strings(r.Unexpected)
	sort.Strings(r.Duplicated)
	sort.Strings(r.Recovered)
	return r
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
