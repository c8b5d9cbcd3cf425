package client

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tandemmq/tandem/wire"
)

// URL is a parsed connection URL (docs/cli.md "URLs"):
//
//	tcp://host:port[?options]
//	(tcp://a:61616,tcp://b:61617)?ha=true&reconnectAttempts=-1&retryInterval=500&retryIntervalMultiplier=1.5&maxRetryInterval=2000
//
// Options use Artemis's names; durations are milliseconds. Every option,
// known or not, is kept in Params. Unknown options are ignored, as Artemis
// ignores them.
//
// Defaults follow Artemis except one: with ha=true, reconnectAttempts
// defaults to -1 (retry forever) where Artemis's default is 0 (never
// reconnect). Without ha=true the Artemis default 0 applies.
type URL struct {
	// Addrs are the brokers' host:port, in the order given.
	Addrs []string
	// HA makes the client subscribe to the topology (live and backup) and
	// fail over between them.
	HA bool
	// ReconnectAttempts is how many times the client retries after losing
	// its connection; -1 is unlimited, 0 none (fail at once).
	ReconnectAttempts int
	// InitialConnectAttempts is how many passes over the URL list Dial
	// makes before giving up (Artemis initialConnectAttempts, default 1).
	InitialConnectAttempts int
	// RetryInterval is the pause after the first failed attempt; each next
	// pause is multiplied by RetryIntervalMultiplier, up to MaxRetryInterval.
	RetryInterval           time.Duration
	RetryIntervalMultiplier float64
	MaxRetryInterval        time.Duration
	// ConnectionTTL is how long the broker keeps a silent connection
	// (connectionTTL, default 60 s).
	ConnectionTTL time.Duration
	// ClientFailureCheckPeriod is how long the client waits for any frame
	// before treating the connection as dead (clientFailureCheckPeriod,
	// default 30 s).
	ClientFailureCheckPeriod time.Duration
	// CallTimeout bounds blocking calls when the context has no deadline
	// (callTimeout, default 30 s).
	CallTimeout time.Duration
	// User and Password (user, password options) unless Dial's options say
	// otherwise.
	User, Password string
	// MinLargeMessageSize (minLargeMessageSize, bytes, default 100 KiB as
	// Artemis's): a body larger than this is sent as a large message, in
	// chunks (large.go).
	MinLargeMessageSize int
	// Params holds every option as given.
	Params map[string]string
}

// URL defaults (Artemis's, see research/artemis-digest.md section 8).
const (
	DefaultRetryInterval           = 2000 * time.Millisecond
	DefaultRetryIntervalMultiplier = 1.0
	DefaultMaxRetryInterval        = 2000 * time.Millisecond
	// Under ha=true Tandem starts retrying after 200 ms and backs off by 1.5x
	// up to MaxRetryInterval (Artemis: a fixed 2 s). Documented in docs/cli.md's
	// spirit: Tandem's HA defaults differ where failover is faster.
	DefaultHARetryInterval           = 200 * time.Millisecond
	DefaultHARetryIntervalMultiplier = 1.5
	DefaultConnectionTTL             = 60000 * time.Millisecond
	DefaultClientFailureCheckPeriod  = 30000 * time.Millisecond
	DefaultCallTimeout               = 30000 * time.Millisecond
	// DefaultMinLargeMessageSize is Artemis's minLargeMessageSize.
	DefaultMinLargeMessageSize = 100 << 10
)

// ParseURL parses a connection URL. Errors name the part that is wrong.
func ParseURL(s string) (*URL, error) {
	u := &URL{
		RetryInterval:            DefaultRetryInterval,
		RetryIntervalMultiplier:  DefaultRetryIntervalMultiplier,
		MaxRetryInterval:         DefaultMaxRetryInterval,
		ConnectionTTL:            DefaultConnectionTTL,
		ClientFailureCheckPeriod: DefaultClientFailureCheckPeriod,
		CallTimeout:              DefaultCallTimeout,
		MinLargeMessageSize:      DefaultMinLargeMessageSize,
		InitialConnectAttempts:   1,
		Params:                   map[string]string{},
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("url: empty")
	}
	var list, query string
	if strings.HasPrefix(s, "(") {
		end := strings.IndexByte(s, ')')
		if end < 0 {
			return nil, fmt.Errorf("url %q: missing ')'", Redact(s))
		}
		list, query = s[1:end], s[end+1:]
		if query != "" && !strings.HasPrefix(query, "?") {
			return nil, fmt.Errorf("url %q: unexpected %q after ')'", Redact(s), Redact(query))
		}
		query = strings.TrimPrefix(query, "?")
	} else {
		list, query, _ = strings.Cut(s, "?")
	}
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		// an element may carry its own options (Artemis allows it); they
		// are merged into the common ones
		elem, q, _ := strings.Cut(part, "?")
		addr, err := parseElem(elem)
		if err != nil {
			return nil, fmt.Errorf("url %q: %w", Redact(s), err)
		}
		u.Addrs = append(u.Addrs, addr)
		if q != "" {
			if err := u.parseQuery(q); err != nil {
				return nil, fmt.Errorf("url %q: %w", Redact(s), err)
			}
		}
	}
	if err := u.parseQuery(query); err != nil {
		return nil, fmt.Errorf("url %q: %w", Redact(s), err)
	}
	if _, ok := u.Params["reconnectAttempts"]; !ok && u.HA {
		u.ReconnectAttempts = -1
	}
	// Under ha=true the first retry comes sooner than Artemis's 2 s: a
	// shared-store backup serves about 1.2 s after the live dies, and a
	// client waiting a fixed 2 s would double the pause. Explicit values win.
	if _, ok := u.Params["retryInterval"]; !ok && u.HA {
		u.RetryInterval = DefaultHARetryInterval
		if _, ok := u.Params["retryIntervalMultiplier"]; !ok {
			u.RetryIntervalMultiplier = DefaultHARetryIntervalMultiplier
		}
	}
	return u, nil
}

func parseElem(e string) (string, error) {
	scheme, rest, ok := strings.Cut(e, "://")
	if !ok {
		return "", fmt.Errorf("element %q: want tcp://host:port", e)
	}
	if scheme != "tcp" {
		return "", fmt.Errorf("element %q: scheme %q not supported (only tcp)", e, scheme)
	}
	rest = strings.TrimSuffix(rest, "/")
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return "", fmt.Errorf("element %q: %v", e, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("element %q: bad port %q", e, port)
	}
	if host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port), nil
}

func (u *URL) parseQuery(q string) error {
	if q == "" {
		return nil
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return fmt.Errorf("options: %v", err)
	}
	for k, vs := range vals {
		v := vs[len(vs)-1]
		u.Params[k] = v
		var err error
		switch k {
		case "ha":
			u.HA, err = strconv.ParseBool(v)
		case "reconnectAttempts":
			u.ReconnectAttempts, err = parseAttempts(v)
		case "initialConnectAttempts":
			u.InitialConnectAttempts, err = parseAttempts(v)
		case "retryInterval":
			u.RetryInterval, err = parseMillis(v)
		case "retryIntervalMultiplier":
			u.RetryIntervalMultiplier, err = strconv.ParseFloat(v, 64)
			if err == nil && u.RetryIntervalMultiplier < 1 {
				err = fmt.Errorf("must be >= 1")
			}
		case "maxRetryInterval":
			u.MaxRetryInterval, err = parseMillis(v)
		case "connectionTTL", "connectionTtl":
			u.ConnectionTTL, err = parseMillis(v)
		case "clientFailureCheckPeriod":
			u.ClientFailureCheckPeriod, err = parseMillis(v)
		case "callTimeout":
			u.CallTimeout, err = parseMillis(v)
		case "minLargeMessageSize":
			u.MinLargeMessageSize, err = strconv.Atoi(v)
			if err == nil && (u.MinLargeMessageSize < 1 || u.MinLargeMessageSize > wire.MaxBodySize) {
				err = fmt.Errorf("must be between 1 and %d bytes", wire.MaxBodySize)
			}
		case "user":
			u.User = v
		case "password":
			u.Password = v
		}
		if err != nil {
			return fmt.Errorf("option %s=%q: %v", k, v, err)
		}
	}
	return nil
}

func parseAttempts(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, err
	}
	if n < -1 {
		return 0, fmt.Errorf("must be -1 (unlimited) or >= 0")
	}
	return n, nil
}

func parseMillis(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("must be >= 0 ms")
	}
	return time.Duration(n) * time.Millisecond, nil
}

// nextInterval returns the retry pause after prev.
func (u *URL) nextInterval(prev time.Duration) time.Duration {
	if prev == 0 {
		return u.RetryInterval
	}
	d := time.Duration(float64(prev) * u.RetryIntervalMultiplier)
	if u.MaxRetryInterval > 0 && d > u.MaxRetryInterval {
		d = u.MaxRetryInterval
	}
	return d
}

// secretParams are the URL options whose values are secrets.
var secretParams = regexp.MustCompile(`(?i)([?&;(,](?:password|keyStorePassword|trustStorePassword)=)[^&;,)]*`)

// Redact returns a URL with the values of its password options
// (password, keyStorePassword, trustStorePassword) replaced by ****, for
// messages and logs.
func Redact(rawURL string) string { return secretParams.ReplaceAllString(rawURL, "${1}****") }
