// Package adversary holds the adversarial suite: each test starts a real
// broker process (`tandem run` with its defaults), runs one attack a buggy
// or hostile client could make (floods without reading, huge credit,
// thousands of idle connections, stalled large frames, log floods, HTTP
// floods) while a well-behaved client does round trips, and asserts the
// bounds docs/limits.md promises: the broker stays alive, its peak RSS stays
// under a limit stated in the test, the well-behaved client keeps completing
// round trips, and the log stays small.
//
// An attack runs at full strength for -adversary.duration (default 3s, the
// CI setting; run e.g. `go test ./internal/adversary -adversary.duration=5m`
// for a long run) and at least until the well-behaved client completed a
// few round trips under it. No assertion is on timing: deadlines are
// generous and only bound liveness.
//
// It owns no production code.
package adversary
