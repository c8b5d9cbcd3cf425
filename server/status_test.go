package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// statusOf GETs /status?query and decodes it.
func statusOf(t *testing.T, h http.Handler, query string) (Status, int) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status"+query, nil))
	var st Status
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
	}
	return st, rec.Code
}

// TestStatusQueuesPaged: /status lists the first DefaultStatusQueues
// queues (by address, then name) with queues_total; ?limit, ?offset,
// ?prefix and ?queues=all choose others. Before, it listed every queue:
// 40 ms with 16 000 queues, and 50 concurrent requests slowed a client's
// round trip to 28 s.
func TestStatusQueuesPaged(t *testing.T) {
	b := newBroker(t, Options{})
	const n = 250
	for i := range n {
		name := fmt.Sprintf("a.%03d", i)
		if i%2 == 1 {
			name = fmt.Sprintf("b.%03d", i)
		}
		if _, err := b.s.CreateQueue(context.Background(), QueueConfig{Name: name, Routing: Anycast}); err != nil {
			t.Fatal(err)
		}
	}
	h := ManagementHandler(ManagementOptions{Status: b.s.Status})
	names := func(qs []QueueInfo) []string {
		var out []string
		for _, q := range qs {
			out = append(out, q.Name)
		}
		return out
	}
	st, code := statusOf(t, h, "")
	if code != http.StatusOK || len(st.Queues) != DefaultStatusQueues || st.QueuesTotal != n ||
		st.Queues[0].Name != "a.000" || st.Queues[99].Name != "a.198" {
		t.Fatalf("default page: %d, %d queues of %d: %v", code, len(st.Queues), st.QueuesTotal, names(st.Queues))
	}
	st, _ = statusOf(t, h, "?limit=3&offset=124")
	if got := names(st.Queues); !slices.Equal(got, []string{"a.248", "b.001", "b.003"}) || st.QueuesTotal != n {
		t.Fatalf("limit 3 offset 124: %v of %d", got, st.QueuesTotal)
	}
	st, _ = statusOf(t, h, "?prefix=b.&limit=2")
	if got := names(st.Queues); !slices.Equal(got, []string{"b.001", "b.003"}) || st.QueuesTotal != n/2 {
		t.Fatalf("prefix b.: %v of %d", got, st.QueuesTotal)
	}
	st, _ = statusOf(t, h, "?queues=all")
	if len(st.Queues) != n || st.QueuesTotal != n || !slices.IsSortedFunc(st.Queues, func(x, y QueueInfo) int { return strings.Compare(x.Name, y.Name) }) {
		t.Fatalf("all: %d of %d, sorted %v", len(st.Queues), st.QueuesTotal, names(st.Queues)[:5])
	}
	st, _ = statusOf(t, h, "?offset=1000")
	if st.Queues == nil || len(st.Queues) != 0 || st.QueuesTotal != n {
		t.Fatalf("past the end: %v of %d (want an empty list, not null)", st.Queues, st.QueuesTotal)
	}
	st, _ = statusOf(t, h, "?limit=0")
	if len(st.Queues) != 0 || st.QueuesTotal != n {
		t.Fatalf("limit 0: %d queues of %d, want none of %d", len(st.Queues), st.QueuesTotal, n)
	}
	for _, bad := range []string{"?limit=x", "?limit=-1", "?offset=-2", "?queues=some"} {
		if _, code := statusOf(t, h, bad); code != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", bad, code)
		}
	}
}

// BenchmarkStatus16kQueues: GET /status (the default page, and every
// queue as /status listed before) on a broker with 16 000 queues.
func BenchmarkStatus16kQueues(b *testing.B) {
	br := newBroker(b, Options{MaxQueues: -1})
	for i := range 16000 {
		if _, err := br.s.CreateQueue(context.Background(), QueueConfig{Name: fmt.Sprintf("q.%05d", i), Routing: Anycast, Durable: true}); err != nil {
			b.Fatal(err)
		}
	}
	h := ManagementHandler(ManagementOptions{Status: br.s.Status})
	for _, q := range []string{"", "?queues=all"} {
		b.Run("query="+q, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/status"+q, nil))
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}

// TestStatusConcurrencyBounded: concurrent GET /status requests build
// their answers at most statusConcurrency at a time; the others wait
// without using CPU. Before, 50 clients polling /status on a broker with
// 16 000 queues kept every processor busy and a client's round trip took
// 28 s.
func TestStatusConcurrencyBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var inside, most atomic.Int32
		release := make(chan struct{})
		h := ManagementHandler(ManagementOptions{Status: func() Status {
			n := inside.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			inside.Add(-1)
			return Status{Queues: []QueueInfo{}}
		}})
		const clients = 20
		codes := make(chan int, clients)
		for range clients {
			go func() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
				codes <- rec.Code
			}()
		}
		synctest.Wait() // every request is in Status or waits its turn
		n := inside.Load()
		close(release)
		for range clients {
			if code := <-codes; code != http.StatusOK {
				t.Errorf("HTTP %d", code)
			}
		}
		if n < 1 || int(most.Load()) > statusConcurrency() {
			t.Fatalf("%d of %d requests built their answer at once (%d at the most), want 1 to %d",
				n, clients, most.Load(), statusConcurrency())
		}
	})
}
