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
}

// MetricsHandler serves /metrics in the Prometheus text format: the
// broker's counters (messages in, duplicates, deliveries, acks), queue
// depths and consumers, connections, the journals' counters (appends,
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
		descSendLat, descJSyncLat, descJPrepWaits, descJPrepWait} {
		ch <- d
	}
}

// Collect reads the broker's state now.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	if c.o.Connections != nil {
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(c.o.Connections()))
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
	for name, j := range map[string]journal.Journal{"messages": s.msgs, "bindings": s.binds} {
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
