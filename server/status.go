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
	Stats       Stats       `json:"stats"`
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
	// Pprof serves /debug/pprof/ (config <pprof-enabled>; by default on
	// only when the management address is loopback: it has no
	// authentication and shows the command line). Off, it answers 403.
	Pprof bool
}

// ManagementHandler serves GET /status (JSON), /metrics when given, and
// /debug/pprof/ when enabled.
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
	if !opts.Pprof {
		mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, errPprofDisabled.Error(), http.StatusForbidden)
		})
		return mux
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
