package server

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestMetricsHandler(t *testing.T) {
	b := newBroker(t, Options{})
	ss := b.s.NewSession(false)
	for i := 0; i < 3; i++ {
		mustSend(t, ss, queueDest("q"), msg("x", true))
	}
	h := ManagementHandler(ManagementOptions{Status: b.s.Status,
		Metrics: MetricsHandler(MetricsOptions{Server: func() *Server { return b.s }, Connections: func() int { return 7 }})})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, rec.Body)
	}
	value := func(name string) float64 {
		f, ok := fams[name]
		if !ok || len(f.Metric) == 0 {
			t.Fatalf("/metrics lacks %s", name)
		}
		m := f.Metric[0]
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
		return -1
	}
	if v := value("tandem_messages_in_total"); v != 3 {
		t.Errorf("messages in %v", v)
	}
	if v := value("tandem_queue_depth"); v != 3 {
		t.Errorf("queue depth %v", v)
	}
	if v := value("tandem_connections"); v != 7 {
		t.Errorf("connections %v", v)
	}
	for _, name := range []string{"go_goroutines", "go_gc_duration_seconds", "process_cpu_seconds_total", "tandem_halted"} {
		value(name)
	}
}
