package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/internal/testenv"
)

// BenchmarkHAFailover measures, per SIGKILL of the live broker of a
// shared-store pair (file lock, default timing, a queue holding preload
// messages): kill_to_serving_ms, from the kill until the backup answers a
// client's Hello with Welcome; and client_pause_ms, the longest gap
// between two acknowledgements of a producer that sends one durable
// message at a time with the HA URL (with the URL's default retry interval
// and with retryInterval=200). The killed broker restarts as the backup
// (allow-failback=false, so the roles alternate).
//
//	go test -run '^$' -bench HAFailover -benchtime 5x ./internal/e2e/
func BenchmarkHAFailover(b *testing.B) {
	for _, tc := range []struct {
		name, query string
		preload     int
	}{
		{"default-url/empty", "", 0},
		{"retry200/empty", "&retryInterval=200&maxRetryInterval=1000", 0},
		{"retry200/20k-queued", "&retryInterval=200&maxRetryInterval=1000", 20000},
	} {
		b.Run(tc.name, func(b *testing.B) { benchFailover(b, tc.query, tc.preload) })
	}
}

// benchBroker is one broker of a benchmark pair (testenv processes, which
// take a testing.TB).
type benchBroker struct {
	name, cfg      string
	port, httpPort int
	p              *testenv.Process
}

func (m *benchBroker) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }

func (m *benchBroker) start(b *testing.B) {
	b.Helper()
	m.p = testenv.Start(b, m.name, testenv.BuildTandem(b), "run", "--config", m.cfg, "--http", fmt.Sprintf("127.0.0.1:%d", m.httpPort))
	testenv.WaitListening(b, m.p, fmt.Sprintf("127.0.0.1:%d", m.port), 30*time.Second)
}

func (m *benchBroker) waitState(b *testing.B, want string) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := fetchStatus(ctx, m.httpPort)
		cancel()
		if err == nil && st["state"] == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("%s not %s after 30s", m.name, want)
}

func benchFailover(b *testing.B, query string, preload int) {
	o := haOpts{journalType: "ASYNCIO", noFailback: true}
	shared := filepath.Join(b.TempDir(), "shared")
	pri := &benchBroker{name: "primary", port: testenv.FreePort(b), httpPort: testenv.FreePort(b)}
	bak := &benchBroker{name: "backup", port: testenv.FreePort(b), httpPort: testenv.FreePort(b)}
	store := fmt.Sprintf(`<journal-directory>%[1]s/journal</journal-directory>
  <bindings-directory>%[1]s/bindings</bindings-directory>`, shared)
	for _, x := range []struct {
		m, peer *benchBroker
		policy  string
	}{{pri, bak, "<primary/>"}, {bak, pri, "<backup><allow-failback>false</allow-failback></backup>"}} {
		x.m.cfg = filepath.Join(b.TempDir(), x.m.name+".xml")
		xml := `<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">` +
			haCoreXML(x.m.name, o, store, x.m.port, x.peer.port, x.policy) + `</core></configuration>`
		if err := os.WriteFile(x.m.cfg, []byte(xml), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	pri.start(b)
	pri.waitState(b, "active")
	bak.start(b)
	bak.waitState(b, "waiting")
	haURL := fmt.Sprintf("(%s,%s)?ha=true&reconnectAttempts=-1%s", pri.url(), bak.url(), query)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if preload > 0 {
		if err := produce(ctx, pri.url(), "kept", "pre", preload, 256, NewLedger()); err != nil {
			b.Fatal(err)
		}
	}
	live, other := pri, bak
	var killToServing, pauses []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, err := client.Dial(ctx, haURL)
		if err != nil {
			b.Fatal(err)
		}
		sess, err := conn.CreateSession(ctx)
		if err != nil {
			b.Fatal(err)
		}
		prod := sess.CreateProducer(client.Queue("bench"))
		var mu sync.Mutex
		acks := []time.Time{time.Now()}
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				id := fmt.Sprintf("b%d-%d", i, n)
				if err := prod.Send(ctx, &client.Message{DuplicateID: id, Body: []byte(id)}); err != nil {
					done <- err
					return
				}
				mu.Lock()
				acks = append(acks, time.Now())
				mu.Unlock()
			}
		}()
		time.Sleep(500 * time.Millisecond)
		killed := time.Now()
		if err := live.p.Kill(); err != nil {
			b.Fatal(err)
		}
		for {
			c, err := client.Dial(ctx, other.url())
			if err == nil {
				c.Close()
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		killToServing = append(killToServing, time.Since(killed))
		for { // the producer is acknowledged again
			mu.Lock()
			last := acks[len(acks)-1]
			mu.Unlock()
			if last.After(killed) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		close(stop)
		if err := <-done; err != nil {
			b.Fatalf("producer: %v", err)
		}
		conn.Close()
		var pause time.Duration
		for j := 1; j < len(acks); j++ {
			pause = max(pause, acks[j].Sub(acks[j-1]))
		}
		pauses = append(pauses, pause)
		live.start(b)
		live.waitState(b, "waiting")
		live, other = other, live
	}
	b.StopTimer()
	ms := func(ds []time.Duration) (float64, float64) {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000, float64(ds[len(ds)-1].Microseconds()) / 1000
	}
	med, mx := ms(killToServing)
	b.ReportMetric(med, "kill_to_serving_ms")
	b.ReportMetric(mx, "kill_to_serving_max_ms")
	med, mx = ms(pauses)
	b.ReportMetric(med, "client_pause_ms")
	b.ReportMetric(mx, "client_pause_max_ms")
	b.ReportMetric(0, "ns/op")
}
