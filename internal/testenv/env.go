package testenv

import (
	"os"
	"strings"
	"testing"
)

// Environment variables that scripts/test-services exports.
const (
	EnvPG = "TANDEM_TEST_PG" // pgx URL of a database the tests may use
	EnvZK = "TANDEM_TEST_ZK" // ZooKeeper connect string: host:port,host:port,...
)

// InCI reports whether the tests run under CI (CI=true or CI=1), where a
// missing service is a failure, not a skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// Require returns the value of the environment variable name. When it is
// unset or empty the test is skipped with a message naming `make test`, or
// fails when InCI.
func Require(t testing.TB, name, what string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v != "" {
		return v
	}
	msg := what + " not available: " + name + " is unset; run `make test` (or `make services && . .scratch/services/env`)"
	if InCI() {
		t.Fatal("CI=true: " + msg)
	}
	t.Skip(msg)
	return ""
}

// PG returns the pgx URL of the test database (TANDEM_TEST_PG), e.g.
// postgres://postgres@127.0.0.1:PORT/tandem?sslmode=disable. Tests share it:
// use table names or prefixes of their own (see UniqueName), or PGDatabase
// for a database of the test's own.
func PG(t testing.TB) string {
	t.Helper()
	return Require(t, EnvPG, "PostgreSQL")
}

// ZK returns the ZooKeeper connect string (TANDEM_TEST_ZK), e.g.
// 127.0.0.1:21811,127.0.0.1:21812,127.0.0.1:21813. Tests share the
// ensemble: keep znodes under a path of the test's own (see UniqueName).
func ZK(t testing.TB) string {
	t.Helper()
	return Require(t, EnvZK, "ZooKeeper")
}

// ZKServers returns the ensemble's addresses, one host:port per node, in
// the order of TANDEM_TEST_ZK.
func ZKServers(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, s := range strings.Split(ZK(t), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s=%q names no server", EnvZK, os.Getenv(EnvZK))
	}
	return out
}
