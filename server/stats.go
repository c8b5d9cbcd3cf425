package server

import "sync/atomic"

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
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{MessagesIn: s.ctr.in.Load(), Duplicates: s.ctr.dups.Load(),
		Deliveries: s.ctr.deliveries.Load(), Acks: s.ctr.acks.Load()}
}
