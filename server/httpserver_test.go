package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// /debug/pprof/ is served only when enabled; otherwise it answers 403 and
// says how to enable it (it was always served, command line included).
func TestPprofBehindOption(t *testing.T) {
	b := newBroker(t, Options{})
	for _, on := range []bool{false, true} {
		h := ManagementHandler(ManagementOptions{Status: b.s.Status, Pprof: on})
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			switch {
			case on && rec.Code != http.StatusOK:
				t.Errorf("pprof enabled: GET %s: %d", path, rec.Code)
			case !on && (rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "<pprof-enabled>")):
				t.Errorf("pprof disabled: GET %s: %d %q", path, rec.Code, rec.Body)
			}
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8161": true, "[::1]:8161": true, "0.0.0.0:8161": false, "10.1.2.3:80": false, "[::]:1": false} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := IsLoopback(tcp); got != want {
			t.Errorf("IsLoopback(%s) = %v", addr, got)
		}
	}
}

// The management server has read-header, read, write and idle timeouts
// (idle connections never timed out).
func TestHTTPServerTimeouts(t *testing.T) {
	h := NewHTTPServer(http.NotFoundHandler(), nil)
	s := h.srv
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("timeouts: header %v read %v write %v idle %v, max header %d",
			s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.MaxHeaderBytes)
	}
	if s.WriteTimeout <= 30*time.Second {
		t.Fatalf("write timeout %v leaves no room for a 30 s CPU profile", s.WriteTimeout)
	}
}

// Connections that hold the management port without a request do not
// lock out a monitor: at the bound the one waiting longest is closed.
func TestHTTPServerBoundsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- h.Serve(ln) }()
	defer func() {
		h.Shutdown(context.Background())
		<-done
	}()
	var idle []net.Conn
	for i := 0; i < HTTPMaxConnections+20; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i%2 == 1 {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n") // half a request
		}
		idle = append(idle, c)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("a request with %d connections held open: %v", len(idle), err)
	}
	resp.Body.Close()
	// The first ones opened were closed to make room.
	idle[0].SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); err == nil {
		t.Fatal("the oldest idle connection is still open")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the oldest idle connection was not closed")
	}
}
