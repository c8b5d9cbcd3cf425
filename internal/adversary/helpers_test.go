package adversary

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/internal/testenv"
	"github.com/tandemmq/tandem/wire"
)

// attackFor is how long each attack runs at full strength.
var attackFor = flag.Duration("adversary.duration", 3*time.Second,
	"how long each attack runs at full strength (CI: 3s; e.g. 5m for a long run)")

// minRoundTrips is how many round trips the well-behaved client must
// complete while an attack is at full strength.
const minRoundTrips = 5

// liveness bounds every wait on progress: generous, it only catches a
// broker that stopped serving (never a timing assertion).
func liveness() time.Duration { return max(3*time.Minute, 2*(*attackFor)) }

const (
	kiB = 1 << 10
	miB = 1 << 20
)

// broker is a `tandem run` process with built-in defaults (no broker.xml)
// on free ports and a data directory of its own.
type broker struct {
	t    *testing.T
	p    *testenv.Process
	addr string // the acceptor, host:port
	http string // the management HTTP listener, host:port
}

// startBroker starts a default broker (extra arguments are added to
// `tandem run`) and waits for its banner and acceptor.
func startBroker(t *testing.T, extra ...string) *broker {
	t.Helper()
	return startBrokerFiles(t, 0, extra...)
}

// startBrokerFiles is startBroker with the broker's open-file limit (soft
// and hard) set to files (0: inherited), as a service manager's would be.
// (Go raises the soft limit to the hard one at start by itself.)
func startBrokerFiles(t *testing.T, files int, extra ...string) *broker {
	t.Helper()
	bin := testenv.BuildTandem(t)
	data := filepath.Join(testenv.TempDir(t, "data"), "data")
	b := &broker{t: t,
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t))),
		http: net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))}
	args := append([]string{"run", "--data", data, "--listen", "tcp://" + b.addr, "--http", b.http}, extra...)
	cmd := exec.Command(bin, args...)
	if files > 0 {
		sh := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, files)
		cmd = exec.Command("/bin/sh", append([]string{"-c", sh, bin}, args...)...)
	}
	b.p = testenv.StartCmd(t, "broker", cmd)
	b.p.WaitLog(t, "config:", time.Minute) // the banner's last line
	testenv.WaitListening(t, b.p, b.addr, time.Minute)
	return b
}

// url is the broker's client URL.
func (b *broker) url() string { return "tcp://" + b.addr }

// memory returns the broker's resident set size now and its peak (VmRSS
// and VmHWM of /proc/PID/status), in bytes.
func (b *broker) memory() (rss, peak int64, err error) {
	f, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.p.Pid()))
	if err != nil {
		return 0, 0, err
	}
	field := func(name string) int64 {
		for _, l := range strings.Split(string(f), "\n") {
			if v, ok := strings.CutPrefix(l, name+":"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				return kb * kiB
			}
		}
		return 0
	}
	return field("VmRSS"), field("VmHWM"), nil
}

// logSize is the size of the broker's log (stdout and stderr).
func (b *broker) logSize() int64 {
	fi, err := os.Stat(b.p.LogPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// status fetches /status.
func (b *broker) status(ctx context.Context) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+b.http+"/status", nil)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /status: %s", resp.Status)
	}
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("GET /status: %w", err)
	}
	return st, nil
}

// bounds are what an attack must not push the broker past.
type bounds struct {
	// RSS is the largest peak resident set size allowed (VmHWM), bytes.
	RSS int64
	// Heap, when > 0, bounds the Go heap in use (go_memstats_heap_inuse_bytes
	// of /metrics), bytes: memory reserved but not yet touched does not
	// show in the RSS.
	Heap int64
	// Log is the largest log allowed, bytes, at the end of the attack;
	// LogPerSec is added per second the attack ran (rate-limited lines).
	Log       int64
	LogPerSec int64
}

func (bd bounds) logLimit(elapsed time.Duration) int64 {
	return bd.Log + int64(elapsed.Seconds()+1)*bd.LogPerSec
}

// watch samples the broker while an attack runs. Past a bound it records
// the violation and kills the broker at once: an unbounded broker must not
// take the machine down with it.
type watch struct {
	b       *broker
	bd      bounds
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	problem string
	maxRSS  int64
	maxHeap int64
}

func (b *broker) watch(bd bounds) *watch {
	w := &watch{b: b, bd: bd, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	b.t.Cleanup(w.end)
	return w
}

func (w *watch) run() {
	defer close(w.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return
		case <-w.b.p.Done():
			code, _ := w.b.p.ExitCode()
			w.fail(fmt.Sprintf("the broker exited (code %d) during the attack", code))
			return
		case <-tick.C:
		}
		rss, peak, err := w.b.memory()
		if err != nil {
			continue // exiting; Done reports it
		}
		w.mu.Lock()
		w.maxRSS = max(w.maxRSS, rss)
		w.mu.Unlock()
		if peak > w.bd.RSS {
			w.fail(fmt.Sprintf("broker peak RSS %d MiB exceeds the bound of %d MiB", peak/miB, w.bd.RSS/miB))
			w.b.p.Kill()
			return
		}
		if n, lim := w.b.logSize(), w.bd.logLimit(time.Since(w.start)); n > lim {
			w.fail(fmt.Sprintf("broker log %d bytes exceeds the bound of %d bytes", n, lim))
			w.b.p.Kill()
			return
		}
		if w.bd.Heap > 0 && i%5 == 0 {
			if heap, err := w.b.heapInUse(); err == nil {
				w.mu.Lock()
				w.maxHeap = max(w.maxHeap, heap)
				w.mu.Unlock()
				if heap > w.bd.Heap {
					w.fail(fmt.Sprintf("broker Go heap in use %d MiB exceeds the bound of %d MiB", heap/miB, w.bd.Heap/miB))
					w.b.p.Kill()
					return
				}
			}
		}
	}
}

// metric reads one metric without labels from /metrics.
func (b *broker) metric(t *testing.T, name string) float64 {
	t.Helper()
	v, err := b.scrape(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// heapInUse reads go_memstats_heap_inuse_bytes from /metrics.
func (b *broker) heapInUse() (int64, error) {
	v, err := b.scrape("go_memstats_heap_inuse_bytes")
	return int64(v), err
}

// scrape reads one metric without labels from /metrics.
func (b *broker) scrape(name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+b.http+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

func (w *watch) fail(msg string) {
	w.mu.Lock()
	if w.problem == "" {
		w.problem = msg
	}
	w.mu.Unlock()
}

func (w *watch) failed() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.problem
}

func (w *watch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// goodClient is a well-behaved client doing round trips (a send, its
// receipt and its ack) on a queue of its own, counting them. Its messages
// are non-durable: a journal's compaction under a steady durable load
// takes ~100 MiB of heap by itself, which would hide what an attack costs.
type goodClient struct {
	n      atomic.Int64
	mu     sync.Mutex
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *broker) goodClient(t *testing.T) *goodClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, time.Minute)
	defer dcancel()
	conn, err := client.Dial(dctx, b.url(), client.WithClientID("good"), client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		cancel()
		t.Fatalf("well-behaved client: dial: %v", err)
	}
	sess, err := conn.CreateSession(dctx)
	if err != nil {
		cancel()
		t.Fatalf("well-behaved client: session: %v", err)
	}
	p := sess.CreateProducer(client.Queue("good"), client.NonDurable())
	k, err := sess.CreateConsumer(dctx, client.Queue("good"))
	if err != nil {
		cancel()
		t.Fatalf("well-behaved client: consumer: %v", err)
	}
	g := &goodClient{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		defer conn.Close()
		for ctx.Err() == nil {
			if err := g.roundTrip(ctx, p, k); err != nil {
				if ctx.Err() == nil {
					g.mu.Lock()
					g.err = err
					g.mu.Unlock()
				}
				return
			}
			g.n.Add(1)
		}
	}()
	t.Cleanup(g.stop)
	return g
}

func (g *goodClient) roundTrip(ctx context.Context, p *client.Producer, k *client.Consumer) error {
	ctx, cancel := context.WithTimeout(ctx, liveness())
	defer cancel()
	if err := p.Send(ctx, &client.Message{Body: []byte("ping")}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	m, err := k.Receive(ctx)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if err := k.Ack(ctx, m); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

func (g *goodClient) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *goodClient) stop() {
	g.cancel()
	<-g.done
}

// underAttack runs once the attack is at full strength: it waits until the
// attack ran for -adversary.duration and the well-behaved client completed
// minRoundTrips round trips meanwhile, then checks the bounds. It fails at
// once when the watch saw a bound crossed or the client failed, and after
// the liveness deadline when the client makes no progress.
func underAttack(t *testing.T, b *broker, w *watch, g *goodClient) {
	t.Helper()
	start, n0 := time.Now(), g.n.Load()
	deadline := start.Add(liveness())
	for {
		if p := w.failed(); p != "" {
			t.Fatal(p)
		}
		if err := g.failed(); err != nil {
			t.Fatalf("well-behaved client failed under the attack: %v", err)
		}
		done := g.n.Load() - n0
		if done >= minRoundTrips && time.Since(start) >= *attackFor {
			t.Logf("well-behaved client: %d round trips during %v of attack", done, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("well-behaved client completed %d round trips (want %d) in %v of attack", done, minRoundTrips, liveness())
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkBounds(t, b, w)
}

// checkBounds checks the broker is alive, under its RSS and log bounds,
// and still answers /status.
func checkBounds(t *testing.T, b *broker, w *watch) {
	t.Helper()
	if p := w.failed(); p != "" {
		t.Fatal(p)
	}
	if b.p.Exited() {
		code, _ := b.p.ExitCode()
		t.Fatalf("the broker exited (code %d)", code)
	}
	_, peak, err := b.memory()
	if err != nil {
		t.Fatalf("broker memory: %v", err)
	}
	w.mu.Lock()
	maxRSS, maxHeap := w.maxRSS, w.maxHeap
	w.mu.Unlock()
	t.Logf("broker RSS: peak %d MiB (bound %d MiB), largest sampled during the attack %d MiB; Go heap in use: largest sampled %d MiB; log %d bytes",
		peak/miB, w.bd.RSS/miB, maxRSS/miB, maxHeap/miB, b.logSize())
	if peak > w.bd.RSS {
		t.Fatalf("broker peak RSS %d MiB exceeds the bound of %d MiB", peak/miB, w.bd.RSS/miB)
	}
	if n, lim := b.logSize(), w.bd.logLimit(time.Since(w.start)); n > lim {
		t.Fatalf("broker log %d bytes exceeds the bound of %d bytes", n, lim)
	}
	ctx, cancel := context.WithTimeout(context.Background(), liveness())
	defer cancel()
	if _, err := b.status(ctx); err != nil {
		t.Fatalf("management HTTP after the attack: %v", err)
	}
}

// attack runs fn in n goroutines until the test's attack ends (stop) and
// waits for them.
type attack struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newAttack(t *testing.T) *attack {
	ctx, cancel := context.WithCancel(context.Background())
	a := &attack{ctx: ctx, cancel: cancel}
	t.Cleanup(a.stop)
	return a
}

func (a *attack) goN(n int, fn func(ctx context.Context, i int)) {
	for i := 0; i < n; i++ {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			fn(a.ctx, i)
		}()
	}
}

func (a *attack) stop() {
	a.cancel()
	a.wg.Wait()
}

// frame encodes one frame.
func frame(t testing.TB, corr uint64, f wire.Frame) []byte {
	b, err := wire.AppendFrame(nil, corr, f)
	if err != nil {
		t.Fatalf("encode %v: %v", f.Type(), err)
	}
	return b
}

// hello is a Hello frame with client ID id.
func hello(t testing.TB, id string) []byte {
	return frame(t, 1, &wire.Hello{MinVersion: wire.MinVersion, MaxVersion: wire.Version, ClientID: id})
}

// writeAll writes b, waiting while the broker does not read but giving up
// when ctx ends. It returns false when the connection failed or ctx ended.
func writeAll(ctx context.Context, nc net.Conn, b []byte) bool {
	for len(b) > 0 {
		if ctx.Err() != nil {
			return false
		}
		nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := nc.Write(b)
		b = b[n:]
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return false
		}
	}
	return true
}

// raiseFileLimit raises this process's open-file limit to the hard limit
// and returns it.
func raiseFileLimit(t *testing.T) int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			t.Logf("setrlimit: %v", err)
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
		}
	}
	return int(r.Cur)
}
