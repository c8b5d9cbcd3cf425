package e2e

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Ledger records one run: what producers sent and how each send ended,
// what consumers received, and which of their acks the broker confirmed.
type Ledger struct {
	mu       sync.Mutex
	sent     map[string]bool // ID -> attempted
	acked    map[string]bool // the broker confirmed the send
	unknown  map[string]bool // the send's outcome is unknown
	received map[string]int  // deliveries per ID
	consumed map[string]int  // confirmed acks per ID
	again    map[string]bool // delivered again after its ack was confirmed
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{sent: map[string]bool{}, acked: map[string]bool{}, unknown: map[string]bool{},
		received: map[string]int{}, consumed: map[string]int{}, again: map[string]bool{}}
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

// Received records a delivery to a consumer (before its ack; an ack whose
// outcome is unknown leaves the message received but not consumed, and
// the broker may deliver it again).
func (l *Ledger) Received(id string) {
	l.mu.Lock()
	l.received[id]++
	if l.consumed[id] > 0 {
		l.again[id] = true
	}
	l.mu.Unlock()
}

// Consumed records that the broker confirmed the ack of a received message.
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
	Sent, Acked, Received, Consumed int
	// Lost: acknowledged sends never delivered.
	Lost []string
	// Unexpected: delivered, never sent.
	Unexpected []string
	// Duplicated: stored twice (its ack confirmed twice) or delivered again
	// after its ack was confirmed.
	Duplicated []string
	// Recovered: send outcome unknown, then delivered.
	Recovered []string
}

// OK reports whether the run kept the invariants: nothing lost,
// unexpected or duplicated.
func (r Report) OK() bool { return len(r.Lost)+len(r.Unexpected)+len(r.Duplicated) == 0 }

// String summarises the report, listing at most ten IDs per class.
func (r Report) String() string {
	short := func(ids []string) string {
		if len(ids) > 10 {
			return strings.Join(ids[:10], " ") + fmt.Sprintf(" ... (%d)", len(ids))
		}
		return strings.Join(ids, " ")
	}
	return fmt.Sprintf("sent %d, acknowledged %d, received %d, consumed %d; lost %d [%s], unexpected %d [%s], duplicated %d [%s], recovered %d",
		r.Sent, r.Acked, r.Received, r.Consumed, len(r.Lost), short(r.Lost), len(r.Unexpected), short(r.Unexpected),
		len(r.Duplicated), short(r.Duplicated), len(r.Recovered))
}

// Check classifies the run.
func (l *Ledger) Check() Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := Report{Sent: len(l.sent), Acked: len(l.acked), Received: len(l.received), Consumed: len(l.consumed)}
	for id := range l.acked {
		if l.received[id] == 0 {
			r.Lost = append(r.Lost, id)
		}
	}
	for id := range l.received {
		if !l.sent[id] {
			r.Unexpected = append(r.Unexpected, id)
		}
		if l.consumed[id] > 1 || l.again[id] {
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
