package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tandemmq/tandem/bench"
)

func init() {
	register(command{name: "bench-echo", summary: "the loopback peer of tandem bench --floor-dir (started by it)", run: runBenchEcho})
}

// runBenchEcho is `tandem bench-echo`: it prints a loopback address and
// answers the round trips of one connection (bench.ServeEcho).
func runBenchEcho(args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "tandem bench-echo: unexpected arguments %q\n", args)
		return exitCannot
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.ServeEcho(ctx, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "tandem bench-echo: %v\n", err)
		return exitFailed
	}
	return exitOK
}
