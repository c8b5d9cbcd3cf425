package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ThrottleOptions tune the delay after failed logins. Zero fields take
// the defaults.
type ThrottleOptions struct {
	// FreeFailures are the failures from a host that cost no delay
	// (default 3: a user may mistype).
	FreeFailures int
	// BaseDelay is the delay after the first failure beyond the free ones;
	// it doubles with each further failure (default 250 ms).
	BaseDelay time.Duration
	// MaxDelay caps the delay (default 5 s, below the handshake timeout).
	MaxDelay time.Duration
	// MaxWaiting is how many logins of one throttled host may wait their
	// turn; more are refused at once (default 4).
	MaxWaiting int
	// Forget is how long after its last failure a host starts afresh
	// (default 10 minutes).
	Forget time.Duration
}

func (o *ThrottleOptions) defaults() {
	if o.FreeFailures <= 0 {
		o.FreeFailures = 3
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 250 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Second
	}
	if o.MaxWaiting <= 0 {
		o.MaxWaiting = 4
	}
	if o.Forget <= 0 {
		o.Forget = 10 * time.Minute
	}
}

// throttle counts failed logins per host. A host past its free failures
// has its logins served one at a time, each no sooner than the delay
// after its last failure: guesses from one host come no faster than one
// per delay, however many connections it opens.
type throttle struct {
	o   ThrottleOptions
	now func() time.Time

	mu    sync.Mutex
	hosts map[string]*hostState
}

type hostState struct {
	failures int
	last     time.Time     // the last failure
	nextAt   time.Time     // no check before this
	turn     chan struct{} // held by the login being checked
	waiting  int
}

// maxHosts bounds the hosts remembered; past it, the ones with nothing
// pending and the oldest failures are forgotten.
const maxHosts = 100_000

func newThrottle(o ThrottleOptions, now func() time.Time) *throttle {
	o.defaults()
	return &throttle{o: o, now: now, hosts: map[string]*hostState{}}
}

// delay is the wait after n failures.
func (t *throttle) delay(n int) time.Duration {
	k := n - t.o.FreeFailures
	if k <= 0 {
		return 0
	}
	if k > 30 {
		return t.o.MaxDelay
	}
	return min(t.o.BaseDelay<<(k-1), t.o.MaxDelay)
}

// wait returns when a login from host may be checked; release must be
// called after the check. A host without failures past the free ones does
// not wait.
func (t *throttle) wait(ctx context.Context, host string) (release func(), err error) {
	t.mu.Lock()
	h := t.hosts[host]
	if h != nil && t.now().Sub(h.last) > t.o.Forget && h.waiting == 0 {
		delete(t.hosts, host)
		h = nil
	}
	if h == nil || h.failures <= t.o.FreeFailures {
		t.mu.Unlock()
		return func() {}, nil
	}
	if h.waiting >= t.o.MaxWaiting {
		n := h.failures
		t.mu.Unlock()
		return nil, fmt.Errorf("too many failed logins from %s (%d); logins from it are slowed down: try again later", host, n)
	}
	h.waiting++
	t.mu.Unlock()
	done := func() {
		t.mu.Lock()
		h.waiting--
		t.mu.Unlock()
	}
	select {
	case h.turn <- struct{}{}:
	case <-ctx.Done():
		done()
		return nil, fmt.Errorf("gave up waiting for a turn after failed logins from %s: %w", host, ctx.Err())
	}
	t.mu.Lock()
	d := h.nextAt.Sub(t.now())
	t.mu.Unlock()
	if d > 0 {
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			<-h.turn
			done()
			return nil, fmt.Errorf("gave up waiting %v after failed logins from %s: %w", d.Round(time.Millisecond), host, ctx.Err())
		}
	}
	return func() {
		<-h.turn
		done()
	}, nil
}

// failed counts a failure of host and returns the failures counted and the
// delay before its next login is checked.
func (t *throttle) failed(host string) (int, time.Duration) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[host]
	if h == nil {
		if len(t.hosts) >= maxHosts {
			t.evictLocked(now)
		}
		h = &hostState{turn: make(chan struct{}, 1)}
		t.hosts[host] = h
	}
	if now.Sub(h.last) > t.o.Forget {
		h.failures = 0
	}
	h.failures++
	h.last = now
	d := t.delay(h.failures)
	h.nextAt = now.Add(d)
	return h.failures, d
}

// evictLocked forgets hosts with nothing pending: the stale ones, or,
// when none is stale, half of them.
func (t *throttle) evictLocked(now time.Time) {
	n := 0
	for k, h := range t.hosts {
		if h.waiting == 0 && now.Sub(h.last) > t.o.Forget {
			delete(t.hosts, k)
			n++
		}
	}
	if n > 0 {
		return
	}
	for k, h := range t.hosts {
		if h.waiting == 0 {
			delete(t.hosts, k)
			if len(t.hosts) < maxHosts/2 {
				return
			}
		}
	}
}

// hostOf returns the host of a remote address (host:port or host).
func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// logLimiter lets at most logBurst lines of a kind through per logWindow;
// the count of those held back is logged with the first line of a later
// window (no timer: nothing runs when nothing is logged).
type logLimiter struct {
	now   func() time.Time
	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	start   time.Time
	n       int
	dropped int
}

const (
	logWindow = 10 * time.Second
	logBurst  = 10
)

func newLogLimiter(now func() time.Time) *logLimiter {
	return &logLimiter{now: now, kinds: map[string]*logKind{}}
}

func (l *logLimiter) log(lg *slog.Logger, level slog.Level, kind, msg string, args ...any) {
	if !lg.Enabled(context.Background(), level) {
		return
	}
	now := l.now()
	l.mu.Lock()
	k := l.kinds[kind]
	if k == nil {
		k = &logKind{start: now}
		l.kinds[kind] = k
	}
	dropped := 0
	if now.Sub(k.start) >= logWindow {
		dropped = k.dropped
		k.start, k.n, k.dropped = now, 0, 0
	}
	k.n++
	if k.n > logBurst {
		k.dropped++
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	if dropped > 0 {
		args = append(args, "suppressed_before", dropped)
	}
	lg.Log(context.Background(), level, msg, args...)
}
