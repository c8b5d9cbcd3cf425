package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/url"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/tandemmq/tandem/auth"
)

// Status is what GET /status returns (docs/cli.md's keys and a few more).
// Queues lists DefaultStatusQueues queues (by address, then name) unless
// the request asks for others (see QueueQuery); QueuesTotal counts the
// queues the request selects, whatever the page.
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
	QueuesTotal int         `json:"queues_total"`
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
	// Cluster is the cluster connection's load balancing: each peer's
	// bridge (forward.go); absent when no peer joined.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
	// Journals describes the file journals ("messages", "bindings",
	// "paging"): segments, bytes, group commit and compaction; absent for
	// other stores.
	Journals map[string]JournalInfo `json:"journals,omitempty"`
	// Paging is the memory messages take, the paging journal and the
	// addresses that page (absent while not serving).
	Paging *PagingStatus `json:"paging,omitempty"`
	// ColocatedBackups are the backups of other brokers this process
	// hosts (<colocated>); ColocatedBackupHost is where this broker's
	// own colocated backup runs ("" = none yet).
	ColocatedBackups    []ColocatedBackup `json:"colocated_backups,omitempty"`
	ColocatedBackupHost string            `json:"colocated_backup_host,omitempty"`

	// srv is the server behind the status (nil when not serving): the
	// management API's operations go to it.
	srv *Server
	// listQueues pages the queues for a request other than the default
	// (set by Server.Status; nil when the caller made its own Status).
	listQueues func(QueueQuery) ([]QueueInfo, int)
}

// ColocatedBackup is one backup a broker hosts for another (docs/ha-colocated.md).
type ColocatedBackup struct {
	Name          string `json:"name"`           // colocated_backup_N
	RequesterNode string `json:"requester_node"` // the node it backs up
	RequesterName string `json:"requester_name"`
	URL           string `json:"url"`   // its acceptor
	Role          string `json:"role"`  // backup
	State         string `json:"state"` // waiting, active, ... ; "exited" once it ended
	Epoch         uint64 `json:"epoch"`
	Since         string `json:"since"` // RFC 3339: when it was started
	// NodeID is the node the backup holds data of (replication: its
	// requester's once it synced); Replication its replication state.
	NodeID      string             `json:"node_id,omitempty"`
	Replication *ReplicationStatus `json:"replication,omitempty"`
}

// ReplicationStatus is /status's replication object (docs/cli.md).
type ReplicationStatus struct {
	State      string  `json:"state"` // none, syncing or synced
	Peer       *string `json:"peer"`  // the other side's URL, null when none
	LagRecords int     `json:"lag_records"`
	LagBytes   int64   `json:"lag_bytes"`
	Since      string  `json:"since"` // RFC 3339: when state last changed
}

// statusConcurrency is how many GET /status requests build their answer
// at once (half the Go processors, at least one); the others wait, so that
// many clients polling /status cannot take the processors from the
// broker's clients.
func statusConcurrency() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// DefaultStatusQueues is how many queues /status lists unless asked for
// more: a broker may hold 100 000, and /status must stay cheap.
const DefaultStatusQueues = 100

// QueueQuery selects the queues /status lists, in (address, name) order:
// GET /status?queues=all (every one), ?prefix=P (names starting with P),
// ?offset=N and ?limit=N (default DefaultStatusQueues; 0 lists none, for
// queues_total alone).
type QueueQuery struct {
	All    bool
	Prefix string
	Offset int
	Limit  int // 0: DefaultStatusQueues; < 0: none (only the total); ignored with All
}

// parseQueueQuery reads a QueueQuery from /status's query string.
func parseQueueQuery(v url.Values) (QueueQuery, error) {
	var q QueueQuery
	switch v.Get("queues") {
	case "":
	case "all":
		q.All = true
	default:
		return q, fmt.Errorf("queues=%q: want queues=all (or prefix=, limit=, offset=)", v.Get("queues"))
	}
	q.Prefix = v.Get("prefix")
	for _, p := range []struct {
		name string
		dst  *int
	}{{"offset", &q.Offset}, {"limit", &q.Limit}} {
		if s := v.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return q, fmt.Errorf("%s=%q: want a number >= 0", p.name, s)
			}
			*p.dst = n
			if p.name == "limit" && n == 0 {
				q.Limit = -1
			}
		}
	}
	return q, nil
}

// Status describes the running broker with the first page of its queues.
// The caller fills Acceptors and Connections, which the server does not
// own.
func (s *Server) Status() Status {
	st := Status{
		NodeID: s.nodeID, Name: s.opts.Name, Version: Version, Policy: s.opts.Policy,
		Role: s.opts.Role, State: "active", Epoch: s.epoch, Store: s.opts.Store,
		CPUSeconds: CPUSeconds(), Stats: s.Stats(), listQueues: s.ListQueues, srv: s,
		Journals: s.journalInfo(),
	}
	ps := s.Paging()
	st.Paging = &ps
	st.Queues, st.QueuesTotal = s.ListQueues(QueueQuery{})
	s.mu.RLock()
	if s.closed {
		st.State = "stopping"
	}
	s.mu.RUnlock()
	if err := s.Halted(); err != nil {
		st.State = "stopping"
		st.Halted = err.Error()
	}
	st.Cluster = s.ClusterStatus()
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
	// Server returns the server the management API's operations go to
	// (nil while not serving); when nil itself, the server behind
	// Status's answer is used.
	Server func() *Server
	// Security authenticates and authorizes the management API's
	// requests; nil uses the guard of the server's acceptors.
	Security *auth.Guard
}

// ManagementHandler serves GET /status (JSON; see QueueQuery for its
// query parameters), /metrics when given, /debug/pprof/ when enabled, the
// management API under /api/ and the web console at / (mgmthttp.go).
func ManagementHandler(opts ManagementOptions) http.Handler {
	mux := http.NewServeMux()
	srv := opts.Server
	if srv == nil {
		srv = func() *Server { return opts.Status().srv }
	}
	sec := func() *auth.Guard {
		if opts.Security != nil {
			return opts.Security
		}
		if s := srv(); s != nil {
			return s.Security()
		}
		return nil
	}
	registerManagement(mux, srv, sec)
	started := time.Now()
	// turns admits statusConcurrency requests at a time to build their
	// answer (into a buffer: a slow reader does not keep its turn).
	turns := make(chan struct{}, statusConcurrency())
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		qq, err := parseQueueQuery(r.URL.Query())
		if err != nil {
			http.Error(w, "GET /status: "+err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case turns <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		st := opts.Status()
		if qq != (QueueQuery{}) && st.listQueues != nil {
			st.Queues, st.QueuesTotal = st.listQueues(qq)
		}
		if st.Queues == nil {
			st.Queues = []QueueInfo{}
		}
		st.UptimeSec = time.Since(started).Seconds()
		body, err := json.MarshalIndent(st, "", "  ")
		<-turns
		if err != nil {
			http.Error(w, "GET /status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(body, '\n'))
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
