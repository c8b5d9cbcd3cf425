package stomp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tandemmq/tandem/server"
)

// Name is the protocol's name on an acceptor's protocols= list.
const Name = "STOMP"

// Options configure a Handler.
type Options struct {
	// Window is how many messages a subscription may hold unacknowledged
	// (ack:client and client-individual) or not yet written to the
	// socket (ack:auto); default 1000. It shrinks for large messages so
	// that a subscription holds about WindowBytes.
	Window int
	// WindowBytes bounds a subscription's outstanding bytes (default 4
	// MiB): the window is WindowBytes divided by the average message
	// size, at least 1.
	WindowBytes int
	// WriteTimeout closes a connection whose writes make no progress for
	// this long (a client that stopped reading); default the larger of
	// the connection's TTL and 30 s.
	WriteTimeout time.Duration
}

// Handler serves STOMP 1.0, 1.1 and 1.2 on the broker's acceptors
// (server.ProtocolHandler, server.ProtocolRefuser).
type Handler struct {
	opts Options
	ids  atomic.Uint64 // CONNECTED session IDs
}

// New returns a handler.
func New(opts Options) *Handler {
	if opts.Window <= 0 {
		opts.Window = 1000
	}
	if opts.WindowBytes <= 0 {
		opts.WindowBytes = 4 << 20
	}
	return &Handler{opts: opts}
}

// Name returns "STOMP".
func (h *Handler) Name() string { return Name }

// Detect reports whether prefix opens a STOMP connection: CONNECT or
// STOMP (or the start of either, when fewer bytes arrived), or an EOL
// (a heart-beat before the first frame).
func (h *Handler) Detect(prefix []byte) bool {
	if len(prefix) == 0 {
		return false
	}
	if prefix[0] == '\n' || prefix[0] == '\r' {
		return true
	}
	for _, cmd := range []string{"CONNECT", "STOMP"} {
		n := min(len(prefix), len(cmd))
		if string(prefix[:n]) == cmd[:n] {
			return true
		}
	}
	return false
}

// limits are the decoder's: a body up to the broker's message limit.
var limits = Limits{MaxBody: server.MaxBodySize, MaxHeaderBytes: 64 << 10, MaxHeaders: 1000}

// Refuse answers a client's CONNECT with an ERROR frame saying why (a
// broker that is not live): the client's failover list moves on.
func (h *Handler) Refuse(nc net.Conn, r *bufio.Reader, reason string) {
	dec := NewDecoder(r, limits)
	for {
		f, err := dec.Next()
		if err != nil {
			return
		}
		if f == nil {
			continue // heart-beat
		}
		e := &Frame{Command: "ERROR"}
		e.Set("message", reason)
		if v := f.Value("receipt"); v != "" {
			e.Set("receipt-id", v)
		}
		_, _ = nc.Write(AppendFrame(nil, e))
		return
	}
}

// Serve runs one STOMP connection until it ends.
func (h *Handler) Serve(ctx context.Context, pc server.ProtocolConn) {
	c := newConn(ctx, h, pc)
	c.run()
}

// parseHeartBeat parses "cx,cy" in milliseconds.
func parseHeartBeat(v string) (cx, cy time.Duration, err error) {
	if v == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(v, ",")
	if !ok {
		return 0, 0, fmt.Errorf("heart-beat %q: want two numbers, cx,cy", v)
	}
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 31)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 31)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("heart-beat %q: want two numbers of milliseconds, cx,cy", v)
	}
	return time.Duration(x) * time.Millisecond, time.Duration(y) * time.Millisecond, nil
}

// negotiateVersion picks the highest version both sides speak from
// accept-version (absent: 1.0).
func negotiateVersion(accept string) (string, bool) {
	if accept == "" {
		return "1.0", true
	}
	best := ""
	for _, v := range strings.Split(accept, ",") {
		switch v = strings.TrimSpace(v); v {
		case "1.0", "1.1", "1.2":
			if v > best {
				best = v
			}
		}
	}
	return best, best != ""
}
