#!/bin/bash
# replicated.sh: the `tandem bench` shapes against a replicated pair
# coordinated by ZooKeeper, interleaved with the same shapes against a
# single broker, in one sitting (issue 13's performance goals): each run
# gets fresh brokers (new data directories, a new ZooKeeper group), 1 KiB
# durable messages; prints every run's JSON, the medians of both, and the
# ratio replicated / single.
#
#   ZK=host:port,... bench/replicated.sh [TANDEM_BINARY] [RUNS] [SHAPES]
#
# ZK defaults to TANDEM_TEST_ZK (`make services`, then . .scratch/services/env).
# SHAPES is a subset of "a b c sync" (default "a b c"): (a) 1 producer,
# window 1; (b) 8 producers, window 1; (c) 1 producer, window 256; (sync)
# the initial sync of a journal of SYNC_MB MiB (default 1024; 64 KiB
# messages nobody consumes, written to the live alone) to a backup started
# after it, timed by the live (sync_time in its log), against the disk's
# sequential write rate measured right before in the same directory tree
# (dd, 1 MiB O_DIRECT blocks, one fdatasync at the end). Ports 47111-47116
# must be free. Needs jq, curl and dd. REPL_ACK=received runs the pair with
# <replication-ack>received</replication-ack> (Artemis's level: the replica
# acknowledges once written, before its fdatasync).
#
# KINDS (default "single pair") names what each shape runs against, in turn
# within each run: single (one broker), pair (the ZooKeeper pair), quorum
# (a pair coordinated by the quorum vote, with a third broker, the primary
# of another group, as the third voter; ports 47115-47116; ZK unused).
# KINDS="pair quorum" measures the vote's cost while nothing fails against
# the ZooKeeper pair (issue 14); the ratio printed is the second kind over
# the first. VOTE_WAIT (ms, default 5000) is the quorum's vote-retry-wait.
set -u
BIN=${1:-./bin/tandem}
RUNS=${2:-3}
SHAPES=${3:-a b c}
KINDS=${KINDS:-single pair}
ZK=${ZK:-${TANDEM_TEST_ZK:-}}
case " $KINDS $SHAPES " in
*" pair "* | *" sync "*)
	[ -n "$ZK" ] || { echo "replicated.sh: set ZK (or TANDEM_TEST_ZK) to a ZooKeeper connect string" >&2; exit 1; } ;;
esac
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
OUT=$(mktemp -d /tmp/tandem-repl-bench-XXXX)
P1=47111 H1=47112 P2=47113 H2=47114 P3=47115 H3=47116

conf() { # NAME PORT PEERPORT HTTP ROLE GROUP
	cat <<EOF
<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">
  <name>$1</name>
  <journal-type>${JOURNAL_TYPE:-ASYNCIO}</journal-type>
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:$2</acceptor></acceptors>
  <connectors><connector name="artemis">tcp://127.0.0.1:$2</connector><connector name="peer">tcp://127.0.0.1:$3</connector></connectors>
  <management-http-address>127.0.0.1:$4</management-http-address>
  <cluster-user>c</cluster-user><cluster-password>c</cluster-password>
  <cluster-connections><cluster-connection name="c"><connector-ref>artemis</connector-ref>
    <static-connectors><connector-ref>peer</connector-ref></static-connectors></cluster-connection></cluster-connections>
  <ha-policy><replication><$5><manager><properties>
    <property key="connect-string" value="$ZK"/><property key="session-ms" value="10000"/>
    <property key="namespace" value="tandem-bench"/></properties></manager>
    <group-name>$6</group-name>${REPL_ACK:+<replication-ack>$REPL_ACK</replication-ack>}</$5></replication></ha-policy>
</core></configuration>
EOF
}

qconf() { # NAME PORT HTTP ROLE GROUP PEERPORT PEERPORT: a broker of a quorum-vote pair
	cat <<EOF
<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">
  <name>$1</name>
  <journal-type>${JOURNAL_TYPE:-ASYNCIO}</journal-type>
  <acceptors><acceptor name="artemis">tcp://127.0.0.1:$2</acceptor></acceptors>
  <connectors><connector name="artemis">tcp://127.0.0.1:$2</connector><connector name="p1">tcp://127.0.0.1:$6</connector>
    <connector name="p2">tcp://127.0.0.1:$7</connector></connectors>
  <management-http-address>127.0.0.1:$3</management-http-address>
  <cluster-user>c</cluster-user><cluster-password>c</cluster-password>
  <cluster-connections><cluster-connection name="c"><connector-ref>artemis</connector-ref>
    <static-connectors><connector-ref>p1</connector-ref><connector-ref>p2</connector-ref></static-connectors></cluster-connection></cluster-connections>
  <ha-policy><replication><$4><group-name>$5</group-name>${REPL_ACK:+<replication-ack>$REPL_ACK</replication-ack>}
    <vote-retry-wait>${VOTE_WAIT:-5000}</vote-retry-wait></$4></replication></ha-policy>
</core></configuration>
EOF
}

wait_state() { # HTTP JQ-EXPR
	for _ in $(seq 1 600); do
		[ "$(curl -s "http://127.0.0.1:$1/status" | jq -r "$2" 2>/dev/null)" = true ] && return 0
		sleep 0.05
	done
	echo "replicated.sh: broker on $1 never reached $2 (logs kept in $D)" >&2
	KEEP=1
	return 1
}

pair() { # starts a synced pair; sets PIDS and D
	D=$(mktemp -d /tmp/tandem-repl-bench-pair-XXXX)
	local g="g$RANDOM$RANDOM"
	mkdir -p "$D/a/etc" "$D/b/etc"
	conf a $P1 $P2 $H1 primary "$g" >"$D/a/etc/broker.xml"
	conf b $P2 $P1 $H2 backup "$g" >"$D/b/etc/broker.xml"
	(cd "$D/a" && exec "$BIN" run >"$D/a.log" 2>&1) &
	local a=$!
	wait_state $H1 '.state == "active"'
	(cd "$D/b" && exec "$BIN" run >"$D/b.log" 2>&1) &
	PIDS="$a $!"
	wait_state $H1 '.replication.state == "synced"' || { tail -n 5 "$D/a.log" "$D/b.log" >&2; }
	URL=tcp://127.0.0.1:$P1
	HTTP=127.0.0.1:$H1
}

quorum() { # starts a synced quorum-vote pair and a third voter; sets PIDS and D
	D=$(mktemp -d /tmp/tandem-repl-bench-quorum-XXXX)
	mkdir -p "$D/a/etc" "$D/b/etc" "$D/c/etc"
	qconf a $P1 $H1 master g1 $P2 $P3 >"$D/a/etc/broker.xml"
	qconf b $P2 $H2 slave g1 $P1 $P3 >"$D/b/etc/broker.xml"
	qconf c $P3 $H3 master g2 $P1 $P2 >"$D/c/etc/broker.xml"
	(cd "$D/a" && exec "$BIN" run >"$D/a.log" 2>&1) &
	local a=$!
	(cd "$D/c" && exec "$BIN" run >"$D/c.log" 2>&1) &
	local c=$!
	wait_state $H1 '.state == "active"' || { tail -n 5 "$D/a.log" "$D/c.log" >&2; }
	(cd "$D/b" && exec "$BIN" run >"$D/b.log" 2>&1) &
	PIDS="$a $c $!"
	wait_state $H1 '.replication.state == "synced"' || { tail -n 5 "$D/a.log" "$D/b.log" >&2; }
	URL=tcp://127.0.0.1:$P1
	HTTP=127.0.0.1:$H1
}

single() {
	D=$(mktemp -d /tmp/tandem-repl-bench-single-XXXX)
	mkdir -p "$D/data"
	"$BIN" run --data "$D/data" --listen tcp://127.0.0.1:$P1 --http 127.0.0.1:$H1 >"$D/single.log" 2>&1 &
	PIDS=$!
	wait_state $H1 '.state == "active"'
	URL=tcp://127.0.0.1:$P1
	HTTP=127.0.0.1:$H1
}

stop() {
	kill $PIDS 2>/dev/null
	wait $PIDS 2>/dev/null
	if [ -n "${KEEP:-}" ]; then KEEP=; else rm -rf "$D"; fi
	sleep 0.5
}

args() {
	case $1 in
	a) echo --producers 1 --window 1 --count 20000 ;;
	b) echo --producers 8 --window 1 --count 40000 ;;
	c) echo --producers 1 --window 256 --count 100000 ;;
	esac
}

sync_run() { # RUN: the initial sync of SYNC_MB MiB, against dd's rate
	local mb=${SYNC_MB:-1024}
	D=$(mktemp -d /tmp/tandem-repl-bench-sync-XXXX)
	local g="g$RANDOM$RANDOM"
	mkdir -p "$D/a/etc" "$D/b/etc"
	conf a $P1 $P2 $H1 primary "$g" >"$D/a/etc/broker.xml"
	conf b $P2 $P1 $H2 backup "$g" >"$D/b/etc/broker.xml"
	(cd "$D/a" && exec "$BIN" run >"$D/a.log" 2>&1) &
	PIDS=$!
	wait_state $H1 '.state == "active"'
	"$BIN" bench --url tcp://127.0.0.1:$P1 --json --phase produce --producers 2 --window 32 --size 65536 \
		--count $((mb * 16)) --destination queue://sync >/dev/null
	# What the sync copies: the segment files (not the pool's free ones).
	local bytes
	bytes=$(find "$D/a/data" -type f \( -name '*.tj' -o -name '*.tjb' -o -name '*.tjp' -o -name '*.tjl' \) -printf '%s\n' | awk '{s += $1} END {print s + 0}')
	local ddout ddsec
	ddout=$(dd if=/dev/zero of="$D/b/ddtest" bs=1M count="$mb" oflag=direct conv=fdatasync 2>&1 | tail -1)
	rm -f "$D/b/ddtest"
	ddsec=$(echo "$ddout" | awk -F, '{print $(NF-1)}' | awk '{print $1}')
	(cd "$D/b" && exec "$BIN" run >"$D/b.log" 2>&1) &
	PIDS="$PIDS $!"
	wait_state $H1 '.replication.state == "synced"'
	local st
	st=$(grep -o 'msg="replica synced[^"]*".*sync_time=[0-9.]*[a-zµ]*' "$D/a.log" | tail -1 | sed 's/.*sync_time=//')
	local sec
	sec=$(echo "$st" | awk '/ms$/ {sub(/ms$/, ""); print $1 / 1000; next} /[µu]s$/ {sub(/[µu]s$/, ""); print $1 / 1e6; next} /m[0-9.]*s$/ {split($1, p, "m"); sub(/s$/, "", p[2]); print p[1] * 60 + p[2]; next} {sub(/s$/, ""); print $1}')
	jq -n --argjson b "$bytes" --argjson s "$sec" --argjson mb "$mb" --argjson dd "$ddsec" \
		'{journal_bytes: $b, sync_seconds: $s, sync_mb_per_sec: ($b / $s / 1e6 * 10 | round / 10), disk_write_mb_per_sec: ($mb * 1048576 / $dd / 1e6 * 10 | round / 10)} | . + {ratio: (.sync_mb_per_sec / .disk_write_mb_per_sec * 100 | round / 100)}' >"$OUT/sync.$1.json"
	echo "sync run $1: $(cat "$OUT/sync.$1.json")"
	stop
}

for s in $SHAPES; do
	if [ "$s" = sync ]; then
		for i in $(seq 1 "$RUNS"); do sync_run "$i"; done
		echo "sync median: $(jq -s -c '{sync_mb_per_sec: ([.[].sync_mb_per_sec] | sort | .[(length - 1) / 2 | floor]), disk_write_mb_per_sec: ([.[].disk_write_mb_per_sec] | sort | .[(length - 1) / 2 | floor]), ratio: ([.[].ratio] | sort | .[(length - 1) / 2 | floor])}' "$OUT"/sync.*.json)"
		continue
	fi
	for i in $(seq 1 "$RUNS"); do
		for kind in $KINDS; do
			$kind
			# shellcheck disable=SC2046
			"$BIN" bench --url "$URL" --json --http "$HTTP" $(args "$s") --phase produce >"$OUT/$s.$kind.$i.json"
			echo "$s $kind run $i: $(cat "$OUT/$s.$kind.$i.json")"
			stop
		done
	done
	med() { jq -s "[.[].$2 | select(. != null)] | sort | if length == 0 then null else .[(length - 1) / 2 | floor] end" "$OUT"/$s.$1.*.json; }
	read -r k1 k2 _ <<<"$KINDS"
	sp=$(med "$k1" produced_per_sec) pp=$(med "$k2" produced_per_sec)
	s50=$(med "$k1" send_p50_us) p50=$(med "$k2" send_p50_us)
	echo "$s median: $k1 ${sp} msgs/s p50 ${s50} us; $k2 ${pp} msgs/s p50 ${p50} us; throughput ratio $k2/$k1 $(jq -n "$pp / $sp * 100 | round / 100"); p50 difference $(jq -n "$p50 - $s50") us"
done
rm -rf "$OUT"
