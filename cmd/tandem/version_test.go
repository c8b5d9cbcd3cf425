package main

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/tandemmq/tandem/server"
)

func TestVersionLine(t *testing.T) {
	got := versionLine()
	if !strings.HasPrefix(got, "tandem "+server.Version+" (commit ") || !strings.Contains(got, runtime.Version()) {
		t.Fatalf("version line %q", got)
	}
	buildCommit = "abc123"
	defer func() { buildCommit = "" }()
	stamped := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			stamped = stamped || s.Key == "vcs.revision"
		}
	}
	if got := versionLine(); !stamped && !strings.Contains(got, "commit abc123") {
		t.Fatalf("version line with a build commit and no VCS stamp: %q", got)
	}
}

// TestHelpCommand: `tandem help COMMAND [SUB]` prints the flags on stdout
// and points to docs/cli.md; an unknown command exits 1.
func TestHelpCommand(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if code := runHelp([]string{"queue", "create"}, f); code != exitOK {
		t.Fatalf("help queue create: exit %d", code)
	}
	if code := runHelp([]string{"producer"}, f); code != exitOK {
		t.Fatalf("help producer: exit %d", code)
	}
	b, _ := os.ReadFile(f.Name())
	out := string(b)
	for _, want := range []string{"-multicast", "-durable", "docs/cli.md", "-destination", `section "tandem producer"`} {
		if !strings.Contains(out, want) {
			t.Errorf("help output lacks %q:\n%s", want, out)
		}
	}
	if code := runHelp([]string{"nope"}, f); code != exitCannot {
		t.Fatalf("help of an unknown command: exit %d", code)
	}
}
