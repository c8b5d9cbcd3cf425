package server

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tandemmq/tandem/aio"
	"github.com/tandemmq/tandem/config"
)

// /metrics exports the send latency and the journals' write + fdatasync
// latency as histograms (issue 20, item 2), so that a stall shows up in
// monitoring: every send and every synced write is counted, in buckets
// that grow with their bounds and end in +Inf.
func TestMetricsLatencyHistograms(t *testing.T) {
	cfg := config.Default()
	cfg.ApplyDataDir(filepath.Join(t.TempDir(), "data"))
	cfg.Journal.Type, cfg.Journal.Backend = "NIO", aio.NIO
	cfg.Journal.FileSize = 1 << 20
	log := slog.New(slog.DiscardHandler)
	st, err := OpenStore(context.Background(), cfg, StoreOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Messages: st.Messages, Bindings: st.Bindings, Store: st.Kind, Logger: log})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		st.Close()
	})
	ss := s.NewSession(false)
	const sends = 5
	for range sends {
		mustSend(t, ss, queueDest("q"), msg("x", true))
	}
	rec := httptest.NewRecorder()
	MetricsHandler(MetricsOptions{Server: func() *Server { return s }}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	hist := func(name, journal string) *dto.Histogram {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Fatalf("/metrics lacks %s", name)
		}
		for _, m := range f.Metric {
			if journal == "" && len(m.Label) == 0 {
				return m.Histogram
			}
			for _, l := range m.Label {
				if l.GetName() == "journal" && l.GetValue() == journal {
					return m.Histogram
				}
			}
		}
		t.Fatalf("%s has no series for journal %q", name, journal)
		return nil
	}
	check := func(name string, h *dto.Histogram) {
		t.Helper()
		if h == nil || len(h.Bucket) < 10 {
			t.Fatalf("%s: not a histogram with buckets: %v", name, h)
		}
		var prevBound float64
		var prevCount uint64
		for _, b := range h.Bucket {
			if b.GetUpperBound() <= prevBound || b.GetCumulativeCount() < prevCount || b.GetCumulativeCount() > h.GetSampleCount() {
				t.Fatalf("%s: bucket %v after bound %v count %d (total %d)", name, b, prevBound, prevCount, h.GetSampleCount())
			}
			prevBound, prevCount = b.GetUpperBound(), b.GetCumulativeCount()
		}
		if h.GetSampleSum() <= 0 {
			t.Fatalf("%s: sum %v", name, h.GetSampleSum())
		}
	}
	send := hist("tandem_send_duration_seconds", "")
	check("tandem_send_duration_seconds", send)
	if send.GetSampleCount() != sends {
		t.Errorf("send latency counts %d sends, want %d", send.GetSampleCount(), sends)
	}
	sync := hist("tandem_journal_sync_duration_seconds", "messages")
	check("tandem_journal_sync_duration_seconds", sync)
	// Each synchronous send waited for its own fdatasync.
	if sync.GetSampleCount() < sends {
		t.Errorf("messages journal: %d synced writes for %d synchronous sends", sync.GetSampleCount(), sends)
	}
	if _, ok := fams["tandem_journal_prepare_waits_total"]; !ok {
		t.Error("/metrics lacks tandem_journal_prepare_waits_total")
	}
	// The runtime's scheduling latency and stop-the-world pauses.
	for _, name := range []string{"go_sched_latencies_seconds", "go_sched_pauses_total_gc_seconds"} {
		if f, ok := fams[name]; !ok || len(f.Metric) == 0 || f.Metric[0].Histogram == nil {
			t.Errorf("/metrics lacks the histogram %s", name)
		}
	}
}
