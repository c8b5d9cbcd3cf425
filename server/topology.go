package server

// Member is one broker of the topology clients learn: itself now, its
// backup and cluster peers once HA is active.
type Member struct {
	NodeID string `json:"node_id"`
	Role   string `json:"role"`
	State  string `json:"state"`
	URL    string `json:"url"`
	Epoch  uint64 `json:"epoch"`
}

// Topology is what the broker announces to clients. A newer epoch replaces
// an older topology; clients ignore updates with an older epoch.
type Topology struct {
	Epoch   uint64   `json:"epoch"`
	Members []Member `json:"members"`
}

// SetTopology replaces the announced topology and pushes it to every
// subscriber (connected clients). HA activation calls it when it learns of
// a backup or takes a new epoch.
func (s *Server) SetTopology(t Topology) {
	s.topoMu.Lock()
	s.topology = t
	subs := make([]func(Topology), 0, len(s.topoSubs))
	for _, f := range s.topoSubs {
		subs = append(subs, f)
	}
	s.topoMu.Unlock()
	for _, f := range subs {
		f(t)
	}
}

// Topology returns the announced topology.
func (s *Server) Topology() Topology {
	s.topoMu.Lock()
	defer s.topoMu.Unlock()
	return s.topology
}

// subscribeTopology calls f with the current topology now and on every
// change until the returned cancel runs.
func (s *Server) subscribeTopology(f func(Topology)) (cancel func()) {
	s.topoMu.Lock()
	id := s.topoNext
	s.topoNext++
	s.topoSubs[id] = f
	t := s.topology
	s.topoMu.Unlock()
	f(t)
	return func() {
		s.topoMu.Lock()
		delete(s.topoSubs, id)
		s.topoMu.Unlock()
	}
}
