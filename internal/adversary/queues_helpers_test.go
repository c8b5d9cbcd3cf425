package adversary

// Helpers of queues_test.go, named q... so that they never clash with the
// suite's shared helpers.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/internal/testenv"
	"github.com/tandemmq/tandem/wire"
)

// qBroker is a `tandem run` process on fixed addresses and a data
// directory that survive restarts.
type qBroker struct {
	t      *testing.T
	bin    string
	config string
	data   string
	addr   string // the acceptor, host:port
	http   string // the management address, host:port
	p      *testenv.Process

	peakRSS atomic.Int64 // bytes, over every sample
}

// qStartBroker starts a broker whose <core> holds coreXML.
func qStartBroker(t *testing.T, coreXML string) *qBroker {
	t.Helper()
	dir := testenv.TempDir(t, "broker")
	b := &qBroker{t: t, bin: testenv.BuildTandem(t), config: filepath.Join(dir, "broker.xml"),
		data: filepath.Join(dir, "data"), addr: testenv.FreeAddr(t), http: testenv.FreeAddr(t)}
	doc := "<configuration xmlns=\"urn:activemq\">\n<core xmlns=\"urn:activemq:core\">\n" + coreXML + "\n</core>\n</configuration>\n"
	if err := os.WriteFile(b.config, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start()
	return b
}

func (b *qBroker) start() {
	b.t.Helper()
	cmd := exec.Command(b.bin, "run", "--config", b.config, "--data", b.data,
		"--listen", "tcp://"+b.addr, "--http", b.http)
	b.p = testenv.StartCmd(b.t, "tandem", cmd)
	testenv.WaitListening(b.t, b.p, b.addr, time.Minute)
	testenv.WaitListening(b.t, b.p, b.http, time.Minute)
}

// kill stops the broker with SIGKILL (nothing is closed) and waits for it.
func (b *qBroker) kill() {
	b.t.Helper()
	if err := b.p.Kill(); err != nil {
		b.t.Fatal(err)
	}
	select {
	case <-b.p.Done():
	case <-time.After(time.Minute):
		b.t.Fatal("broker still running a minute after SIGKILL")
	}
}

func (b *qBroker) url() string { return "tcp://" + b.addr }

// rss samples the broker's resident set (VmRSS) in bytes and keeps the peak.
func (b *qBroker) rss() int64 {
	b.t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.p.Pid()))
	if err != nil {
		b.t.Fatalf("broker RSS: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.t.Fatalf("broker RSS: %q: %v", line, err)
			}
			v := kb << 10
			for {
				p := b.peakRSS.Load()
				if v <= p || b.peakRSS.CompareAndSwap(p, v) {
					break
				}
			}
			return v
		}
	}
	b.t.Fatal("broker RSS: no VmRSS line")
	return 0
}

func (b *qBroker) get(path string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.http+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

// queuesTotal is /status's queues_total.
func (b *qBroker) queuesTotal() int {
	b.t.Helper()
	body, code, err := b.get("/status?limit=0")
	if err != nil || code != http.StatusOK {
		b.t.Fatalf("GET /status: %v (HTTP %d) %s", err, code, body)
	}
	var st struct {
		QueuesTotal *int `json:"queues_total"`
	}
	if err := json.Unmarshal(body, &st); err != nil || st.QueuesTotal == nil {
		b.t.Fatalf("GET /status: no queues_total (%v): %.200s", err, body)
	}
	return *st.QueuesTotal
}

// goroutines is the broker's goroutine count: from the goroutine profile,
// or go_goroutines in /metrics when the profiler is not served.
func (b *qBroker) goroutines() int {
	b.t.Helper()
	if body, code, err := b.get("/debug/pprof/goroutine?debug=1"); err == nil && code == http.StatusOK {
		line, _, _ := bytes.Cut(body, []byte("\n"))
		if n, ok := strings.CutPrefix(string(line), "goroutine profile: total "); ok {
			if v, err := strconv.Atoi(strings.TrimSpace(n)); err == nil {
				return v
			}
		}
	}
	body, code, err := b.get("/metrics")
	if err != nil || code != http.StatusOK {
		b.t.Fatalf("GET /metrics: %v (HTTP %d)", err, code)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			if v, err := strconv.ParseFloat(n, 64); err == nil {
				return int(v)
			}
		}
	}
	b.t.Fatal("no goroutine count from /debug/pprof/goroutine nor /metrics")
	return 0
}

// qWaitQueues waits until /status counts at most want queues, failing the
// test after a minute (a liveness bound, not a measurement).
func qWaitQueues(t *testing.T, b *qBroker, want int, why string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		n := b.queuesTotal()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d queues after a minute, want at most %d", why, n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// qAttacker is a raw protocol client that creates consumers as fast as
// the connection carries them, each on an auto-created queue of its own.
type qAttacker struct {
	nc   net.Conn
	dec  *wire.Decoder
	buf  []byte
	corr uint64
	next uint64 // consumer ID
}

func qDialAttacker(addr string) (*qAttacker, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	a := &qAttacker{nc: nc, dec: wire.NewDecoder(bufio.NewReaderSize(nc, 64<<10))}
	a.write(&wire.Hello{MinVersion: 1, MaxVersion: 1, ClientID: "queue-flooder"})
	a.write(&wire.CreateSession{Session: 1})
	if err := a.flush(); err != nil {
		nc.Close()
		return nil, err
	}
	for _, want := range []wire.Type{wire.TypeWelcome, wire.TypeResult} {
		h, _, err := a.read()
		if err != nil {
			nc.Close()
			return nil, err
		}
		if h.Type != want {
			nc.Close()
			return nil, fmt.Errorf("attacker handshake: got %v, want %v", h.Type, want)
		}
	}
	return a, nil
}

func (a *qAttacker) write(f wire.Frame) {
	a.corr++
	b, err := wire.AppendFrame(a.buf, a.corr, f)
	if err != nil {
		panic(err) // the frames here are always valid
	}
	a.buf = b
}

func (a *qAttacker) flush() error {
	a.nc.SetWriteDeadline(time.Now().Add(time.Minute))
	_, err := a.nc.Write(a.buf)
	a.buf = a.buf[:0]
	return err
}

func (a *qAttacker) read() (wire.Header, wire.Frame, error) {
	a.nc.SetReadDeadline(time.Now().Add(time.Minute))
	return a.dec.Read()
}

// create asks for n consumers on new queues named prefix-ID (durable or
// not), pipelined in batches, and counts the answers by code.
func (a *qAttacker) create(prefix string, n int, durable bool) (map[wire.Code]int, error) {
	codes := map[wire.Code]int{}
	const batch = 200
	for done := 0; done < n; {
		k := min(batch, n-done)
		for range k {
			a.next++
			a.write(&wire.CreateConsumer{Session: 1, Consumer: a.next, Queue: fmt.Sprintf("%s-%d", prefix, a.next),
				Routing: wire.RoutingAnycast, AutoCreate: true, Durable: durable})
		}
		if err := a.flush(); err != nil {
			return codes, err
		}
		for got := 0; got < k; {
			h, f, err := a.read()
			if err != nil {
				return codes, err
			}
			if cc, ok := f.(*wire.ConsumerCreated); ok && h.Type == wire.TypeConsumerCreated {
				codes[cc.Code]++
				got++
			}
		}
		done += k
	}
	return codes, nil
}

func (a *qAttacker) close() { a.nc.Close() }

// qProbe is a well-behaved client: send a durable message, receive it,
// ack it, again and again, on its own queue, until stopped.
type qProbe struct {
	t       *testing.T
	done    chan struct{}
	stop    chan struct{}
	trips   atomic.Int64
	mu      sync.Mutex
	slowest time.Duration
	err     error
}

func qStartProbe(t *testing.T, url string) *qProbe {
	t.Helper()
	p := &qProbe{t: t, done: make(chan struct{}), stop: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := client.Dial(ctx, url)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		conn.Close()
		t.Fatalf("probe: %v", err)
	}
	k, err := sess.CreateConsumer(ctx, client.Queue("probe"))
	if err != nil {
		conn.Close()
		t.Fatalf("probe: %v", err)
	}
	prod := sess.CreateProducer(client.Queue("probe"))
	go func() {
		defer close(p.done)
		defer conn.Close()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			start := time.Now()
			err := p.trip(prod, k, i)
			if err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
				return
			}
			d := time.Since(start)
			p.mu.Lock()
			p.slowest = max(p.slowest, d)
			p.mu.Unlock()
			p.trips.Add(1)
		}
	}()
	return p
}

// qTripDeadline bounds one round trip: liveness, not a measurement.
const qTripDeadline = 30 * time.Second

func (p *qProbe) trip(prod *client.Producer, k *client.Consumer, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), qTripDeadline)
	defer cancel()
	body := fmt.Sprint("probe-", i)
	if err := prod.Send(ctx, &client.Message{Body: []byte(body)}); err != nil {
		return fmt.Errorf("round trip %d: send: %w", i, err)
	}
	m, err := k.Receive(ctx)
	if err != nil {
		return fmt.Errorf("round trip %d: receive: %w", i, err)
	}
	if string(m.Body) != body {
		return fmt.Errorf("round trip %d: received %q", i, m.Body)
	}
	if err := k.Ack(ctx, m); err != nil {
		return fmt.Errorf("round trip %d: ack: %w", i, err)
	}
	return nil
}

// waitTrips waits until the probe has made n more round trips than it had
// at the call, failing when it stopped with an error or after deadline.
func (p *qProbe) waitTrips(n int64, deadline time.Duration, why string) {
	p.t.Helper()
	want := p.trips.Load() + n
	end := time.Now().Add(deadline)
	for p.trips.Load() < want {
		if err := p.failure(); err != nil {
			p.t.Fatalf("well-behaved client during %s: %v", why, err)
		}
		if time.Now().After(end) {
			p.t.Fatalf("well-behaved client during %s: %d of %d round trips in %v", why, p.trips.Load()-(want-n), n, deadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *qProbe) failure() error {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err == nil {
			return errors.New("stopped")
		}
		return p.err
	default:
		return nil
	}
}

// end stops the probe and fails the test if it had failed.
func (p *qProbe) end() {
	p.t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		p.t.Fatalf("well-behaved client: %v", p.err)
	}
	p.t.Logf("well-behaved client: %d round trips, slowest %v", p.trips.Load(), p.slowest)
}
