package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConfigCheckErrors checks exit codes and the FILE:LINE format on stderr.
func TestConfigCheckErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "broker.xml")
	writeFile(t, bad, "<configuration>\n<core>\n<journal-typ>NIO</journal-typ>\n</core>\n</configuration>\n")
	var out, errb bytes.Buffer
	if rc := runConfig([]string{"check", bad}, &out, &errb); rc != exitCannot {
		t.Fatalf("exit %d", rc)
	}
	if want := bad + ":3: unknown element <journal-typ>"; !strings.HasPrefix(errb.String(), want) || out.Len() != 0 {
		t.Errorf("stderr %q, want prefix %q; stdout %q", errb.String(), want, out.String())
	}
	warn := filepath.Join(dir, "warn.xml")
	writeFile(t, warn, "<configuration>\n<core>\n<security-settings/>\n</core>\n</configuration>\n")
	out.Reset()
	errb.Reset()
	if rc := runConfig([]string{"check", warn}, &out, &errb); rc != exitOK {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	if want := warn + ":3: warning: <security-settings> not supported yet, ignored\n"; errb.String() != want || out.Len() == 0 {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
	for _, args := range [][]string{{}, {"chek", warn}, {"check"}, {"check", filepath.Join(dir, "missing.xml")}} {
		if rc := runConfig(args, &out, &errb); rc != exitCannot {
			t.Errorf("%v: exit %d", args, rc)
		}
	}
}
