package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// cli runs a management command in process and returns its exit code and
// output.
func cli(t *testing.T, run func([]string, *bytes.Buffer, *bytes.Buffer) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func queueCmd(args []string, out, errb *bytes.Buffer) int   { return runQueue(args, out, errb) }
func addressCmd(args []string, out, errb *bytes.Buffer) int { return runAddress(args, out, errb) }
func connCmd(args []string, out, errb *bytes.Buffer) int    { return runConnection(args, out, errb) }

// TestQueueAddressCommands: `tandem queue` and `tandem address` against a
// broker, over the wire protocol.
func TestQueueAddressCommands(t *testing.T) {
	url := memBroker(t)
	if code, out, errs := cli(t, queueCmd, "create", "--url", url, "--queue", "orders", "--durable=false"); code != exitOK || !strings.Contains(out, `queue "orders" created on address "orders" (anycast, durable false)`) {
		t.Fatalf("queue create: %d %q %q", code, out, errs)
	}
	if code := runProducer([]string{"--url", url, "--destination", "queue://orders", "--count", "5", "--id-prefix", "P", "--non-durable"}); code != exitOK {
		t.Fatalf("producer exit %d", code)
	}
	code, out, _ := cli(t, queueCmd, "stat", "--url", url, "--queue", "orders")
	if code != exitOK || !strings.Contains(out, "NAME") || !strings.Contains(out, "ENQUEUED") {
		t.Fatalf("queue stat: %d %q", code, out)
	}
	fields := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])
	if want := []string{"orders", "orders", "anycast", "false", "5", "0", "5", "0", "false"}; strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Fatalf("queue stat row %q, want %q", fields, want)
	}
	code, out, _ = cli(t, queueCmd, "stat", "--url", url, "--json")
	var qs []map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &qs) != nil || len(qs) != 1 || qs[0]["depth"] != float64(5) || qs[0]["acknowledged"] != float64(0) {
		t.Fatalf("queue stat --json: %d %q", code, out)
	}
	code, out, _ = cli(t, queueCmd, "browse", "--url", url, "--queue", "orders", "--limit", "2", "--preview", "4")
	if code != exitOK || !strings.Contains(out, "5 message(s) waiting; showing 2 from 0") || !strings.Contains(out, `duplicate-id "P-1"`) || !strings.Contains(out, `body (text) "P-1x"`) {
		t.Fatalf("queue browse: %d %q", code, out)
	}
	if code, out, errs := cli(t, queueCmd, "create", "--url", url, "--queue", "later"); code != exitOK {
		t.Fatalf("create later: %d %q %q", code, out, errs)
	}
	// orders is not durable, later is: refused, exit 2 with the reason.
	if code, _, errs := cli(t, queueCmd, "move", "--url", url, "--queue", "orders", "--to", "later"); code != exitFailed || !strings.Contains(errs, "not durable") {
		t.Fatalf("move from a non-durable queue: %d %q", code, errs)
	}
	if code, out, errs := cli(t, queueCmd, "pause", "--url", url, "--queue", "orders"); code != exitOK || !strings.Contains(out, `queue "orders" paused`) {
		t.Fatalf("pause: %d %q %q", code, out, errs)
	}
	if code, out, _ := cli(t, queueCmd, "purge", "--url", url, "--queue", "orders"); code != exitOK || !strings.Contains(out, "5 message(s) purged") {
		t.Fatalf("purge: %d %q", code, out)
	}
	if code, _, errs := cli(t, queueCmd, "purge", "--url", url, "--queue", "nope"); code != exitFailed || !strings.Contains(errs, "not found") {
		t.Fatalf("purge of a missing queue: %d %q", code, errs)
	}
	if code, _, errs := cli(t, queueCmd, "purge", "--url", url); code != exitCannot || !strings.Contains(errs, "--queue NAME is required") {
		t.Fatalf("purge without --queue: %d %q", code, errs)
	}
	if code, out, errs := cli(t, addressCmd, "create", "--url", url, "--name", "events", "--multicast"); code != exitOK || !strings.Contains(out, "events") || !strings.Contains(out, "multicast") {
		t.Fatalf("address create: %d %q %q", code, out, errs)
	}
	if code, out, _ := cli(t, addressCmd, "show", "--url", url, "--name", "orders"); code != exitOK || !strings.Contains(out, "anycast") {
		t.Fatalf("address show: %d %q", code, out)
	}
	if code, _, errs := cli(t, addressCmd, "delete", "--url", url, "--name", "orders"); code != exitFailed || !strings.Contains(errs, "delete them first") {
		t.Fatalf("address delete with a queue: %d %q", code, errs)
	}
	if code, out, errs := cli(t, queueCmd, "delete", "--url", url, "--queue", "orders"); code != exitOK || !strings.Contains(out, "deleted") {
		t.Fatalf("queue delete: %d %q %q", code, out, errs)
	}
	if code, out, errs := cli(t, addressCmd, "delete", "--url", url, "--name", "orders"); code != exitOK {
		t.Fatalf("address delete: %d %q %q", code, out, errs)
	}
	if code, out, _ := cli(t, connCmd, "list", "--url", url); code != exitOK || !strings.Contains(out, "tandem-connection-list-") {
		t.Fatalf("connection list (its own connection): %d %q", code, out)
	}
	if code, _, errs := cli(t, queueCmd, "frobnicate"); code != exitCannot || !strings.Contains(errs, "unknown subcommand") {
		t.Fatalf("unknown subcommand: %d %q", code, errs)
	}
}
