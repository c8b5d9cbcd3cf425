package server

import (
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/internal/lathist"
)

// Stats are the broker's counters since it started (for /status and,
// later, /metrics).
type Stats struct {
	// MessagesIn counts messages stored (routed) by sends and commits.
	MessagesIn uint64 `json:"messages_in"`
	// Duplicates counts sends dropped because their duplicate ID was
	// already stored.
	Duplicates uint64 `json:"duplicates"`
	// Deliveries counts messages handed to consumers (redeliveries too).
	Deliveries uint64 `json:"deliveries"`
	// Acks counts acknowledgements applied.
	Acks uint64 `json:"acks"`
	// DeadLettered counts messages that reached max-delivery-attempts
	// (moved to their dead-letter address, or dropped without one).
	DeadLettered uint64 `json:"dead_lettered"`
	// Expired counts messages that expired (moved to their expiry
	// address, or dropped without one).
	Expired uint64 `json:"expired"`
	// Paged counts messages written to the paging journal.
	Paged uint64 `json:"paged"`
	// Blocked counts sends held because their address was full (BLOCK).
	Blocked uint64 `json:"blocked"`
	// Dropped counts messages dropped because their address was full
	// (DROP).
	Dropped uint64 `json:"dropped"`
}

// counters are the live Stats.
type counters struct {
	in, dups, deliveries, acks, deadLettered, expired atomic.Uint64
	paged, blocked, dropped                           atomic.Uint64
	sendLat                                           lathist.Histogram // non-transacted sends, arrival to answer
}

// SendLatency returns the distribution of non-transacted sends' latency
// in the broker: from Send to its outcome (stored durably and routed,
// or refused), network time excluded.
func (s *Server) SendLatency() lathist.Snapshot { return s.ctr.sendLat.Snapshot() }

// timed wraps a send's done so that it records the send's latency from t0.
func (s *Server) timed(t0 time.Time, done func(error)) func(error) {
	return func(err error) {
		s.ctr.sendLat.Observe(time.Since(t0))
		done(err)
	}
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{MessagesIn: s.ctr.in.Load(), Duplicates: s.ctr.dups.Load(),
		Deliveries: s.ctr.deliveries.Load(), Acks: s.ctr.acks.Load(),
		DeadLettered: s.ctr.deadLettered.Load(), Expired: s.ctr.expired.Load(),
		Paged: s.ctr.paged.Load(), Blocked: s.ctr.blocked.Load(), Dropped: s.ctr.dropped.Load()}
}
