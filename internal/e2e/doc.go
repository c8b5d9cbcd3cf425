// Package e2e holds end-to-end tests of the broker as a real process:
// `tandem run` is built and started on free ports with a temporary data
// directory, driven with the Go client, killed with SIGKILL and restarted,
// and every message of a run is classified as RELIABILITY.md defines
// (lost, unexpected, duplicated, recovered).
//
// It owns no production code. Its tests never assert on timing; they loop
// with random kill times and use generous deadlines for liveness.
package e2e
