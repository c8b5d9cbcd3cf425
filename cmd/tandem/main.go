// Command tandem is the Tandem broker and its tools. See docs/cli.md for the
// contract: run, create, config check, perf-journal, data, producer,
// consumer, bench, cluster status.
package main

import (
	"fmt"
	"io"
	"os"
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

// Exit codes (docs/cli.md).
const (
	exitOK     = 0
	exitCannot = 1 // usage, configuration, I/O
	exitFailed = 2 // the operation failed
	exitHalted = 3 // the broker halted on a storage error
)

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: tandem <command> [flags]\n\ncommands:\n")
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\n`tandem help COMMAND` lists a command's flags; docs/cli.md is the reference.\n")
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(exitCannot)
	}
	switch os.Args[1] {
	case "-h", "--help":
		usage(os.Stdout)
		os.Exit(exitOK)
	case "help":
		os.Exit(runHelp(os.Args[2:], os.Stdout))
	case "--version", "-version", "-v":
		fmt.Println(versionLine())
		os.Exit(exitOK)
	}
	// Two-word commands ("config check", "data verify", "cluster status")
	// register under their first word and parse the second themselves.
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "tandem: unknown command %q\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(exitCannot)
	}
	os.Exit(c.run(os.Args[2:]))
}
