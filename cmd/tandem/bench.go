package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandemmq/tandem/bench"
	"github.com/tandemmq/tandem/client"
)

func init() {
	register(command{name: "bench", summary: "load-test a broker and verify exactly-once delivery", run: runBench})
}

// runBench is `tandem bench --url URL [--destination queue://NAME]
// [--producers P] [--window W] [--consumers C] [--size BYTES] [--count N]
// [--phase produce|consume|both] [--non-durable] [--http ADDR] [--json]
// [--protocol tandem|stomp|amqp]`.
func runBench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	url := fs.String("url", "tcp://localhost:61616", "broker URL: tcp://host:port or (tcp://a:p,tcp://b:p)?ha=true&...")
	protocol := fs.String("protocol", bench.ProtocolTandem, "tandem (the broker's own), stomp (receipted sends, client-individual acks with receipts) or amqp (unsettled sends, accepts settled once durable)")
	destFlag := fs.String("destination", "queue://bench", "queue://NAME (or topic://NAME with --phase both)")
	producers := fs.Int("producers", 1, "producers, each on its own connection")
	window := fs.Int("window", 1, "sends in flight per producer (1 = each send waits for its acknowledgement)")
	consumers := fs.Int("consumers", 1, "consumers, each on its own connection")
	size := fs.Int("size", 1024, "message body size in bytes")
	count := fs.Int("count", 10000, "messages in total (split over the producers)")
	phase := fs.String("phase", "both", "produce, consume (drain what an earlier produce phase left) or both")
	nonDurable := fs.Bool("non-durable", false, "send non-persistent messages")
	httpAddr := fs.String("http", "", "the broker's management address (host:port) for broker_cpu_us_per_msg")
	asJSON := fs.Bool("json", false, "print one JSON object with the results")
	credit := fs.Int("credit", 1000, "consumer window: messages the broker may send ahead")
	idle := fs.Duration("idle", 5*time.Second, "stop consuming when nothing arrived for this long once producers are done")
	cpuProfile := fs.String("cpuprofile", "", "write the bench process's own CPU profile to FILE")
	timelineFile := fs.String("timeline", "", "write one JSON line per second (rates, send p50/p99/p99.9/max of that second) to FILE")
	floorDir := fs.String("floor-dir", "", "first measure the synchronous floor: O_DIRECT 4 KiB write + fdatasync in DIR (on the broker's disk) and a loopback round trip")
	user := fs.String("user", "", "user (default: the URL's user option, else anonymous)")
	password := fs.String("password", "", "password of --user")
	if err := fs.Parse(args); err != nil {
		return exitCannot
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "tandem bench: %v\n", err)
		return exitCannot
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	dest, err := client.ParseDestination(*destFlag)
	if err != nil {
		return fail(fmt.Errorf("--destination: %w", err))
	}
	ph, err := bench.ParsePhase(*phase)
	if err != nil {
		return fail(fmt.Errorf("--phase: %w", err))
	}
	if *idle <= 0 {
		return fail(fmt.Errorf("--idle must be > 0"))
	}
	cfg := bench.Config{URL: *url, Protocol: *protocol, Destination: dest, Producers: *producers, Window: *window,
		Consumers: *consumers, Size: *size, Count: *count, Phase: ph, NonDurable: *nonDurable,
		Credit: *credit, HTTP: *httpAddr, Idle: *idle, User: *user, Password: *password}
	if *floorDir != "" {
		exe, err := os.Executable()
		if err != nil {
			return fail(fmt.Errorf("--floor-dir: %w", err))
		}
		cfg.FloorDir, cfg.FloorEcho = *floorDir, []string{exe, "bench-echo"}
	}
	if err := cfg.Check(); err != nil {
		return fail(err)
	}
	if *timelineFile != "" {
		f, err := os.Create(*timelineFile)
		if err != nil {
			return fail(fmt.Errorf("--timeline: %w", err))
		}
		defer f.Close()
		cfg.Timeline = f
	}
	var bar *progressBar
	if isTerminal(os.Stderr) {
		bar = &progressBar{w: os.Stderr}
		cfg.Progress = bar.update
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	} else {
		printBench(os.Stdout, res)
	}
	if res.Error != "" {
		fmt.Fprintf(os.Stderr, "tandem bench: %s\n", res.Error)
	}
	if !res.OK() {
		return exitFailed
	}
	return exitOK
}

// printBench writes the result as aligned "key: value" lines.
func printBench(w io.Writer, r *bench.Result) {
	opt := func(v *float64, unit string) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f %s", *v, unit)
	}
	optInt := func(v *int64) string {
		if v == nil {
			return "unknown"
		}
		return fmt.Sprint(*v)
	}
	mode := "durable"
	if !r.Durable {
		mode = "non-durable"
	}
	fmt.Fprintf(w, "phase %s over %s: %d messages of %d bytes (%s), %d producers (window %d), %d consumers\n",
		r.Phase, r.Protocol, r.Count, r.Size, mode, r.Producers, r.Window, r.Consumers)
	if r.Phase != bench.PhaseConsume {
		fmt.Fprintf(w, "produced:   %d in %.2fs, %.0f msgs/s\n", r.Produced, r.ProduceSec, r.ProducedPerSec)
		fmt.Fprintf(w, "send:       p50 %s, p99 %s, p99.9 %s, p99.99 %s, max %s\n",
			opt(r.SendP50us, "us"), opt(r.SendP99us, "us"), opt(r.SendP999us, "us"), opt(r.SendP9999us, "us"), opt(r.SendMaxUs, "us"))
	}
	if r.Phase != bench.PhaseProduce {
		fmt.Fprintf(w, "consumed:   %d in %.2fs, %.0f msgs/s\n", r.Consumed, r.ConsumeSec, r.ConsumedPerSec)
		fmt.Fprintf(w, "verified:   lost %s, duplicated %s", optInt(r.Lost), optInt(r.Duplicated))
		if r.Foreign > 0 {
			fmt.Fprintf(w, ", %d messages of other runs drained", r.Foreign)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "broker CPU: %s per message\n", opt(r.BrokerCPUusPerMsg, "us"))
	if f := r.Floor; f != nil {
		fmt.Fprintf(w, "floor:      disk p50 %.1f us (p99 %.1f, max %.1f), loopback p50 %.1f us (p99 %.1f), sum %.1f us; send p50 / floor %s\n",
			f.DiskP50us, f.DiskP99us, f.DiskMaxUs, f.RTTP50us, f.RTTP99us, f.SumP50us, opt(r.SendP50OverFloor, ""))
	}
	if r.SendFailed > 0 || r.AckFailed > 0 {
		fmt.Fprintf(w, "failed:     %d sends, %d acks\n", r.SendFailed, r.AckFailed)
	}
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressBar draws one line, redrawn in place, on a terminal.
type progressBar struct {
	w    io.Writer
	last int // length of the last line drawn
}

func (b *progressBar) update(p bench.Progress) {
	const width = 30
	done := p.Consumed // both: the consumers are the ones to finish last
	if p.Phase == bench.PhaseProduce {
		done = p.Produced
	}
	frac := 0.0
	if p.Count > 0 {
		frac = min(float64(done)/float64(p.Count), 1)
	}
	n := int(frac * width)
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(max(p.Produced, p.Consumed)) / s
	}
	line := fmt.Sprintf("[%s%s] %3.0f%% produced %d consumed %d of %d  %.0f msgs/s  %s",
		strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, p.Produced, p.Consumed, p.Count,
		rate, p.Elapsed.Round(100*time.Millisecond))
	pad := max(b.last-len(line), 0)
	fmt.Fprintf(b.w, "\r%s%s", line, strings.Repeat(" ", pad))
	b.last = len(line)
	if p.Final {
		fmt.Fprint(b.w, "\r"+strings.Repeat(" ", b.last)+"\r")
	}
}
