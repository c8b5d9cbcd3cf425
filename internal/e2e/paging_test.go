package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
)

// Paging (issue 18) with real processes: SIGKILL while paging and while
// depaging, a backlog far larger than the broker's memory, failover of a
// shared-store pair in the middle of paging.

// pagingCore is the <core> of a broker that pages every address past
// maxSize bytes (in 1 MiB page segments), with global-max-size global.
func pagingCore(maxSize, global string) string {
	return `<global-max-size>` + global + `</global-max-size>
  <address-settings><address-setting match="#">
    <max-size-bytes>` + maxSize + `</max-size-bytes>
    <page-size-bytes>1M</page-size-bytes>
    <address-full-policy>PAGE</address-full-policy>
    <auto-delete-queues>false</auto-delete-queues>
  </address-setting></address-settings>`
}

// sizedBody is id, '|' and padding up to size bytes.
func sizedBody(id string, size int) []byte {
	b := bytes.Repeat([]byte{'x'}, max(size, len(id)+1))
	copy(b, id+"|")
	return b
}

// idOfBody is the ID sizedBody put in front.
func idOfBody(b []byte) string {
	if i := bytes.IndexByte(b, '|'); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// produceSized is produce with bodies of size bytes.
func produceSized(ctx context.Context, url, queue, prefix string, count, window, size int, l *Ledger) error {
	conn, err := client.Dial(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		return err
	}
	p := sess.CreateProducer(client.Queue(queue), client.Window(window))
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for i := 1; i <= count && firstErr.Load() == nil; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		l.Sent(id)
		wg.Add(1)
		err := p.SendAsync(ctx, &client.Message{DuplicateID: id, Body: sizedBody(id, size)}, func(err error) {
			l.SendDone(id, err)
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
			wg.Done()
		})
		if err != nil {
			l.SendDone(id, err)
			wg.Done()
			break
		}
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

// drainSized is drain for sized bodies; it also checks that each
// producer's messages come in order (redeliveries aside: an ID seen
// before may come again).
func drainSized(ctx context.Context, url, queue string, idle time.Duration, stopAt int, l *Ledger) (int, error) {
	conn, err := client.Dial(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		return 0, err
	}
	k, err := sess.CreateConsumer(ctx, client.Queue(queue), client.Credit(200))
	if err != nil {
		return 0, err
	}
	n := 0
	last := map[string]int{} // producer prefix -> highest sequence seen
	for stopAt <= 0 || n < stopAt {
		rctx, cancel := context.WithTimeout(ctx, idle)
		m, err := k.Receive(rctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		id := idOfBody(m.Body)
		l.Received(id)
		if i := strings.LastIndexByte(id, '-'); i > 0 && m.DeliveryCount == 1 {
			seq, _ := strconv.Atoi(id[i+1:])
			if seq < last[id[:i]] {
				return n, fmt.Errorf("out of order: %s after %s-%d", id, id[:i], last[id[:i]])
			}
			last[id[:i]] = seq
		}
		if err := k.Ack(ctx, m); err != nil {
			return n, err
		}
		l.Consumed(id)
		n++
	}
	return n, nil
}

// pagedStatus returns the address's paged messages from /status (0 when
// it does not page).
func pagedStatus(st map[string]any, address string) float64 {
	p, _ := st["paging"].(map[string]any)
	as, _ := p["addresses"].([]any)
	for _, a := range as {
		m, _ := a.(map[string]any)
		if m["address"] == address {
			v, _ := m["paged_messages"].(float64)
			return v
		}
	}
	return 0
}

// TestPagingKillDuringPaging: SIGKILL while a producer outruns memory and
// the address pages; restart, resend what has an unknown outcome, drain:
// nothing acknowledged lost, nothing twice, each producer's order kept.
func TestPagingKillDuringPaging(t *testing.T) {
	for it := 0; it < iterations(); it++ {
		t.Run(fmt.Sprint("run", it), func(t *testing.T) {
			cfg := writeConfig(t, "<journal-type>NIO</journal-type>"+pagingCore("256K", "-1"))
			b := newBrokerProc(t)
			b.start("--config", cfg)
			b.requireFileStore()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			l := NewLedger()
			done := make(chan error, 1)
			go func() { done <- produceSized(ctx, b.URL(), "paged", fmt.Sprintf("p%d", it), 40000, 64, 1024, l) }()
			// Kill once the address pages (and then a little later).
			deadline := time.Now().Add(60 * time.Second)
			for pagedStatus(b.status(), "paged") == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the address did not page within 60s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
			b.kill()
			perr := <-done
			t.Logf("producer ended with %v", perr)
			b.start("--config", cfg)
			unknown := l.Unknown()
			resend(ctx, t, b.URL(), "paged", unknown, l)
			if _, err := drainSized(ctx, b.URL(), "paged", 3*time.Second, 0, l); err != nil {
				t.Fatalf("drain: %v", err)
			}
			r := l.Check()
			t.Logf("%v (resent %d with unknown outcome)", r, len(unknown))
			if !r.OK() {
				t.Fatal(r)
			}
			if code := b.stop(); code != 0 {
				t.Fatalf("SIGTERM: exit %d", code)
			}
		})
	}
}

// TestPagingKillDuringDepaging: a paged backlog is being consumed when the
// broker is killed; after the restart the rest comes, and nothing whose
// ack was confirmed comes again.
func TestPagingKillDuringDepaging(t *testing.T) {
	for it := 0; it < iterations(); it++ {
		t.Run(fmt.Sprint("run", it), func(t *testing.T) {
			cfg := writeConfig(t, "<journal-type>NIO</journal-type>"+pagingCore("128K", "-1"))
			b := newBrokerProc(t)
			b.start("--config", cfg)
			b.requireFileStore()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			l := NewLedger()
			if err := produceSized(ctx, b.URL(), "paged", "d", 15000, 128, 700, l); err != nil {
				t.Fatalf("produce: %v", err)
			}
			if pagedStatus(b.status(), "paged") == 0 {
				t.Fatal("nothing paged")
			}
			done := make(chan error, 1)
			go func() {
				_, err := drainSized(ctx, b.URL(), "paged", 10*time.Second, 0, l)
				done <- err
			}()
			time.Sleep(time.Duration(50+rand.IntN(1500)) * time.Millisecond)
			b.kill()
			<-done
			before := l.Check().Consumed
			b.start("--config", cfg)
			if _, err := drainSized(ctx, b.URL(), "paged", 3*time.Second, 0, l); err != nil {
				t.Fatalf("drain: %v", err)
			}
			r := l.Check()
			t.Logf("killed with %d consumed; %v", before, r)
			// Every message was received; one whose ack's outcome the kill
			// made unknown may have been acknowledged (not delivered again).
			if !r.OK() || r.Received != 15000 || r.Consumed < 15000-64 {
				t.Fatal(r)
			}
		})
	}
}

// rssKiB reads a process's resident memory from /proc.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// TestPagingMemoryBound: a producer writes far more than the broker may
// hold in memory (global-max-size 8 MiB) to a queue nobody reads: the
// broker's resident memory stays under rssLimit all along; then the
// whole backlog drains in order with an exact count.
func TestPagingMemoryBound(t *testing.T) {
	const (
		rssLimit = 160 << 10 // KiB
		size     = 64 << 10
	)
	count := 12000 // 750 MiB
	if testing.Short() {
		count = 5000 // 312 MiB
	}
	cfg := writeConfig(t, "<journal-type>NIO</journal-type>"+pagingCore("-1", "8M")+`<journal-file-size>2M</journal-file-size>`)
	b := newBrokerProc(t)
	b.start("--config", cfg)
	b.requireFileStore()
	pid := b.cmd.Process.Pid
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if kb, err := rssKiB(pid); err == nil && kb > peak.Load() {
				peak.Store(kb)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := NewLedger()
	if err := produceSized(ctx, b.URL(), "backlog", "m", count, 64, size, l); err != nil {
		t.Fatalf("produce: %v", err)
	}
	st := b.status()
	close(stop)
	<-sampled
	written := int64(count) * size >> 10
	t.Logf("wrote %d MiB; peak RSS %d MiB (limit %d MiB); paged %v", written>>10, peak.Load()>>10, rssLimit>>10, pagedStatus(st, "backlog"))
	if peak.Load() >= rssLimit {
		t.Fatalf("peak RSS %d KiB while writing %d KiB, limit %d KiB", peak.Load(), written, rssLimit)
	}
	if pagedStatus(st, "backlog") < float64(count)/2 {
		t.Fatalf("only %v paged", pagedStatus(st, "backlog"))
	}
	n, err := drainSized(ctx, b.URL(), "backlog", 5*time.Second, 0, l)
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	if r := l.Check(); !r.OK() || n != count || r.Consumed != count {
		t.Fatalf("drained %d of %d: %v", n, count, r)
	}
}

// TestPagingSharedStoreFailover: the live of a shared-store pair is killed
// while an address pages; the backup loads the paging journal from the
// shared directory and the consumer gets every acknowledged message once.
func TestPagingSharedStoreFailover(t *testing.T) {
	p := newHAPair(t, haOpts{extraCore: pagingCore("64K", "-1")})
	p.primary.start()
	p.backup.start()
	live := p.waitActive()
	prod, pids := p.producer("ha-paged", "s", 8000, 32, 0)
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := fetchStatus(context.Background(), live.httpPort)
		if err == nil && pagedStatus(st, "ha-paged") > 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the address did not page within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	live.kill()
	p.other(live).waitState(t, "active")
	if code := prod.wait(t, "producer", 120*time.Second); code != 0 {
		t.Fatalf("producer exit %d:\n%s", code, prod.errText())
	}
	drain, dids := p.consumer("ha-paged", "s-drain", 2*time.Second)
	if code := drain.wait(t, "drain", 120*time.Second); code != 0 {
		t.Fatalf("drain exit %d:\n%s", code, drain.errText())
	}
	r := checkIDs(t, pids, "s", 8000, dids)
	t.Log(r)
	if !r.ok() || r.acked != 8000 {
		t.Fatal(r)
	}
}

// newPagingReplPair is a replication pair (ZooKeeper, the test ensemble)
// whose brokers run extraCore: each has its own data directory, and the
// backup copies the live's journals (paging included).
func newPagingReplPair(t *testing.T, extraCore string) *haPair {
	t.Helper()
	zkc := testenv.ZK(t)
	ns := testenv.UniqueName(t)
	p := &haPair{t: t, work: t.TempDir()}
	p.primary = &haMember{brokerProc: newBrokerProc(t), name: "primary"}
	p.backup = &haMember{brokerProc: newBrokerProc(t), name: "backup"}
	write := func(m, peer *haMember, role string) {
		m.cfg = writeConfig(t, fmt.Sprintf(`<name>%s</name>
  <journal-type>NIO</journal-type>
  %s
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:%d</acceptor></acceptors>
  <connectors>
    <connector name="artemis">tcp://127.0.0.1:%d</connector>
    <connector name="peer">tcp://127.0.0.1:%d</connector>
  </connectors>
  <cluster-user>cluster</cluster-user><cluster-password>secret</cluster-password>
  <connection-ttl-override>6000</connection-ttl-override>
  <cluster-connections>
    <cluster-connection name="c">
      <connector-ref>artemis</connector-ref>
      <retry-interval>200</retry-interval>
      <static-connectors><connector-ref>peer</connector-ref></static-connectors>
    </cluster-connection>
  </cluster-connections>
  <ha-policy><replication><%s>
    <manager><properties>
      <property key="connect-string" value="%s"/>
      <property key="session-ms" value="4000"/>
      <property key="namespace" value="%s"/>
    </properties></manager>
    <group-name>paging</group-name>
  </%s></replication></ha-policy>`, m.name, extraCore, m.port, m.port, peer.port, role, zkc, ns, role))
	}
	write(p.primary, p.backup, "primary")
	write(p.backup, p.primary, "backup")
	return p
}

// replState is the live's replication state in /status ("" when none).
func replState(st map[string]any) string {
	r, _ := st["replication"].(map[string]any)
	s, _ := r["state"].(string)
	return s
}

// TestPagingReplicatedFailover: the live of a replicated pair is killed
// while an address pages: the replica, synced with the paging journal as
// the third journal (initial sync and live stream, answers gated on it),
// takes over and the consumer gets every acknowledged message once.
func TestPagingReplicatedFailover(t *testing.T) {
	p := newPagingReplPair(t, pagingCore("64K", "-1"))
	p.primary.start()
	p.primary.waitState(t, "active")
	// Some paged messages before the replica attaches: the initial sync
	// copies them.
	l := NewLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := produceSized(ctx, p.primary.URL(), "repl-paged", "before", 1500, 32, 512, l); err != nil {
		t.Fatalf("produce: %v", err)
	}
	p.backup.start()
	deadline := time.Now().Add(60 * time.Second)
	for replState(p.primary.status()) != "synced" {
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not sync within 60s: %v", p.primary.status()["replication"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A large message (its body in the large-messages journal, the fourth
	// journal replicated) survives the failover too.
	const bigSize = 30 << 20
	{
		conn, err := client.Dial(ctx, p.primary.URL())
		if err != nil {
			t.Fatal(err)
		}
		sess, err := conn.CreateSession(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.CreateProducer(client.Queue("repl-large")).SendStream(ctx, &client.Message{DuplicateID: "big"}, chacha(11, bigSize), bigSize); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	prod, pids := p.producer("repl-paged", "r", 6000, 32, 0)
	deadline = time.Now().Add(60 * time.Second)
	for pagedStatus(p.primary.status(), "repl-paged") < 3000 {
		if time.Now().After(deadline) {
			t.Fatal("not paging enough within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.primary.kill()
	p.backup.waitState(t, "active")
	if code := prod.wait(t, "producer", 120*time.Second); code != 0 {
		t.Fatalf("producer exit %d:\n%s", code, prod.errText())
	}
	drain, dids := p.consumer("repl-paged", "r-drain", 2*time.Second)
	if code := drain.wait(t, "drain", 120*time.Second); code != 0 {
		t.Fatalf("drain exit %d:\n%s", code, drain.errText())
	}
	// The drain took the earlier ones too: they are not the producer's.
	r := checkIDs(t, pids, "r", 6000, dids)
	t.Log(r)
	if len(r.lost) > 0 || len(r.duplicated) > 0 || r.acked != 6000 {
		t.Fatal(r)
	}
	before := 0
	for _, id := range readLines(t, dids) {
		if strings.HasPrefix(id, "before-") {
			before++
		}
	}
	if before != 1500 {
		t.Fatalf("%d of the 1500 messages paged before the replica synced came back", before)
	}
	conn, err := client.Dial(ctx, p.backup.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k, err := sess.CreateConsumer(ctx, client.Queue("repl-large"), client.NoAutoCreate())
	if err != nil {
		t.Fatal(err)
	}
	m, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Body) != bigSize || !bytes.Equal(sha(bytes.NewReader(m.Body)), sha(chacha(11, bigSize))) {
		t.Fatalf("the large message came back with %d bytes, different", len(m.Body))
	}
}

// journalSegments is /status's segment count of a journal (-1 when absent).
func journalSegments(st map[string]any, name string) float64 {
	js, _ := st["journals"].(map[string]any)
	j, ok := js[name].(map[string]any)
	if !ok {
		return -1
	}
	v, _ := j["segments"].(float64)
	return v
}

// peakRSS samples a process's resident memory until stop is closed.
func peakRSS(pid int, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		for {
			if kb, err := rssKiB(pid); err == nil && kb > peak {
				peak = kb
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return out
}

// chacha is a deterministic pseudo-random body source.
func chacha(seed byte, n int64) io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{seed}), n) }

func sha(r io.Reader) []byte {
	h := sha256.New()
	io.Copy(h, r)
	return h.Sum(nil)
}

// TestLargeMessageMemory: a message of several hundred MiB goes through
// the broker (streamed in, stored in the large-messages journal, streamed
// out) while its resident memory stays far below the message's size, and
// arrives intact.
func TestLargeMessageMemory(t *testing.T) {
	size := int64(400 << 20)
	if testing.Short() {
		size = 160 << 20
	}
	const rssLimit = 120 << 10 // KiB
	b := newBrokerProc(t)
	b.start("--config", writeConfig(t, "<journal-type>NIO</journal-type>"))
	b.requireFileStore()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	peak := peakRSS(b.cmd.Process.Pid, stop)
	conn, err := client.Dial(ctx, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.CreateProducer(client.Queue("huge")).SendStream(ctx, &client.Message{DuplicateID: "huge-1"}, chacha(7, size), size); err != nil {
		t.Fatalf("send: %v", err)
	}
	k, err := sess.CreateConsumer(ctx, client.Queue("huge"), client.Credit(1))
	if err != nil {
		t.Fatal(err)
	}
	m, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	p := <-peak
	t.Logf("%d MiB through the broker; its peak RSS %d MiB (limit %d MiB)", size>>20, p>>10, rssLimit>>10)
	if !bytes.Equal(sha(bytes.NewReader(m.Body)), sha(chacha(7, size))) || int64(len(m.Body)) != size {
		t.Fatalf("received %d bytes, different from the %d sent", len(m.Body), size)
	}
	if p >= rssLimit {
		t.Fatalf("broker peak RSS %d KiB for a %d MiB message, limit %d KiB", p, size>>20, rssLimit)
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestLargeKillDuringUpload: SIGKILL while a large body streams in: the
// send is not confirmed, nothing of it is delivered after the restart, and
// its chunks' segments are reclaimed.
func TestLargeKillDuringUpload(t *testing.T) {
	b := newBrokerProc(t)
	cfg := writeConfig(t, "<journal-type>NIO</journal-type><journal-file-size>4M</journal-file-size>")
	b.start("--config", cfg)
	b.requireFileStore()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn, err := client.Dial(ctx, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 30
	done := make(chan error, 1)
	go func() {
		done <- sess.CreateProducer(client.Queue("up")).SendStream(ctx, &client.Message{}, chacha(3, size), size)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for journalSegments(b.status(), "large-messages") < 8 {
		if time.Now().After(deadline) {
			t.Fatal("the upload did not reach 8 segments within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.kill()
	if err := <-done; err == nil {
		t.Fatal("the upload was confirmed")
	} else {
		t.Logf("upload ended with %v", err)
	}
	conn.Close()
	b.start("--config", cfg)
	st := b.status()
	qs, _ := st["queues"].([]any)
	for _, q := range qs {
		if m := q.(map[string]any); m["name"] == "up" && m["depth"].(float64) != 0 {
			t.Fatalf("queue up holds %v messages after the restart", m["depth"])
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for journalSegments(b.status(), "large-messages") > 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the partial upload's segments stay: %v", journalSegments(b.status(), "large-messages"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLargeKillDuringDelivery: SIGKILL while a large message streams to a
// consumer: after the restart it is delivered again, whole and intact.
func TestLargeKillDuringDelivery(t *testing.T) {
	b := newBrokerProc(t)
	cfg := writeConfig(t, "<journal-type>NIO</journal-type>")
	b.start("--config", cfg)
	b.requireFileStore()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const size = 200 << 20
	send := func() {
		conn, err := client.Dial(ctx, b.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sess, err := conn.CreateSession(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.CreateProducer(client.Queue("down")).SendStream(ctx, &client.Message{DuplicateID: "down-1"}, chacha(5, size), size); err != nil {
			t.Fatal(err)
		}
	}
	send()
	// A consumer that reads slowly: the broker is killed mid-stream.
	conn, err := client.Dial(ctx, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		k, err := sess.CreateConsumer(ctx, client.Queue("down"), client.Credit(1))
		if err == nil {
			_, err = k.Receive(ctx)
		}
		got <- err
	}()
	time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
	b.kill()
	err = <-got
	t.Logf("first receive ended with %v", err)
	conn.Close()
	b.start("--config", cfg)
	conn, err = client.Dial(ctx, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err = conn.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k, err := sess.CreateConsumer(ctx, client.Queue("down"), client.Credit(1))
	if err != nil {
		t.Fatal(err)
	}
	m, err := k.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(m.Body)) != size || !bytes.Equal(sha(bytes.NewReader(m.Body)), sha(chacha(5, size))) {
		t.Fatalf("redelivered %d bytes, different from the %d sent", len(m.Body), size)
	}
	if err := k.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestDataVerifyPagingAndLarge: `tandem data verify DATA` checks the
// paging and large-messages journals with the others; `tandem data print`
// lists their records.
func TestDataVerifyPagingAndLarge(t *testing.T) {
	b := newBrokerProc(t)
	cfg := writeConfig(t, "<journal-type>NIO</journal-type>"+pagingCore("16K", "-1"))
	b.start("--config", cfg)
	b.requireFileStore()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := NewLedger()
	if err := produceSized(ctx, b.URL(), "v", "v", 500, 32, 300, l); err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(ctx, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.CreateProducer(client.Queue("v-large")).SendStream(ctx, &client.Message{}, chacha(1, 3<<20), 3<<20); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if code := b.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	out, err := exec.Command(tandemBinary(t), "data", "verify", b.data).CombinedOutput()
	if err != nil {
		t.Fatalf("data verify: %v\n%s", err, out)
	}
	for _, want := range []string{"paging/tandem-page-*.tjp: ok:", "large-messages/tandem-large-*.tjl: ok:", "journal/tandem-data-*.tj: ok:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("data verify output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(tandemBinary(t), "data", "print", filepath.Join(b.data, "paging")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "add") {
		t.Fatalf("data print paging: %v\n%s", err, tail(string(out), 2000))
	}
}
