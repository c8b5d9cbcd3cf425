package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilterAndSummary: go test's usual output from its JSON, a failed
// test's output shown, a passed one's not, and the skips with their
// reasons in the summary.
func TestFilterAndSummary(t *testing.T) {
	in := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:3: noise of a passing test\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: no chromium on PATH\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:1: boom\n"}
{"Action":"output","Package":"p","Test":"TestC","Output":"--- FAIL: TestC (0.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Output":"FAIL\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}
{"Action":"fail","Package":"p"}
`
	var out, st bytes.Buffer
	failed, err := filter(strings.NewReader(in), &out, &st)
	if err != nil || !failed {
		t.Fatalf("filter: failed %v, %v", failed, err)
	}
	got := out.String()
	if strings.Contains(got, "noise") || !strings.Contains(got, "boom") || !strings.Contains(got, "FAIL\tp\t0.01s") {
		t.Fatalf("output:\n%s", got)
	}
	path := filepath.Join(t.TempDir(), "state")
	os.WriteFile(path, st.Bytes(), 0o644)
	var sum bytes.Buffer
	if code := printSummary(path, &sum); code != 1 {
		t.Fatalf("summary exit %d, want 1 (a failure)", code)
	}
	if s := sum.String(); !strings.Contains(s, "p TestB: b_test.go:9: no chromium on PATH") || !strings.HasSuffix(s, "tests: 1 passed, 1 failed, 1 skipped\n") {
		t.Fatalf("summary:\n%s", s)
	}
}
