package server

import (
	"context"
	"fmt"

	"github.com/tandemmq/tandem/config"
)

// predefine creates the configured addresses (config <addresses>) and
// their queues when missing, as management would: they are never
// auto-deleted. A queue that exists already is kept as it is (a
// different routing, address or filter is reported, not changed: its
// messages were routed under the old definition).
func (s *Server) predefine(ctx context.Context) error {
	for _, ad := range s.opts.Addresses {
		for _, r := range []struct {
			on bool
			r  Routing
		}{{ad.Anycast, Anycast}, {ad.Multicast, Multicast}} {
			if !r.on {
				continue
			}
			s.mu.Lock()
			_, _, err := s.ensureAddressLocked(ctx, ad.Name, r.r, false)
			s.mu.Unlock()
			if err != nil {
				return fmt.Errorf("server: <address name=%q> (line %d): %w", ad.Name, ad.Line, err)
			}
		}
		for _, qd := range ad.Queues {
			routing := Anycast
			if qd.Routing == config.RoutingMulticast {
				routing = Multicast
			}
			filter, err := parseSelector(qd.Filter)
			if err != nil {
				return fmt.Errorf("server: <queue name=%q> (line %d): %w", qd.Name, qd.Line, err)
			}
			s.mu.RLock()
			q := s.queues[qd.Name]
			s.mu.RUnlock()
			if q != nil {
				old := ""
				if q.filter != nil {
					old = q.filter.Text()
				}
				if q.addr.name != ad.Name || q.routing != routing || old != qd.Filter || q.durable != qd.Durable {
					s.log.Warn("a configured queue exists with another definition: kept as it is (delete it to apply the configuration)",
						"queue", qd.Name, "address", q.addr.name, "routing", q.routing, "durable", q.durable, "filter", old,
						"configured_address", ad.Name, "configured_routing", routing, "configured_durable", qd.Durable, "configured_filter", qd.Filter)
				}
				continue
			}
			if _, err := s.createQueue(ctx, ad.Name, qd.Name, routing, qd.Durable, false, false, filter); err != nil {
				return fmt.Errorf("server: <queue name=%q> (line %d): %w", qd.Name, qd.Line, err)
			}
		}
	}
	return nil
}
