#!/bin/bash
# soak.sh: issue 20's soak. Starts a fresh `tandem run`, measures its
# maximum for the soak's load (a `tandem bench` with the same producers,
# window and consumers), then runs `tandem soak` at half of it for the
# duration: durable 1 KiB messages from 4 producers (8 sends in flight
# each), 2 consumers of a short-lived queue that restart in turn every
# 30 s, and a long-lived queue (every 50th message) whose consumer keeps
# 5000 messages, so long-lived records sit among short-lived ones in the
# journal (compaction's pattern). It prints a row per minute (throughput,
# send p50/p99/p99.9/max, the data directory's size, the broker's RSS and
# goroutines, the queues' depths), a summary, and the checker's verdict;
# then the broker is stopped and `tandem data verify` checks its files.
#
#   bench/soak.sh [--duration 10m] [--interval 1m] [--rate R] [--bin ./tandem] [--keep]
#
# --rate skips the calibration. The data directory is under TMPDIR (or
# /tmp); --keep leaves it. Exit status: the soak's (0 when lost = 0,
# duplicated = 0 and nothing failed), else verify's.
set -u
DURATION=10m
INTERVAL=1m
RATE=
BIN=./tandem
KEEP=
while [ $# -gt 0 ]; do
	case $1 in
	--duration) DURATION=$2; shift 2 ;;
	--interval) INTERVAL=$2; shift 2 ;;
	--rate) RATE=$2; shift 2 ;;
	--bin) BIN=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	*) echo "soak.sh: unknown argument $1" >&2; exit 1 ;;
	esac
done
command -v jq >/dev/null || { echo "soak.sh: jq is missing (apt-get install jq)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=127.0.0.1:$(free_port)
HTTP=127.0.0.1:$(free_port)
D=$(mktemp -d "${TMPDIR:-/tmp}/tandem-soak-XXXX")
"$BIN" run --data "$D/data" --listen "tcp://$PORT" --http "$HTTP" >"$D/broker.log" 2>&1 &
BP=$!
cleanup() {
	kill "$BP" 2>/dev/null && wait "$BP" 2>/dev/null
	[ -n "$KEEP" ] || rm -rf "$D"
}
trap cleanup EXIT
for _ in $(seq 1 400); do grep -q 'management:' "$D/broker.log" && break; sleep 0.05; done
grep -q 'management:' "$D/broker.log" || { cat "$D/broker.log" >&2; exit 1; }
echo "broker: $(grep -E 'store:|cpu:' "$D/broker.log" | tr -s ' ' | tr '\n' ';')"
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)$( [ -r /proc/pressure/cpu ] && echo ", cpu pressure $(awk '/some/ {print $2, $3}' /proc/pressure/cpu)")"
if [ -z "$RATE" ]; then
	MAX=$("$BIN" bench --url "tcp://$PORT" --destination queue://soak.calibrate --json --producers 4 --window 8 \
		--consumers 2 --count 40000 | jq '.produced_per_sec')
	RATE=$(jq -n "$MAX / 2 | floor")
	echo "maximum: $MAX msgs/s (4 producers x 8 in flight, 2 consumers); soak rate $RATE msgs/s"
fi
"$BIN" soak --url "tcp://$PORT" --http "$HTTP" --data-dir "$D/data" --duration "$DURATION" --interval "$INTERVAL" --rate "$RATE"
rc=$?
echo "machine: load $(cut -d' ' -f1-3 /proc/loadavg)$( [ -r /proc/pressure/cpu ] && echo ", cpu pressure $(awk '/some/ {print $2, $3}' /proc/pressure/cpu)")"
kill "$BP" && wait "$BP" 2>/dev/null
if ! "$BIN" data verify "$D/data" >"$D/verify.txt" 2>&1; then
	echo "data verify: FAILED"; cat "$D/verify.txt"
	[ $rc -eq 0 ] && rc=2
else
	echo "data verify: clean"
fi
exit $rc
