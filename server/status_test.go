package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestStatusHTTP(t *testing.T) {
	b := newBroker(t, Options{Name: "b1", Store: "memory"})
	ss := b.s.NewSession(false)
	mustSend(t, ss, queueDest("q"), msg("x", true))
	h := ManagementHandler(ManagementOptions{Status: b.s.Status, Pprof: true})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"node_id", "name", "version", "policy", "role", "state", "epoch", "store", "peers", "cpu_seconds", "queues"} {
		if _, ok := m[k]; !ok {
			t.Errorf("/status lacks %q", k)
		}
	}
	qs := m["queues"].([]any)
	q := qs[0].(map[string]any)
	if q["name"] != "q" || q["depth"].(float64) != 1 || q["routing"] != "anycast" || q["durable"] != true || m["state"] != "active" {
		t.Fatalf("status %s", rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("pprof: %d", rec.Code)
	}
}
