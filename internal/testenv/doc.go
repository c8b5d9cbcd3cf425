// Package testenv hands tests the environment they run in: the PostgreSQL
// database and ZooKeeper ensemble that `make test` starts
// (scripts/test-services), free loopback ports, scratch directories, the
// tandem binary built from this module, and real child processes with their
// output captured to log files.
//
// Services come from the environment: TANDEM_TEST_PG (a pgx URL) and
// TANDEM_TEST_ZK (a ZooKeeper connect string host:port,...). When one is
// unset, the test is skipped with a message naming `make test`; with CI=true
// that is a failure instead, so CI can never pass by skipping.
//
// It owns only test plumbing. It must never be imported by non-test code,
// never start services itself (scripts/test-services does), and never hide
// a failure: anything it cannot provide fails or skips the calling test
// with the reason.
package testenv
