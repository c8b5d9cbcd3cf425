// Command testsummary turns `go test -json` into go test's usual output
// and keeps a tally for `make test` (issue 16): a package's "ok" or
// "FAIL" line, the output of failed tests, build errors; and in a state
// file the tests that passed, failed and were skipped (with the reason),
// so that the last step can list the skips and end with one line
// "tests: N passed, N failed, N skipped".
//
//	go test -json ./... | go run ./internal/testsummary -state FILE
//	go run ./internal/testsummary -state FILE -summary
//
// It exits 1 when a test or a package failed (or the build did).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	// ImportPath names the package of build output (go1.24+).
	ImportPath string
}

func main() {
	state := flag.String("state", "", "file the tally is appended to (required)")
	summary := flag.Bool("summary", false, "print the skipped tests and the totals of the state file")
	flag.Parse()
	if *state == "" {
		fmt.Fprintln(os.Stderr, "testsummary: -state FILE is required")
		os.Exit(2)
	}
	if *summary {
		os.Exit(printSummary(*state, os.Stdout))
	}
	f, err := os.OpenFile(*state, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	defer f.Close()
	failed, err := filter(os.Stdin, os.Stdout, f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// filter copies go test's usual output from the JSON in r to w and
// appends "pass|fail|skip<TAB>package<TAB>test<TAB>reason" lines to st.
func filter(r io.Reader, w, st io.Writer) (failed bool, err error) {
	out := map[string][]string{} // package + test -> its output, until it ends
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintln(w, string(line)) // not JSON: go's own messages
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "build-fail":
			failed = true
		case "output":
			if e.Test == "" {
				// Package-level lines: "ok", "FAIL", "PASS", panics.
				if s := e.Output; s != "PASS\n" && !strings.HasPrefix(s, "=== ") && !strings.HasPrefix(s, "testing: warning: no tests") {
					fmt.Fprint(w, s)
				}
				continue
			}
			out[key] = append(out[key], e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" {
					failed = true
				}
				continue
			}
			lines := out[key]
			delete(out, key)
			if e.Action == "fail" {
				failed = true
				for _, l := range lines {
					if !strings.HasPrefix(l, "=== ") {
						fmt.Fprint(w, l)
					}
				}
			}
			fmt.Fprintf(st, "%s\t%s\t%s\t%s\n", e.Action, e.Package, e.Test, reason(e.Action, lines))
		}
	}
	return failed, sc.Err()
}

// reason is a skipped test's message: its output lines after "=== RUN"
// and before "--- SKIP", joined.
func reason(action string, lines []string) string {
	if action != "skip" {
		return ""
	}
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	s := strings.Join(parts, " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// printSummary lists the skipped tests and subtests with their reasons
// and prints the totals.
func printSummary(path string, w io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		return 2
	}
	n := map[string]int{}
	var skips []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, "\t", 4)
		if len(f) < 4 {
			continue // an empty line
		}
		n[f[0]]++
		if f[0] == "skip" {
			skips = append(skips, fmt.Sprintf("  %s %s: %s", f[1], f[2], f[3]))
		}
	}
	sort.Strings(skips)
	if len(skips) > 0 {
		fmt.Fprintf(w, "== skipped tests (%d):\n%s\n", len(skips), strings.Join(skips, "\n"))
	}
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped\n", n["pass"], n["fail"], n["skip"])
	if n["fail"] > 0 {
		return 1
	}
	return 0
}
