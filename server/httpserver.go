package server

import (
	"context"
	"crypto/tls"
	"errors"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Bounds of the management HTTP server (docs/limits.md).
const (
	// HTTPReadHeaderTimeout bounds the wait for a request's headers.
	HTTPReadHeaderTimeout = 5 * time.Second
	// HTTPReadTimeout bounds reading a whole request.
	HTTPReadTimeout = 30 * time.Second
	// HTTPWriteTimeout bounds writing an answer; it leaves room for
	// /debug/pprof/profile's default 30 s.
	HTTPWriteTimeout = 90 * time.Second
	// HTTPIdleTimeout closes a kept-alive connection without a request
	// (Jetty's default, which Artemis's console uses).
	HTTPIdleTimeout = 30 * time.Second
	// HTTPMaxConnections bounds the management connections open at once:
	// past it, a new connection closes the oldest one without a request
	// in progress, or is closed itself when all are busy.
	HTTPMaxConnections = 128
	// httpMaxHeaderBytes bounds a request's headers.
	httpMaxHeaderBytes = 64 << 10
)

// HTTPServer is the management HTTP server: handler (ManagementHandler)
// behind the timeouts and the connection bound above, so idle or stalled
// clients cannot hold the port (or file descriptors) for long.
type HTTPServer struct {
	srv *http.Server
	log *slog.Logger
	tls *tls.Config

	mu    sync.Mutex
	conns map[net.Conn]*httpConn
	limit *logLimiter
}

type httpConn struct {
	since   time.Time // accepted, or its last answer ended
	serving bool      // a request is in the handler
}

type connKey struct{}

// NewHTTPServer returns the management server for handler; log receives
// its errors (rate-limited).
func NewHTTPServer(handler http.Handler, log *slog.Logger) *HTTPServer {
	if log == nil {
		log = slog.Default()
	}
	h := &HTTPServer{log: log, conns: map[net.Conn]*httpConn{}, limit: newLogLimiter()}
	h.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := r.Context().Value(connKey{}).(net.Conn)
			h.serving(c, true)
			defer h.serving(c, false)
			handler.ServeHTTP(w, r)
		}),
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
		ReadHeaderTimeout: HTTPReadHeaderTimeout,
		ReadTimeout:       HTTPReadTimeout,
		WriteTimeout:      HTTPWriteTimeout,
		IdleTimeout:       HTTPIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ConnState:         h.connState,
		ErrorLog:          stdlog.New(&httpErrors{h}, "", 0),
	}
	return h
}

// Serve serves on ln until Shutdown; it returns http.ErrServerClosed then.
func (h *HTTPServer) Serve(ln net.Listener) error {
	if h.tls != nil {
		// TLS inside the admission bound: each admitted connection is a
		// *tls.Conn, which net/http serves as HTTPS.
		ln = tls.NewListener(ln, h.tls)
	}
	return h.srv.Serve(&httpListener{Listener: ln, h: h})
}

// SetTLS makes Serve serve HTTPS with c (the management address's
// <management-http-ssl>); call it before Serve.
func (h *HTTPServer) SetTLS(c *tls.Config) { h.tls = c }

// Shutdown stops the server, waiting for requests in progress until ctx
// ends.
func (h *HTTPServer) Shutdown(ctx context.Context) error {
	err := h.srv.Shutdown(ctx)
	h.limit.stop()
	return err
}

// admit makes room for a new connection: at the bound it closes the
// connection that has waited longest without a request in the handler
// (idle, or slow to send its request). It returns false when all are in
// the handler (the new one is closed).
func (h *HTTPServer) admit(c net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.conns) >= HTTPMaxConnections {
		var oldest net.Conn
		var at time.Time
		for x, s := range h.conns {
			if !s.serving && (oldest == nil || s.since.Before(at)) {
				oldest, at = x, s.since
			}
		}
		if oldest == nil {
			return false
		}
		oldest.Close()
		delete(h.conns, oldest)
	}
	h.conns[c] = &httpConn{since: time.Now()}
	return true
}

// serving marks c's request as in the handler, or done.
func (h *HTTPServer) serving(c net.Conn, in bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.conns[c]; s != nil {
		s.serving = in
		if !in {
			s.since = time.Now()
		}
	}
}

// connState forgets connections that closed.
func (h *HTTPServer) connState(c net.Conn, st http.ConnState) {
	if st == http.StateClosed || st == http.StateHijacked {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
	}
}

// httpListener admits connections within the bound.
type httpListener struct {
	net.Listener
	h *HTTPServer
}

// Accept returns the next connection admitted.
func (l *httpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.h.admit(c) {
			return c, nil
		}
		c.Close()
		l.h.limit.log(l.h.log, slog.LevelWarn, "http-refused", "management HTTP: connection refused, all connections busy",
			"remote", c.RemoteAddr().String(), "max", HTTPMaxConnections)
	}
}

// httpErrors passes net/http's error log (TLS handshakes, accept errors,
// panics) through the rate limit.
type httpErrors struct{ h *HTTPServer }

func (e *httpErrors) Write(p []byte) (int, error) {
	e.h.limit.log(e.h.log, slog.LevelWarn, "http-error", "management HTTP", "err", clip(string(p)))
	return len(p), nil
}

// IsLoopback reports whether addr (host:port, as a listener reports it)
// is a loopback address: pprof is on by default only there.
func IsLoopback(addr net.Addr) bool {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errPprofDisabled is what /debug/pprof/ answers when pprof is off.
var errPprofDisabled = errors.New("pprof is disabled: set <pprof-enabled>true</pprof-enabled> in <core> to serve it (it is on by default only when the management address is loopback)")
