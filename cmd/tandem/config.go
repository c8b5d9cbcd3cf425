package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tandemmq/tandem/broker"
	"github.com/tandemmq/tandem/config"
)

func init() {
	register(command{
		name:    "config",
		summary: "config check FILE: print the effective configuration as JSON",
		run:     func(args []string) int { return runConfig(args, os.Stdout, os.Stderr) },
	})
}

// runConfig implements `tandem config check FILE` (docs/cli.md): the effective
// configuration as JSON on stdout and exit 0; warnings on stderr (still
// exit 0); errors "FILE:LINE: message" on stderr and exit 1.
func runConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: tandem config check FILE")
		return exitCannot
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: tandem config check FILE") }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitCannot
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitCannot
	}
	cfg, warns, err := config.Load(fs.Arg(0))
	for _, w := range warns {
		fmt.Fprintln(stderr, w)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitCannot
	}
	// tandem run refuses what this build cannot run: so does check.
	if err := broker.Check(cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return exitCannot
	}
	out, err := cfg.JSON()
	if err != nil {
		fmt.Fprintln(stderr, "tandem config check:", err)
		return exitCannot
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return exitOK
}
