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
}

// counters are the live Stats.
type counters struct {
	in, dups, deliveries, acks atomic.Uint64
	sendLat                    lathist.Histogram // non-transacted sends, arrival to answer
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
		Deliveries: s.ctr.deliveries.Load(), Acks: s.ctr.acks.Load()}
}
