#!/bin/bash
# shapes.sh: issue 8's five `tandem bench` shapes, each run RUNS times
# (default 3) against a fresh `tandem run` (new data directory), 1 KiB
# durable messages; prints every run's JSON and the median of each key.
#
#   bench/shapes.sh [TANDEM_BINARY] [RUNS]      (needs jq)
#
# Ports 47101 (clients) and 47102 (management) must be free. Set CONFIG to
# run the brokers with a broker.xml (e.g. <journal-type>NIO</journal-type>),
# BROKER_ENV to run them with environment settings (e.g. GOMAXPROCS=1).
# Each run also prints the messages journal's appends per fdatasync (from
# /metrics): how much the group commit gathered. Shape (a) also measures
# the synchronous floor (tandem bench --floor-dir, in the broker's data
# directory) and reports send_p50_over_floor.
set -u
BIN=${1:-./tandem}
RUNS=${2:-3}
PORT=127.0.0.1:47101
HTTP=127.0.0.1:47102
OUT=$(mktemp -d /tmp/tandem-shapes-XXXX)

broker() { # starts a fresh broker; sets BP and D
	D=$(mktemp -d /tmp/tandem-shape-broker-XXXX)
	${BROKER_ENV:+env $BROKER_ENV} "$BIN" run ${CONFIG:+--config "$CONFIG"} --data "$D/data" --listen "tcp://$PORT" --http "$HTTP" >"$D/broker.log" 2>&1 &
	BP=$!
	for _ in $(seq 1 200); do grep -q 'management:' "$D/broker.log" && break; sleep 0.05; done
	grep 'store:' "$D/broker.log" | head -1 >&2
}
stop() { kill "$BP"; wait "$BP" 2>/dev/null; rm -rf "$D"; sleep 1; }
batch() { # the messages journal's appends per fdatasync so far
	curl -s "http://$HTTP/metrics" | awk '/^tandem_journal_appends_total\{journal="messages"\}/ {a=$2}
		/^tandem_journal_syncs_total\{journal="messages"\}/ {s=$2} END {if (s > 0) printf "%.2f", a/s; else print "null"}'
}

shape() { # NAME bench-args...
	local name=$1
	shift
	for i in $(seq 1 "$RUNS"); do
		broker
		if [ "$1" = "drain" ]; then # (d): fill, then drain with one consumer
			"$BIN" bench --url "tcp://$PORT" --json --phase produce --count "$2" --window 256 \
				--destination queue://drain >/dev/null
			"$BIN" bench --url "tcp://$PORT" --json --phase consume --count "$2" --consumers 1 \
				--destination queue://drain --http "$HTTP" >"$OUT/$name.$i.json"
		elif [ "$name" = a ]; then # the synchronous floor, measured in the same run (docs/performance.md)
			"$BIN" bench --url "tcp://$PORT" --json --http "$HTTP" --floor-dir "$D" "$@" >"$OUT/$name.$i.json"
		else
			"$BIN" bench --url "tcp://$PORT" --json --http "$HTTP" "$@" >"$OUT/$name.$i.json"
		fi
		rc=$?
		echo "$name run $i (exit $rc): $(cat "$OUT/$name.$i.json") appends_per_sync=$(batch)"
		stop
	done
	echo -n "$name median:"
	for k in produced_per_sec consumed_per_sec send_p50_us send_p99_us send_p999_us send_p9999_us send_max_us send_p50_over_floor floor.sum_p50_us broker_cpu_us_per_msg lost duplicated; do
		echo -n " $k=$(jq -s "[.[].$k | select(. != null)] | sort | if length == 0 then null else .[(length - 1) / 2 | floor] end | if type == \"number\" then (. * 10 | round / 10) else . end" "$OUT"/$name.*.json)"
	done
	echo
}

shape a --producers 1 --window 1 --count 20000
shape b --producers 8 --window 1 --count 40000
shape c --producers 1 --window 256 --count 100000
shape d drain 100000
shape e --producers 8 --window 1 --count 40000 --phase produce
rm -rf "$OUT"
