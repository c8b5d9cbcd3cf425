package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandemmq/tandem/client"
	"github.com/tandemmq/tandem/wire"
)

func init() {
	register(command{name: "producer", summary: "send messages with IDs P-SEQ", run: runProducer})
}

// runProducer is `tandem producer --url URL --destination queue://NAME|topic://NAME
// --count N [--size BYTES] [--non-durable] [--rate PER_SEC] [--window W]
// [--id-prefix P] [--ids-out FILE]`.
func runProducer(args []string) int {
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	url := fs.String("url", "tcp://localhost:61616", "broker URL: tcp://host:port or (tcp://a:p,tcp://b:p)?ha=true&...")
	destFlag := fs.String("destination", "", "queue://NAME or topic://NAME (required)")
	count := fs.Int("count", 0, "number of messages to send (required)")
	size := fs.Int("size", 1024, "message body size in bytes (the body starts with the message ID)")
	nonDurable := fs.Bool("non-durable", false, "send non-persistent messages")
	rate := fs.Float64("rate", 0, "messages per second (0 = as fast as acknowledgements allow)")
	window := fs.Int("window", 1, "sends in flight (1 = each send waits for its acknowledgement)")
	prefix := fs.String("id-prefix", "", "message ID prefix P of IDs P-SEQ (default a random run ID)")
	idsOut := fs.String("ids-out", "", "write each acknowledged ID as a line to FILE, flushed as acks arrive")
	creds := credentialFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitCannot
	}
	dest, err := client.ParseDestination(*destFlag)
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	case *destFlag == "":
		err = errors.New("--destination is required")
	case err != nil:
	case *count <= 0:
		err = errors.New("--count N (N > 0) is required")
	case *size < 0 || *size > wire.MaxBodySize:
		err = fmt.Errorf("--size must be 0..%d", wire.MaxBodySize)
	case *window < 1:
		err = errors.New("--window must be >= 1")
	case *rate < 0:
		err = errors.New("--rate must be >= 0")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem producer: %v\n", err)
		return exitCannot
	}
	u, err := client.ParseURL(*url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem producer: --url: %v\n", err)
		return exitCannot
	}
	if *prefix == "" {
		*prefix = randomRunID()
	}
	ids, err := newIDsWriter(*idsOut)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem producer: %v\n", err)
		return exitCannot
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pr := &producerRun{u: u, dest: dest, count: *count, size: *size, durable: !*nonDurable,
		rate: *rate, window: *window, prefix: *prefix, ids: ids, dial: creds()}
	code := pr.run(ctx, *url)
	if err := ids.close(); err != nil {
		fmt.Fprintf(os.Stderr, "tandem producer: %v\n", err)
		if code == exitOK {
			code = exitCannot
		}
	}
	return code
}

type producerRun struct {
	u       *client.URL
	dest    client.Destination
	count   int
	size    int
	durable bool
	rate    float64
	window  int
	prefix  string
	ids     *idsWriter
	dial    []client.Option // credentials

	mu      sync.Mutex
	cond    *sync.Cond
	acked   int
	retry   []int // sequence numbers to resend (HA: outcome unknown)
	fatal   error // first error that makes the run give up
	pending int
}

func (pr *producerRun) run(ctx context.Context, rawURL string) int {
	pr.cond = sync.NewCond(&pr.mu)
	conn, err := dialInitial(ctx, rawURL, "tandem producer", pr.dial...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem producer: %v\n", err)
		return exitCannot // never connected: nothing was attempted
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem producer: %v\n", err)
		return exitFailed
	}
	opts := []client.ProducerOption{client.Window(pr.window), client.DuplicatePrefix(pr.prefix)}
	if !pr.durable {
		opts = append(opts, client.NonDurable())
	}
	p := sess.CreateProducer(pr.dest, opts...)
	start := time.Now()
	next, sent := 1, 0
	stopProgress := startProgress(os.Stderr, func() string {
		pr.mu.Lock()
		acked := pr.acked
		pr.mu.Unlock()
		el := time.Since(start)
		return fmt.Sprintf("tandem producer: %d of %d acknowledged  %.0f msgs/s  %s", acked, pr.count,
			float64(acked)/el.Seconds(), el.Round(100*time.Millisecond))
	})
	for {
		pr.mu.Lock()
		for pr.fatal == nil && len(pr.retry) == 0 && next > pr.count && pr.pending > 0 {
			pr.cond.Wait() // everything sent: wait for outcomes (or retries)
		}
		if pr.fatal != nil || (len(pr.retry) == 0 && next > pr.count) {
			pr.mu.Unlock()
			break
		}
		var seq int
		if len(pr.retry) > 0 {
			seq, pr.retry = pr.retry[0], pr.retry[1:]
		} else {
			seq = next
			next++
		}
		pr.pending++
		pr.mu.Unlock()

		if pr.rate > 0 {
			due := start.Add(time.Duration(float64(sent) / pr.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if sleepCtx(ctx, d) != nil {
					pr.giveUp(ctx.Err())
					pr.done()
					break
				}
			}
		}
		id := pr.prefix + "-" + strconv.Itoa(seq)
		m := &client.Message{Body: pr.body(id), DuplicateID: id, Properties: []client.Property{wire.StringProp("id", id)}}
		err := p.SendAsync(ctx, m, func(err error) { pr.outcome(seq, id, err) })
		if err != nil {
			pr.outcome(seq, id, err)
		}
		sent++
	}
	pr.mu.Lock()
	for pr.pending > 0 {
		pr.cond.Wait()
	}
	acked, fatal := pr.acked, pr.fatal
	pr.mu.Unlock()
	stopProgress()
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "tandem producer: %d of %d acknowledged in %v (%.0f msgs/s)\n",
		acked, pr.count, el.Round(time.Millisecond), float64(acked)/el.Seconds())
	if acked == pr.count {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "tandem producer: gave up: %v\n", fatal)
	return exitFailed
}

func (pr *producerRun) body(id string) []byte {
	n := max(pr.size, len(id))
	b := make([]byte, n)
	copy(b, id)
	for i := len(id); i < n; i++ {
		b[i] = 'x'
	}
	return b
}

// outcome records a send's result (runs on the client's reader goroutine).
func (pr *producerRun) outcome(seq int, id string, err error) {
	if err == nil {
		pr.ids.add(id)
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	defer pr.cond.Broadcast()
	pr.pending--
	switch {
	case err == nil:
		pr.acked++
	case reconnecting(pr.u) && retriable(err) && pr.fatal == nil:
		// same ID again: the broker stores it at most once
		pr.retry = append(pr.retry, seq)
	default:
		if pr.fatal == nil {
			pr.fatal = fmt.Errorf("message %s: %w", id, err)
		}
	}
}

func (pr *producerRun) giveUp(err error) {
	pr.mu.Lock()
	if pr.fatal == nil {
		pr.fatal = err
	}
	pr.mu.Unlock()
}

func (pr *producerRun) done() {
	pr.mu.Lock()
	pr.pending--
	pr.cond.Broadcast()
	pr.mu.Unlock()
}

// retriable reports whether a send may succeed if sent again (with HA).
func retriable(err error) bool {
	if errors.Is(err, client.ErrUnknownOutcome) {
		return true
	}
	var se *client.ServerError
	if errors.As(err, &se) {
		return se.Code == wire.CodeUnavailable || se.Code == wire.CodeShuttingDown || se.Code == wire.CodeInternal
	}
	return false
}

// reconnecting reports whether the URL asks for reconnection: ha=true (its
// default reconnectAttempts is -1) or an explicit reconnectAttempts != 0.
// Then a send whose outcome is unknown is resent with the same ID.
func reconnecting(u *client.URL) bool { return u.HA || u.ReconnectAttempts != 0 }

// dialInitial makes the first connection as Artemis's
// initialConnectAttempts says (default 1: one pass over the URL's
// addresses, then the dial error), whatever reconnectAttempts says: that
// one governs a connection lost later. Before each retry it says on
// stderr what it waits for.
func dialInitial(ctx context.Context, rawURL, who string, opts ...client.Option) (*client.Conn, error) {
	return client.Dial(ctx, rawURL, append([]client.Option{client.WithClientID("tandem-cli-" + randomRunID()),
		client.WithConnectRetryListener(retryNotice(os.Stderr, who))}, opts...)...)
}

// credentialFlags adds --user and --password to fs; the function returned
// gives the dial options they make (none when both are empty: the URL's
// user and password options, else anonymous).
func credentialFlags(fs *flag.FlagSet) func() []client.Option {
	user := fs.String("user", "", "user (default: the URL's user option, else anonymous)")
	password := fs.String("password", "", "password of --user")
	return func() []client.Option {
		if *user == "" && *password == "" {
			return nil
		}
		return []client.Option{client.WithCredentials(*user, *password)}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// randomRunID returns 8 random hex digits.
func randomRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// retryNotice returns a client.ConnectRetryListener that says on w what
// the initial connection waits for: the addresses, the error and when the
// next pass comes.
func retryNotice(w io.Writer, who string) func(client.ConnectRetry) {
	return func(r client.ConnectRetry) {
		of := "no limit"
		if r.Attempts > 0 {
			of = fmt.Sprintf("of %d", r.Attempts)
		}
		fmt.Fprintf(w, "%s: no broker answered at %s (%v); retrying in %v (pass %d %s, initialConnectAttempts)\n",
			who, strings.Join(r.Addrs, ", "), r.Err, r.Pause, r.Pass+1, of)
	}
}
