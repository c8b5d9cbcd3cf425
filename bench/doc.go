// Package bench is Tandem's load generator, behind `tandem bench` (CLI.md):
// P producers (each on its own connection, with at most W sends
// unconfirmed; W=1 means each send waits for its acknowledgement) and C
// consumers (each on its own connection, acknowledging every message
// individually with pipelined acks) against one destination; phases
// produce, consume or both.
//
// It measures throughput, the latency of every send (a log-linear
// histogram, Histogram) and the broker's CPU time per message (from the
// management endpoint's /status cpu_seconds), and it verifies that every
// acknowledged send was consumed exactly once (Checker): message IDs are
// RUN.PRODUCER-SEQ, carried as the duplicate ID (durable sends) and as the
// "id" property (non-durable sends, which get no duplicate ID so that the
// broker's duplicate cache is not involved).
//
// shapes.sh runs issue 8's five shapes against fresh `tandem run`s and
// prints the medians; tls.sh runs the windowed shape over plain TCP and
// over TLS, interleaved (docs/security.md has the numbers).
//
// It owns nothing in the broker and never changes broker state except by
// sending and consuming messages (and auto-creating the destination's
// queue as any client does). It reports what it saw: it never retries a
// failed send or hides a lost message.
package bench
