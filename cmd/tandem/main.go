// Command tandem is the Tandem broker and its tools. See CLI.md for the
// contract: run, create, config check, perf-journal, data, producer,
// consumer, bench, cluster status.
package main

import (
	"fmt"
	"os"
	"sort"
)

// A command is one subcommand. Each lives in its own file and registers
// itself in init, so parallel work on different subcommands never touches
// the same file.
type command struct {
	name    string
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// Exit codes (CLI.md).
const (
	exitOK     = 0
	exitCannot = 1 // usage, configuration, I/O
	exitFailed = 2 // the operation failed
	exitHalted = 3 // the broker halted on a storage error
)

func usage() {
	fmt.Fprintf(os.Stderr, "usage: tandem <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-14s %s\n", n, commands[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(exitCannot)
		}
		os.Exit(exitOK)
	}
	// Two-word commands ("config check", "data verify", "cluster status")
	// register under their first word and parse the second themselves.
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "tandem: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(exitCannot)
	}
	os.Exit(c.run(os.Args[2:]))
}
