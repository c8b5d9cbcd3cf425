#!/bin/bash
# paging.sh: issue 18's paging measurements, in one sitting, each run
# against a fresh `tandem run` (new data directory):
#
#   1. the windowed shape (shapes.sh's c: 1 producer, window 256, 1 KiB
#      durable messages, a consumer draining at the same time) in memory,
#      then with the address paging (max-size-bytes 64 KiB: nearly every
#      message goes through the paging journal; the run reports how many
#      did, from /metrics), and the ratio of the two;
#   2. a paged backlog drained: DRAIN_MB MiB of DRAIN_SIZE-byte messages
#      written with max-size-bytes 16 MiB (nearly all paged), the disk's
#      sequential O_DIRECT read rate of those paging files measured (dd,
#      1 MiB blocks), the page cache dropped when allowed (root), then the
#      backlog drained by one consumer: its MB/s against the disk's;
#   3. the broker's peak resident memory (VmHWM) in each run, next to
#      global-max-size (half of the process's memory by default).
#
#   bench/paging.sh [TANDEM_BINARY] [RUNS]       (needs jq, dd, curl)
#
# DRAIN_MB (default 1024) and DRAIN_SIZE (default 65536, under the 100 KiB
# large-message threshold) size the backlog. Ports 47111 and 47112 must be
# free.
set -u
BIN=${1:-./tandem}
RUNS=${2:-3}
DRAIN_MB=${DRAIN_MB:-1024}
DRAIN_SIZE=${DRAIN_SIZE:-65536}
PORT=127.0.0.1:47111
HTTP=127.0.0.1:47112
OUT=$(mktemp -d /tmp/tandem-paging-XXXX)
trap 'rm -rf "$OUT"' EXIT

config() { # MAX_SIZE_BYTES -> a broker.xml that pages every address past it
	cat <<EOF
<configuration xmlns="urn:activemq">
  <core xmlns="urn:activemq:core">
    <address-settings>
      <address-setting match="#">
        <max-size-bytes>$1</max-size-bytes>
        <address-full-policy>PAGE</address-full-policy>
      </address-setting>
    </address-settings>
  </core>
</configuration>
EOF
}

broker() { # [CONFIG]: starts a fresh broker; sets BP and D
	D=$(mktemp -d /tmp/tandem-paging-broker-XXXX)
	if [ -n "${1:-}" ]; then
		printf '%s\n' "$1" >"$D/broker.xml"
		"$BIN" run --config "$D/broker.xml" --data "$D/data" --listen "tcp://$PORT" --http "$HTTP" >"$D/broker.log" 2>&1 &
	else
		"$BIN" run --data "$D/data" --listen "tcp://$PORT" --http "$HTTP" >"$D/broker.log" 2>&1 &
	fi
	BP=$!
	for _ in $(seq 1 200); do grep -q 'management:' "$D/broker.log" && break; sleep 0.05; done
}
hwm() { awk '/^VmHWM/ {printf "%.0f", $2/1024}' "/proc/$BP/status"; }
metric() { # NAME{labels} -> value
	curl -s "http://$HTTP/metrics" | awk -v k="$1" '$1 == k {print $2}'
}
stop() { kill "$BP"; wait "$BP" 2>/dev/null; rm -rf "$D"; sleep 1; }
median() { # KEY FILES... (numbers)
	local k=$1
	shift
	jq -s "[.[].$k | select(. != null)] | sort | if length == 0 then null else .[(length - 1) / 2 | floor] end | if type == \"number\" then (. * 100 | round / 100) else . end" "$@"
}

gmax=$(free -b | awk '/^Mem:/ {printf "%.0f", $2/2/1048576}')
echo "global-max-size: default, half of the process's memory: ${gmax} MiB (no GOMEMLIMIT or cgroup limit assumed)"

for i in $(seq 1 "$RUNS"); do
	for mode in memory paged; do
		if [ $mode = memory ]; then broker; else broker "$(config 65536)"; fi
		"$BIN" bench --url "tcp://$PORT" --json --http "$HTTP" --producers 1 --window 256 --count 100000 >"$OUT/c.$mode.$i.json"
		paged=$(metric 'tandem_journal_appends_total{journal="paging"}')
		rss=$(hwm)
		jq -c --arg p "${paged:-0}" --arg r "$rss" '. + {paged_appends: ($p | tonumber), rss_peak_mib: ($r | tonumber)}' "$OUT/c.$mode.$i.json" >"$OUT/c.$mode.$i.tmp" && mv "$OUT/c.$mode.$i.tmp" "$OUT/c.$mode.$i.json"
		echo "c $mode run $i: $(jq -c '{produced_per_sec, consumed_per_sec, send_p50_us, send_p99_us, lost, duplicated, paged_appends, rss_peak_mib}' "$OUT/c.$mode.$i.json")"
		stop
	done
	m=$(jq .consumed_per_sec "$OUT/c.memory.$i.json")
	p=$(jq .consumed_per_sec "$OUT/c.paged.$i.json")
	echo "c run $i: paged/memory = $(echo "scale=3; $p / $m" | bc)"

	count=$((DRAIN_MB * 1048576 / DRAIN_SIZE))
	broker "$(config 16777216)"
	"$BIN" bench --url "tcp://$PORT" --json --phase produce --producers 2 --window 32 --size "$DRAIN_SIZE" --count "$count" --destination queue://drain >"$OUT/fill.$i.json"
	paged=$(metric 'tandem_address_paged_bytes{address="drain"}')
	# The disk's sequential read rate over the same files (O_DIRECT, so the
	# page cache does not count), right before the drain (the drain removes
	# them as it goes).
	sync
	files=$(ls "$D"/data/paging/*.tjp 2>/dev/null)
	start=$(date +%s%N)
	bytes=0
	for f in $files; do
		n=$(dd if="$f" of=/dev/null bs=1M iflag=direct 2>&1 | awk '/bytes/ {print $1; exit}')
		bytes=$((bytes + ${n:-0}))
	done
	ns=$(($(date +%s%N) - start))
	disk=$(echo "scale=1; $bytes * 1000 / $ns" | bc)
	dropped=no
	if echo 1 2>/dev/null >/proc/sys/vm/drop_caches; then dropped=yes; fi
	"$BIN" bench --url "tcp://$PORT" --json --phase consume --consumers 1 --count "$count" --destination queue://drain --http "$HTTP" >"$OUT/drain.$i.json"
	rss=$(hwm)
	rate=$(jq ".consumed_per_sec * $DRAIN_SIZE / 1000000 | . * 10 | round / 10" "$OUT/drain.$i.json")
	jq -c --arg d "$disk" --arg r "$rate" --arg p "${paged:-0}" --arg m "$rss" --arg dr "$dropped" \
		'{consumed_per_sec, consumed, duplicated, drain_mb_per_sec: ($r | tonumber), disk_read_mb_per_sec: ($d | tonumber), paged_bytes_before: ($p | tonumber), rss_peak_mib: ($m | tonumber), cache_dropped: $dr}' \
		"$OUT/drain.$i.json" >"$OUT/d.$i.json"
	echo "drain run $i ($(jq .produced_per_sec "$OUT/fill.$i.json") msgs/s filling, ${count} x ${DRAIN_SIZE} B): $(cat "$OUT/d.$i.json") ratio=$(echo "scale=3; $rate / $disk" | bc)"
	stop
done

echo "median c memory: consumed_per_sec=$(median consumed_per_sec "$OUT"/c.memory.*.json) rss_peak_mib=$(median rss_peak_mib "$OUT"/c.memory.*.json)"
echo "median c paged:  consumed_per_sec=$(median consumed_per_sec "$OUT"/c.paged.*.json) paged_appends=$(median paged_appends "$OUT"/c.paged.*.json) rss_peak_mib=$(median rss_peak_mib "$OUT"/c.paged.*.json)"
echo "median drain: drain_mb_per_sec=$(median drain_mb_per_sec "$OUT"/d.*.json) disk_read_mb_per_sec=$(median disk_read_mb_per_sec "$OUT"/d.*.json) rss_peak_mib=$(median rss_peak_mib "$OUT"/d.*.json)"
