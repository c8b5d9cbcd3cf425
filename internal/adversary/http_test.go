package adversary

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// 50 clients requesting /status without pause, next to 300 connections to
// the management port that send nothing, 200 that send half a request and
// stall, and 100 kept alive idle after one request: /status keeps
// answering, the well-behaved client keeps its round trips, and the broker
// closes the idle connections itself (kept-alive ones never timed out).
func TestManagementHTTPFlood(t *testing.T) {
	raiseFileLimit(t)
	b := startBroker(t)
	g := b.goodClient(t)
	w := b.watch(bounds{RSS: 128 * miB, Log: 64 * kiB, LogPerSec: 2 * kiB})
	a := newAttack(t)

	var mu sync.Mutex
	var idle []net.Conn
	var opened sync.WaitGroup
	const silent, partial, kept = 300, 200, 100
	opened.Add(silent + partial + kept)
	a.goN(silent+partial+kept, func(ctx context.Context, i int) {
		nc, err := net.Dial("tcp", b.http)
		if err != nil {
			opened.Done()
			return
		}
		nc.SetDeadline(time.Now().Add(liveness()))
		switch {
		case i >= silent+partial:
			io.WriteString(nc, "GET /status HTTP/1.1\r\nHost: tandem\r\n\r\n")
			br := bufio.NewReader(nc)
			if resp, err := http.ReadResponse(br, nil); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		case i >= silent:
			io.WriteString(nc, "GET /status HTTP/1.1\r\nHost: tandem\r\n")
		}
		mu.Lock()
		idle = append(idle, nc)
		mu.Unlock()
		opened.Done()
		<-ctx.Done()
	})
	opened.Wait()

	var ok, refused atomic.Int64
	tr := &http.Transport{MaxIdleConnsPerHost: 50}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: liveness()}
	a.goN(50, func(ctx context.Context, i int) {
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.http+"/status", nil)
			resp, err := hc.Do(req)
			if err != nil {
				refused.Add(1)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok.Add(1)
			}
		}
	})
	for ok.Load() == 0 {
		if p := w.failed(); p != "" {
			t.Fatal(p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	underAttack(t, b, w, g)
	t.Logf("/status: %d answered, %d failed", ok.Load(), refused.Load())

	// The idle and half-request connections are closed by the broker.
	mu.Lock()
	conns := idle
	mu.Unlock()
	deadline := time.Now().Add(liveness())
	for i, nc := range conns {
		nc.SetReadDeadline(deadline)
		if _, err := io.Copy(io.Discard, nc); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("idle management connection %d of %d still open after %v", i, len(conns), liveness())
			}
		}
	}
}
