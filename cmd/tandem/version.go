package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"

	"github.com/tandemmq/tandem/server"
)

func init() {
	register(command{name: "version", summary: "print the version, commit and Go version",
		run: func(args []string) int {
			if len(args) > 0 {
				fmt.Fprintf(os.Stderr, "tandem version: unexpected arguments %q\n", args)
				return exitCannot
			}
			fmt.Println(versionLine())
			return exitOK
		}})
}

// buildCommit is the commit when the build stamps none of its own
// (`make build` sets it with -ldflags "-X main.buildCommit=..."; go
// build's VCS stamp is off under -buildvcs=false).
var buildCommit string

// versionLine is `tandem version`'s line: "tandem VERSION (commit C,
// go GOVERSION)", the commit from the build's VCS stamp (vcs.revision,
// "+dirty" when vcs.modified), else buildCommit, else "unknown" (go run,
// go test, -buildvcs=false without make).
func versionLine() string {
	commit := "unknown"
	if buildCommit != "" {
		commit = buildCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev string
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			commit = rev
			if len(commit) > 12 {
				commit = commit[:12]
			}
			if dirty {
				commit += "+dirty"
			}
		}
	}
	return fmt.Sprintf("tandem %s (commit %s, %s %s/%s)", server.Version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// runHelp is `tandem help [COMMAND [SUBCOMMAND]]`: the command's flags
// (its own -h, on stdout) and where the reference is.
func runHelp(args []string, stdout io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "tandem help: unknown command %q\n", args[0])
		usage(os.Stderr)
		return exitCannot
	}
	fmt.Fprintf(stdout, "tandem %s: %s\n\n", c.name, c.summary)
	// Each command prints its flags on -h to os.Stderr (flag's default
	// output, read when it prints): send them to stdout here.
	saved := os.Stderr
	if f, isFile := stdout.(*os.File); isFile {
		os.Stderr = f
	}
	c.run(append(args[1:], "-h"))
	os.Stderr = saved
	fmt.Fprintf(stdout, "\nThe reference of every command, flag, output key and exit code: docs/cli.md (section \"tandem %s\").\n", c.name)
	return exitOK
}

// commandNames returns the registered commands, sorted.
func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
