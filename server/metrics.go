package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tandemmq/tandem/internal/lathist"
	"github.com/tandemmq/tandem/journal"
)

// journalStats is implemented by journals that count their work (the file
// journal).
type journalStats interface {
	Stats() journal.Stats
}

// journalMetrics is implemented by journals with segment figures (the file
// journal).
type journalMetrics interface {
	Metrics() journal.Metrics
}

// MetricsOptions configure MetricsHandler.
type MetricsOptions struct {
	// Server is the broker whose counters are exported; it may change
	// (HA activation) through the function form below.
	Server func() *Server
	// Connections returns the number of open client connections.
	Connections func() int
	// Net returns the acceptors' counters (refused connections, write
	// timeouts, read pauses, protocol errors, suppressed log lines).
	Net func() NetStats
	// Extra are more collectors (an HA policy's, for instance).
	Extra []prometheus.Collector
}

// MetricsHandler serves /metrics in the Prometheus text format: the
// broker's counters (messages in, duplicates, deliveries, acks), queue
// depths and consumers, connections and the acceptors' limits (refused
// connections, write timeouts, read pauses, protocol errors, suppressed
// log lines), the journals' counters (appends,
// batches, fdatasyncs, bytes: appends per batch is the group-commit batch
// size), process CPU and memory, and the Go runtime and GC.
func MetricsHandler(o MetricsOptions) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		// The scheduler's metrics include the latency from a goroutine
		// becoming runnable to running (go_sched_latencies_seconds) and the
		// stop-the-world pauses (go_sched_pauses_total_gc_seconds): with
		// one Go processor (cmd/tandem tuneProcs) they show a stall the
		// scheduler or the collector causes.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&brokerCollector{o: o},
	)
	reg.MustRegister(o.Extra...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

var (
	descIn         = prometheus.NewDesc("tandem_messages_in_total", "Messages stored (routed) by sends and commits.", nil, nil)
	descDups       = prometheus.NewDesc("tandem_duplicates_total", "Sends dropped as duplicates of a stored duplicate ID.", nil, nil)
	descDeliveries = prometheus.NewDesc("tandem_deliveries_total", "Messages handed to consumers, redeliveries included.", nil, nil)
	descAcks       = prometheus.NewDesc("tandem_acks_total", "Acknowledgements applied.", nil, nil)
	descConns      = prometheus.NewDesc("tandem_connections", "Open client connections.", nil, nil)
	descDepth      = prometheus.NewDesc("tandem_queue_depth", "Messages in a queue, being delivered included.", []string{"address", "queue", "routing"}, nil)
	descConsumers  = prometheus.NewDesc("tandem_queue_consumers", "Consumers attached to a queue.", []string{"address", "queue", "routing"}, nil)
	descJAppends   = prometheus.NewDesc("tandem_journal_appends_total", "Append calls a journal accepted.", []string{"journal"}, nil)
	descJBatches   = prometheus.NewDesc("tandem_journal_batches_total", "Group-commit batches a journal wrote.", []string{"journal"}, nil)
	descJSyncs     = prometheus.NewDesc("tandem_journal_syncs_total", "Batches written with fdatasync.", []string{"journal"}, nil)
	descJBytes     = prometheus.NewDesc("tandem_journal_bytes_total", "Bytes a journal wrote, padding included.", []string{"journal"}, nil)
	descJSegments  = prometheus.NewDesc("tandem_journal_segments", "Segments from the oldest kept to the current one.", []string{"journal"}, nil)
	descJLive      = prometheus.NewDesc("tandem_journal_live_records", "Records a journal holds live.", []string{"journal"}, nil)
	descJReclaimed = prometheus.NewDesc("tandem_journal_reclaimed_segments_total", "Segments reclaimed (recycled or removed).", []string{"journal"}, nil)
	descHalted     = prometheus.NewDesc("tandem_halted", "1 once the broker halted on a storage error.", nil, nil)
	descDead       = prometheus.NewDesc("tandem_messages_dead_lettered_total", "Messages that reached max-delivery-attempts (moved to their dead-letter address, or dropped).", nil, nil)
	descExpired    = prometheus.NewDesc("tandem_messages_expired_total", "Messages that expired (moved to their expiry address, or dropped).", nil, nil)
	descPagedTotal = prometheus.NewDesc("tandem_messages_paged_total", "Messages written to the paging journal.", nil, nil)
	descBlocked    = prometheus.NewDesc("tandem_sends_blocked_total", "Sends held because their address was full (address-full-policy BLOCK).", nil, nil)
	descDropped    = prometheus.NewDesc("tandem_messages_dropped_total", "Messages dropped because their address was full (address-full-policy DROP).", nil, nil)
	descMem        = prometheus.NewDesc("tandem_memory_bytes", "Memory messages held in memory take, as counted against global-max-size.", nil, nil)
	descGlobalMax  = prometheus.NewDesc("tandem_global_max_size_bytes", "global-max-size (0: none).", nil, nil)
	descAddrMem    = prometheus.NewDesc("tandem_address_memory_bytes", "Memory an address's messages take (addresses that page or hold paged messages).", []string{"address"}, nil)
	descAddrPaging = prometheus.NewDesc("tandem_address_paging", "1 while new messages of the address go to the paging journal.", []string{"address"}, nil)
	descAddrPaged  = prometheus.NewDesc("tandem_address_paged_messages", "Paged messages of an address's queues not read into memory yet.", []string{"address"}, nil)
	descAddrPagedB = prometheus.NewDesc("tandem_address_paged_bytes", "Bytes of an address's queues' paged messages not read yet.", []string{"address"}, nil)
	descAddrFiles  = prometheus.NewDesc("tandem_address_page_files", "Paging journal segment files an address's paged messages span.", []string{"address"}, nil)
	descAddrBlock  = prometheus.NewDesc("tandem_address_blocked_sends", "Sends an address holds now (BLOCK).", []string{"address"}, nil)
	descRefused    = prometheus.NewDesc("tandem_connections_refused_total", "Connections refused over connectionsAllowed or connections-allowed.", nil, nil)
	descWTimeouts  = prometheus.NewDesc("tandem_connections_write_timeout_total", "Connections closed because the client took no byte for the write timeout.", nil, nil)
	descReadPauses = prometheus.NewDesc("tandem_connection_read_pauses_total", "Times a connection stopped reading requests because its client did not read its answers.", nil, nil)
	descProtoErrs  = prometheus.NewDesc("tandem_connections_protocol_errors_total", "Connections closed on a malformed or misplaced frame.", nil, nil)
	descTLSErrs    = prometheus.NewDesc("tandem_connections_tls_errors_total", "Connections to a TLS acceptor closed before their handshake completed (a failed handshake, or a plain-text client).", nil, nil)
	descLogSupp    = prometheus.NewDesc("tandem_log_lines_suppressed_total", "Log lines about clients dropped by the rate limit.", nil, nil)
	descSendLat    = prometheus.NewDesc("tandem_send_duration_seconds",
		"Latency of non-transacted sends in the broker: from the send's arrival to its outcome (stored durably and routed, or refused); network time excluded.", nil, nil)
	descJSyncLat = prometheus.NewDesc("tandem_journal_sync_duration_seconds",
		"Write + fdatasync time of each synced journal write (a batch's last write, a segment's seal).", []string{"journal"}, nil)
	descJPrepWaits = prometheus.NewDesc("tandem_journal_prepare_waits_total",
		"Times the journal's writer waited for the next segment file to be prepared (0 unless the disk cannot keep up).", []string{"journal"}, nil)
	descJPrepWait = prometheus.NewDesc("tandem_journal_prepare_wait_seconds_total",
		"Time the journal's writer spent waiting for the next segment file to be prepared.", []string{"journal"}, nil)
)

// constHistogram turns a latency snapshot into a Prometheus histogram.
func constHistogram(d *prometheus.Desc, s lathist.Snapshot, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstHistogram(d, s.Count, s.Sum.Seconds(), s.Cumulative(), labels...)
}

// brokerCollector reads the broker's state at scrape time.
type brokerCollector struct{ o MetricsOptions }

// Describe sends every metric description.
func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIn, descDups, descDeliveries, descAcks, descConns, descDepth,
		descConsumers, descJAppends, descJBatches, descJSyncs, descJBytes, descJSegments, descJLive, descJReclaimed, descHalted,
		descRefused, descWTimeouts, descReadPauses, descProtoErrs, descLogSupp, descTLSErrs,
		descSendLat, descJSyncLat, descJPrepWaits, descJPrepWait,
		descDead, descExpired, descPagedTotal, descBlocked, descDropped, descMem, descGlobalMax,
		descAddrMem, descAddrPaging, descAddrPaged, descAddrPagedB, descAddrFiles, descAddrBlock} {
		ch <- d
	}
}

// Collect reads the broker's state now.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	if c.o.Connections != nil {
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(c.o.Connections()))
	}
	if c.o.Net != nil {
		n := c.o.Net()
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n.Refused))
		ch <- prometheus.MustNewConstMetric(descWTimeouts, prometheus.CounterValue, float64(n.WriteTimeouts))
		ch <- prometheus.MustNewConstMetric(descReadPauses, prometheus.CounterValue, float64(n.ReadPauses))
		ch <- prometheus.MustNewConstMetric(descProtoErrs, prometheus.CounterValue, float64(n.ProtocolErrors))
		ch <- prometheus.MustNewConstMetric(descLogSupp, prometheus.CounterValue, float64(n.LogSuppressed))
		ch <- prometheus.MustNewConstMetric(descTLSErrs, prometheus.CounterValue, float64(n.TLSErrors))
	}
	var s *Server
	if c.o.Server != nil {
		s = c.o.Server()
	}
	if s == nil {
		return
	}
	st := s.Stats()
	ch <- prometheus.MustNewConstMetric(descIn, prometheus.CounterValue, float64(st.MessagesIn))
	ch <- prometheus.MustNewConstMetric(descDups, prometheus.CounterValue, float64(st.Duplicates))
	ch <- prometheus.MustNewConstMetric(descDeliveries, prometheus.CounterValue, float64(st.Deliveries))
	ch <- prometheus.MustNewConstMetric(descAcks, prometheus.CounterValue, float64(st.Acks))
	ch <- prometheus.MustNewConstMetric(descDead, prometheus.CounterValue, float64(st.DeadLettered))
	ch <- prometheus.MustNewConstMetric(descExpired, prometheus.CounterValue, float64(st.Expired))
	ch <- prometheus.MustNewConstMetric(descPagedTotal, prometheus.CounterValue, float64(st.Paged))
	ch <- prometheus.MustNewConstMetric(descBlocked, prometheus.CounterValue, float64(st.Blocked))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped))
	ps := s.Paging()
	ch <- prometheus.MustNewConstMetric(descMem, prometheus.GaugeValue, float64(ps.MemoryBytes))
	ch <- prometheus.MustNewConstMetric(descGlobalMax, prometheus.GaugeValue, float64(ps.GlobalMaxSize))
	for _, a := range ps.Addresses {
		paging := 0.0
		if a.Paging {
			paging = 1
		}
		ch <- prometheus.MustNewConstMetric(descAddrMem, prometheus.GaugeValue, float64(a.MemoryBytes), a.Address)
		ch <- prometheus.MustNewConstMetric(descAddrPaging, prometheus.GaugeValue, paging, a.Address)
		ch <- prometheus.MustNewConstMetric(descAddrPaged, prometheus.GaugeValue, float64(a.PagedMessages), a.Address)
		ch <- prometheus.MustNewConstMetric(descAddrPagedB, prometheus.GaugeValue, float64(a.PagedBytes), a.Address)
		ch <- prometheus.MustNewConstMetric(descAddrFiles, prometheus.GaugeValue, float64(a.PageFiles), a.Address)
		ch <- prometheus.MustNewConstMetric(descAddrBlock, prometheus.GaugeValue, float64(a.BlockedSends), a.Address)
	}
	halted := 0.0
	if s.Halted() != nil {
		halted = 1
	}
	ch <- prometheus.MustNewConstMetric(descHalted, prometheus.GaugeValue, halted)
	ch <- constHistogram(descSendLat, s.SendLatency())
	for _, q := range s.Queues() {
		ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(q.Depth), q.Address, q.Name, q.Routing)
		ch <- prometheus.MustNewConstMetric(descConsumers, prometheus.GaugeValue, float64(q.Consumers), q.Address, q.Name, q.Routing)
	}
	for name, j := range s.journalsByName() {
		js, ok := j.(journalStats)
		if !ok {
			continue
		}
		x := js.Stats()
		ch <- prometheus.MustNewConstMetric(descJAppends, prometheus.CounterValue, float64(x.Appends), name)
		ch <- prometheus.MustNewConstMetric(descJBatches, prometheus.CounterValue, float64(x.Batches), name)
		ch <- prometheus.MustNewConstMetric(descJSyncs, prometheus.CounterValue, float64(x.Syncs), name)
		ch <- prometheus.MustNewConstMetric(descJBytes, prometheus.CounterValue, float64(x.Bytes), name)
		ch <- constHistogram(descJSyncLat, x.SyncLatency, name)
		ch <- prometheus.MustNewConstMetric(descJPrepWaits, prometheus.CounterValue, float64(x.PrepareWaits), name)
		ch <- prometheus.MustNewConstMetric(descJPrepWait, prometheus.CounterValue, x.PrepareWaitTime.Seconds(), name)
		if jm, ok := j.(journalMetrics); ok {
			m := jm.Metrics()
			ch <- prometheus.MustNewConstMetric(descJSegments, prometheus.GaugeValue, float64(m.SegmentsInUse), name)
			ch <- prometheus.MustNewConstMetric(descJLive, prometheus.GaugeValue, float64(m.LiveRecords), name)
			ch <- prometheus.MustNewConstMetric(descJReclaimed, prometheus.CounterValue, float64(m.Reclaimed), name)
		}
	}
}

// JournalInfo describes a file journal for /status and the console.
type JournalInfo struct {
	Segments    int   `json:"segments"` // from the oldest kept to the current one
	PoolFiles   int   `json:"pool_files"`
	LiveRecords int   `json:"live_records"`
	Appends     int64 `json:"appends"`
	Batches     int64 `json:"batches"` // group commits written
	Syncs       int64 `json:"syncs"`   // batches written with fdatasync
	Bytes       int64 `json:"bytes"`   // written, padding included
	// AppendsPerSync is Appends / Syncs since start (group commit's
	// effect); 0 before the first sync.
	AppendsPerSync float64 `json:"appends_per_sync"`
	// WriteSyncNanos is the total time batches took to write and sync:
	// its growth over Batches' is the mean I/O latency of an interval.
	WriteSyncNanos int64 `json:"write_sync_ns"`
	Rotations      int64 `json:"rotations"`
	Compactions    int   `json:"compactions"`
	Reclaimed      int   `json:"reclaimed_segments"`
}

// journalInfo describes the journals that keep metrics (nil when none).
func (s *Server) journalInfo() map[string]JournalInfo {
	var out map[string]JournalInfo
	for name, j := range s.journalsByName() {
		jm, ok := j.(journalMetrics)
		if !ok {
			continue
		}
		m := jm.Metrics()
		ji := JournalInfo{Segments: m.SegmentsInUse, PoolFiles: m.PoolFiles, LiveRecords: m.LiveRecords,
			Appends: m.Appends, Batches: m.Batches, Syncs: m.Syncs, Bytes: m.Bytes,
			WriteSyncNanos: int64(m.WriteSyncTime), Rotations: m.Rotations, Compactions: m.Compactions, Reclaimed: m.Reclaimed}
		if m.Syncs > 0 {
			ji.AppendsPerSync = float64(m.Appends) / float64(m.Syncs)
		}
		if out == nil {
			out = map[string]JournalInfo{}
		}
		out[name] = ji
	}
	return out
}

// journalsByName are the server's journals by /status and /metrics name.
func (s *Server) journalsByName() map[string]journal.Journal {
	m := map[string]journal.Journal{"messages": s.msgs, "bindings": s.binds}
	if s.pages != nil {
		m["paging"] = s.pages
	}
	if s.large != nil {
		m["large-messages"] = s.large
	}
	return m
}
