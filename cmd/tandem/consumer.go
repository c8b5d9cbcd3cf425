package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tandemmq/tandem/client"
)

func init() {
	register(command{name: "consumer", summary: "receive and acknowledge messages", run: runConsumer})
}

// runConsumer is `tandem consumer --url URL --destination queue://NAME
// [--count N | --idle DURATION] [--ids-out FILE]`.
func runConsumer(args []string) int {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	url := fs.String("url", "tcp://localhost:61616", "broker URL: tcp://host:port or (tcp://a:p,tcp://b:p)?ha=true&...")
	destFlag := fs.String("destination", "", "queue://NAME (required; topic://NAME reads a temporary subscription)")
	count := fs.Int("count", 0, "stop after N messages (0 = no limit)")
	idle := fs.Duration("idle", 0, "stop once no message arrived for DURATION (default 5s without --count)")
	idsOut := fs.String("ids-out", "", "write a line per delivery once its ack's outcome is known: ID, or ID ? when unknown")
	credit := fs.Int("credit", 1000, "consumer window: messages the broker may send ahead")
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
	case *count < 0:
		err = errors.New("--count must be >= 0")
	case *idle < 0:
		err = errors.New("--idle must be >= 0")
	case *credit < 1:
		err = errors.New("--credit must be >= 1")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem consumer: %v\n", err)
		return exitCannot
	}
	if *count == 0 && *idle == 0 {
		*idle = 5 * time.Second
	}
	u, err := client.ParseURL(*url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem consumer: --url: %v\n", err)
		return exitCannot
	}
	ids, err := newIDsWriter(*idsOut)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem consumer: %v\n", err)
		return exitCannot
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := consume(ctx, *url, u, dest, *count, *idle, *credit, ids, creds()...)
	if err := ids.close(); err != nil {
		fmt.Fprintf(os.Stderr, "tandem consumer: %v\n", err)
		if code == exitOK {
			code = exitCannot
		}
	}
	return code
}

// messageID is the ID written to --ids-out: the producer's ID (its
// duplicate ID, or an "id" property), else the broker's message ID.
func messageID(m *client.Message) string {
	if m.DuplicateID != "" {
		return m.DuplicateID
	}
	if p, ok := m.Property("id"); ok && p.Str != "" {
		return p.Str
	}
	return strconv.FormatUint(m.ID, 10)
}

func consume(ctx context.Context, rawURL string, u *client.URL, dest client.Destination, count int, idle time.Duration, credit int, ids *idsWriter, dial ...client.Option) int {
	conn, err := dialInitial(ctx, rawURL, "tandem consumer", dial...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem consumer: %v\n", err)
		return exitCannot // never connected: nothing was attempted
	}
	defer conn.Close()
	sess, err := conn.CreateSession(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem consumer: %v\n", err)
		return exitFailed
	}
	k, err := sess.CreateConsumer(ctx, dest, client.Credit(credit))
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem consumer: %v\n", err)
		return exitFailed
	}
	var (
		mu        sync.Mutex
		done      = sync.NewCond(&mu)
		inFlight  int
		confirmed int
		unknown   int
	)
	// counted: deliveries whose ack outcome is known (confirmed or unknown)
	counted := func() int { return confirmed + unknown }
	start := time.Now()
	var first, last time.Time // the first and last deliveries, for the rate
	var failure error
	stopProgress := startProgress(os.Stderr, func() string {
		mu.Lock()
		defer mu.Unlock()
		of := ""
		if count > 0 {
			of = fmt.Sprintf(" of %d", count)
		}
		return fmt.Sprintf("tandem consumer: %d%s consumed  %s", confirmed+unknown, of, time.Since(start).Round(100*time.Millisecond))
	})
	for {
		mu.Lock()
		// with --count, stop taking messages once enough are counted or
		// in flight; wait for in-flight outcomes (a refused ack means the
		// message comes back)
		for count > 0 && counted()+inFlight >= count && inFlight > 0 {
			done.Wait()
		}
		reached := count > 0 && counted() >= count
		mu.Unlock()
		if reached {
			break
		}
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if idle > 0 {
			rctx, cancel = context.WithTimeout(ctx, idle)
		}
		m, err := k.Receive(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				if count > 0 {
					failure = fmt.Errorf("no message for %v (--idle) before %d were consumed", idle, count)
				}
				break
			}
			failure = err
			break
		}
		id := messageID(m)
		mu.Lock()
		last = time.Now()
		if first.IsZero() {
			first = last
		}
		inFlight++
		mu.Unlock()
		err = k.AckAsync(m, func(err error) {
			switch {
			case err == nil:
				ids.add(id)
			case errors.Is(err, client.ErrUnknownOutcome):
				ids.add(id + " ?")
			}
			mu.Lock()
			inFlight--
			switch {
			case err == nil:
				confirmed++
			case errors.Is(err, client.ErrUnknownOutcome):
				unknown++
			}
			done.Broadcast()
			mu.Unlock()
		})
		if err != nil { // delivered on a lost connection: it comes again
			mu.Lock()
			inFlight--
			mu.Unlock()
		}
	}
	mu.Lock()
	for inFlight > 0 {
		done.Wait()
	}
	n, unk := confirmed, unknown
	mu.Unlock()
	stopProgress()
	fmt.Fprintln(os.Stderr, consumeSummary(n, unk, start, first, last, time.Now()))
	if failure != nil {
		fmt.Fprintf(os.Stderr, "tandem consumer: %v\n", failure)
		return exitFailed
	}
	return exitOK
}

// consumeSummary is the consumer's last line. The rate counts from the
// first delivery to the last: the wait for the first message and the
// --idle wait after the last are not consuming.
func consumeSummary(n, unknown int, start, first, last, end time.Time) string {
	line := fmt.Sprintf("tandem consumer: %d consumed (%d with unknown ack outcome) in %v", n+unknown, unknown, end.Sub(start).Round(time.Millisecond))
	if el := last.Sub(first); n+unknown > 1 && el > 0 {
		line += fmt.Sprintf(" (%.0f msgs/s from the first delivery to the last)", float64(n+unknown-1)/el.Seconds())
	}
	return line
}
