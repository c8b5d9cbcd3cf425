package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tandemmq/tandem/bench"
)

func init() {
	register(command{name: "soak", summary: "hold a mixed load for a while and report it per minute (bench/soak.sh)", run: runSoak})
}

// runSoak is `tandem soak --url URL --rate R [--http ADDR] [--data-dir DIR]
// [--duration D] [--interval I] [--producers P] [--window W]
// [--consumers C] [--size BYTES] [--long-every N] [--long-hold N]
// [--restart-every D] [--json]`.
func runSoak(args []string) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	var cfg bench.SoakConfig
	fs.StringVar(&cfg.URL, "url", "tcp://localhost:61616", "broker URL")
	fs.StringVar(&cfg.HTTP, "http", "", "the broker's management address (host:port): its RSS, goroutines and queue depths")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "the broker's data directory, whose size is reported")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Minute, "how long the load runs (the drain follows)")
	fs.DurationVar(&cfg.Interval, "interval", time.Minute, "reporting interval")
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages per second in all (required; bench/soak.sh uses half the measured maximum)")
	fs.IntVar(&cfg.Producers, "producers", 4, "producers, each on its own connection")
	fs.IntVar(&cfg.Window, "window", 8, "sends in flight per producer")
	fs.IntVar(&cfg.Consumers, "consumers", 2, "consumers of the short-lived queue (one more takes the long-lived queue)")
	fs.IntVar(&cfg.Size, "size", 1024, "message body size in bytes")
	fs.IntVar(&cfg.LongEvery, "long-every", 50, "every Nth message of a producer goes to the long-lived queue")
	fs.IntVar(&cfg.LongHold, "long-hold", 5000, "messages the long-lived queue's consumer keeps unacknowledged")
	fs.DurationVar(&cfg.RestartEvery, "restart-every", 30*time.Second, "a short-lived queue consumer restarts this often, in turn (0: never)")
	asJSON := fs.Bool("json", false, "print a JSON line per interval and the result as JSON")
	if err := fs.Parse(args); err != nil {
		return exitCannot
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tandem soak: unexpected arguments %q\n", fs.Args())
		return exitCannot
	}
	out := os.Stdout
	if *asJSON {
		cfg.Report = func(r bench.SoakRow) {
			b, _ := json.Marshal(r)
			fmt.Fprintln(out, string(b))
		}
	} else {
		printSoakHeader(out)
		cfg.Report = func(r bench.SoakRow) { printSoakRow(out, r) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Soak(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandem soak: %v\n", err)
		return exitCannot
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(out, string(b))
	} else {
		printSoakSummary(out, res)
	}
	if res.Error != "" {
		fmt.Fprintf(os.Stderr, "tandem soak: %s\n", res.Error)
	}
	if !res.OK() {
		return exitFailed
	}
	return exitOK
}

func printSoakHeader(w io.Writer) {
	fmt.Fprintf(w, "%8s %9s %9s %8s %8s %8s %8s %9s %8s %6s %7s %7s %8s\n", "t(s)", "prod/s", "cons/s",
		"p50(ms)", "p99(ms)", "p999(ms)", "max(ms)", "data(MiB)", "rss(MiB)", "gorout", "short", "long", "restarts")
}

func printSoakRow(w io.Writer, r bench.SoakRow) {
	ms := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f", *p/1000)
	}
	mib := func(n int64) string {
		if n < 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(n)/(1<<20))
	}
	num := func(n int64) string {
		if n < 0 {
			return "-"
		}
		return fmt.Sprint(n)
	}
	fmt.Fprintf(w, "%8.0f %9.0f %9.0f %8s %8s %8s %8s %9s %8s %6s %7s %7s %8d\n", r.T, r.ProducedPerSec, r.ConsumedPerSec,
		ms(r.SendP50us), ms(r.SendP99us), ms(r.SendP999us), ms(r.SendMaxUs), mib(r.DataBytes), mib(r.BrokerRSS),
		num(r.BrokerGoroutines), num(r.ShortDepth), num(r.LongDepth), r.Restarts)
}

// printSoakSummary prints the totals, how the per-interval p99, data
// directory and RSS moved, and the checker's verdict.
func printSoakSummary(w io.Writer, r *bench.SoakResult) {
	fmt.Fprintf(w, "sends:      %d acknowledged, %d failed; p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n",
		r.Produced, r.SendFailed, r.SendP50us, r.SendP99us, r.SendP999us, r.SendMaxUs)
	full := r.Rows
	if n := len(full); n > 1 && full[n-1].Seconds < full[0].Seconds {
		full = full[:n-1] // the last, partial interval
	}
	if len(full) > 0 && full[0].SendP99us != nil {
		first, worst := *full[0].SendP99us, 0.0
		for _, row := range full {
			if row.SendP99us != nil {
				worst = max(worst, *row.SendP99us)
			}
		}
		fmt.Fprintf(w, "p99:        first interval %.0f us, worst %.0f us (%.2f x the first)\n", first, worst, worst/first)
	}
	if len(full) > 0 {
		a, b := full[0], full[len(full)-1]
		fmt.Fprintf(w, "data dir:   first %.1f MiB, last %.1f MiB; broker RSS first %.1f MiB, last %.1f MiB; goroutines %d -> %d\n",
			float64(a.DataBytes)/(1<<20), float64(b.DataBytes)/(1<<20), float64(a.BrokerRSS)/(1<<20), float64(b.BrokerRSS)/(1<<20),
			a.BrokerGoroutines, b.BrokerGoroutines)
	}
	fmt.Fprintf(w, "consumers:  %d restarts, %d acks failed\n", r.Restarts, r.AckFailed)
	verdict := "OK"
	if !r.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "verdict:    lost %d, duplicated %d, %d consumed: %s\n", r.Lost, r.Duplicated, r.Consumed, verdict)
}
