package server

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"syscall"
	"time"
)

// Status is what GET /status returns (CLI.md's keys and a few more).
type Status struct {
	NodeID      string      `json:"node_id"`
	Name        string      `json:"name"`
	Version     string      `json:"version"`
	Policy      string      `json:"policy"`
	Role        string      `json:"role"`
	State       string      `json:"state"`
	Epoch       uint64      `json:"epoch"`
	Store       string      `json:"store"`
	Peers       []Member    `json:"peers"`
	CPUSeconds  float64     `json:"cpu_seconds"`
	Queues      []QueueInfo `json:"queues"`
	Connections int         `json:"connections"`
	Acceptors   []string    `json:"acceptors,omitempty"`
	UptimeSec   float64     `json:"uptime_seconds"`
	Halted      string      `json:"halted,omitempty"`
	// Replication is set for the replication policy: on the live its
	// replica's state, on a replica its own.
	Replication *ReplicationStatus `json:"replication,omitempty"`
	// ActivationSequence is the local activation sequence (replication).
	ActivationSequence *uint64 `json:"activation_sequence,omitempty"`
	// CoordinatedSequence is the coordinated one as last seen (ZooKeeper;
	// negative while claimed).
	CoordinatedSequence *int64 `json:"coordinated_sequence,omitempty"`
	Stats               Stats  `json:"stats"`
}

// ReplicationStatus is /status's replication object (docs/cli.md).
type ReplicationStatus struct {
	State      string  `json:"state"` // none, syncing or synced
	Peer       *string `json:"peer"`  // the other side's URL, null when none
	LagRecords int     `json:"lag_records"`
	LagBytes   int64   `json:"lag_bytes"`
	Since      string  `json:"since"` // RFC 3339: when state last changed
}

// Status describes the running broker. The caller fills Acceptors and
// Connections, which the server does not own.
func (s *Server) Status() Status {
	st := Status{
		NodeID: s.nodeID, Name: s.opts.Name, Version: Version, Policy: s.opts.Policy,
		Role: s.opts.Role, State: "active", Epoch: s.epoch, Store: s.opts.Store,
		CPUSeconds: CPUSeconds(), Queues: s.Queues(), Stats: s.Stats(),
	}
	s.mu.RLock()
	if s.closed {
		st.State = "stopping"
	}
	s.mu.RUnlock()
	if err := s.Halted(); err != nil {
		st.State = "stopping"
		st.Halted = err.Error()
	}
	st.Peers = s.Topology().Members
	if st.Peers == nil {
		st.Peers = []Member{}
	}
	return st
}

// CPUSeconds returns the process's CPU time (user + system) in seconds.
func CPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// ManagementOptions configure the management HTTP handler.
type ManagementOptions struct {
	// Status returns the broker's status; it is called per request (an HA
	// backup that is not serving yet supplies its own).
	Status func() Status
	// Metrics serves /metrics (Prometheus text); nil leaves it out.
	Metrics http.Handler
}

// ManagementHandler serves GET /status (JSON), /metrics when given, and
// /debug/pprof/.
func ManagementHandler(opts ManagementOptions) http.Handler {
	mux := http.NewServeMux()
	started := time.Now()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := opts.Status()
		st.UptimeSec = time.Since(started).Seconds()
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	})
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
