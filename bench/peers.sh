#!/bin/bash
# peers.sh: Tandem against the brokers its users would pick instead, over
# STOMP, in one sitting (issue 15, "Performance"): ActiveMQ Classic (KahaDB,
# journal disk syncs on: its default) and RabbitMQ (a quorum queue), each
# run directly from the Debian packages on free loopback ports with a
# private data directory, next to a fresh `tandem run` (built-in default
# configuration) measured over STOMP, AMQP and its own protocol.
#
#   bench/peers.sh [TANDEM_BINARY] [RUNS]       (root; needs jq, python3)
#
# Environment: RUNS (default 3), PEERS (default "activemq rabbitmq"),
# PROTOS (Tandem's columns, default "stomp amqp tandem"), KEEP=1 keeps the
# temporary directory (logs, every run's JSON).
#
# Every client is `tandem bench`: 1 KiB persistent messages, every send
# with a receipt (STOMP: `receipt` on each SEND, counted acknowledged only
# when its RECEIPT arrives; AMQP: unsettled, settled by the broker; Tandem:
# its send confirmation), one consumer acking each message (with a receipt),
# and the exactly-once check (lost / duplicated) on every run.
#   s8   --producers 8 --window 1   --count 20000  (throughput)
#   win  --producers 1 --window 256 --count 50000  (throughput; pipelined
#        receipts: up to 256 SENDs unanswered per connection)
#   p1   --producers 1 --window 1   --count 10000  (send p50)
# Each run of a shape goes to a fresh queue; the brokers stay up for the
# sitting and each gets one unrecorded warm-up first (the JVM's JIT).
# Within a run the brokers take turns in an order that rotates with the
# run. It prints each run's JSON and then the medians with Tandem/peer
# ratios (Tandem over STOMP against each peer's STOMP).
#
# Peers' durability settings, as generated here:
#   ActiveMQ 5.17: <kahaDB enableJournalDiskSyncs="true"> (the default,
#     written out), persistent:true sends; a SEND's RECEIPT comes after
#     the store has the message (ActiveMQ answers a receipted SEND as a
#     synchronous send).
#   RabbitMQ 3.10: /queue/NAME declared by the STOMP plugin with
#     x-queue-type:quorum and durable:true on every SEND and SUBSCRIBE
#     (checked with rabbitmqctl list_queues), persistent:true sends; the
#     plugin sends a SEND's RECEIPT on the publisher confirm, i.e. once
#     the quorum queue's Raft log (WAL, fsynced) has it.
#
# Nothing is left running: the brokers (and the epmd this starts for
# RabbitMQ on its own port) are stopped on exit, failure, Ctrl-C or
# SIGTERM (after the bench run in progress ends). No
# systemd, no system-wide service: a package install is made with a
# temporary policy-rc.d that forbids starting the packages' services.
set -u
BIN=$(realpath "${1:-./bin/tandem}")
RUNS=${2:-${RUNS:-3}}
PEERS=${PEERS:-activemq rabbitmq}
PROTOS=${PROTOS:-stomp amqp tandem}
log() { echo "peers.sh: $*" >&2; }
for p in $PEERS; do
	case $p in activemq | rabbitmq) ;; *) log "PEERS: unknown peer $p (activemq, rabbitmq)"; exit 2 ;; esac
done
for p in $PROTOS; do
	case $p in stomp | amqp | tandem) ;; *) log "PROTOS: unknown protocol $p (stomp, amqp, tandem)"; exit 2 ;; esac
done

T=$(mktemp -d /tmp/tandem-peers-XXXX)
OUT=$T/out
mkdir -p "$OUT"
GROUPS_=() # process groups this script started (each broker in its own: setsid)
STOPS=()   # graceful stop commands, run before the kills

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for cmd in "${STOPS[@]}"; do eval "$cmd" >/dev/null 2>&1; done
	for ((i = ${#GROUPS_[@]} - 1; i >= 0; i--)); do
		local g=${GROUPS_[i]}
		kill -TERM -- "-$g" 2>/dev/null && for _ in $(seq 1 150); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$g" 2>/dev/null
		wait "$g" 2>/dev/null
	done
	if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
		log "logs and results kept in $T"
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

spawn() { # LOG CMD... : runs CMD in its own process group (its pid), stopped by cleanup
	local out=$1
	shift
	setsid "$@" >"$out" 2>&1 &
	GROUPS_+=($!)
}

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

waitport() { # PORT SECONDS PID NAME
	for _ in $(seq 1 $(($2 * 10))); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		kill -0 "$3" 2>/dev/null || { log "$4 exited while starting"; return 1; }
		sleep 0.1
	done
	log "$4: nothing listens on $1 after $2 s"
	return 1
}

install() {
	local need=()
	case " $PEERS " in *" activemq "*) command -v activemq >/dev/null || need+=(activemq) ;; esac
	case " $PEERS " in *" rabbitmq "*) [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server) ;; esac
	[ ${#need[@]} = 0 ] && return 0
	log "installing ${need[*]}"
	local policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then # the packages must not start their system services
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1
	fi
	apt-get update -q >"$T/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >>"$T/apt.log" 2>&1
	local rc=$?
	[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
	[ $rc = 0 ] || { log "apt-get failed (see $T/apt.log)"; return 1; }
}

# Each start_X sets URL_X, DEST_X (a printf pattern for the queue) and
# HDRS_X (extra bench flags).

start_tandem() {
	local d=$T/tandem port http
	mkdir -p "$d"
	port=$(freeport)
	http=$(freeport)
	# cwd $d: no ./etc/broker.xml, so the built-in default configuration
	spawn "$d/broker.log" env -C "$d" "$BIN" run --data "$d/data" --listen "tcp://127.0.0.1:$port" --http "127.0.0.1:$http"
	waitport "$port" 60 "${GROUPS_[-1]}" tandem || return 1
	URL_tandem=tcp://127.0.0.1:$port
	HTTP_tandem=127.0.0.1:$http
}

start_activemq() {
	local d=$T/activemq port
	mkdir -p "$d/conf" "$d/data" "$d/tmp"
	port=$(freeport)
	cat >"$d/conf/activemq.xml" <<EOF
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="peers" persistent="true"
          dataDirectory="$d/data">
    <persistenceAdapter>
      <kahaDB directory="$d/data/kahadb" enableJournalDiskSyncs="true"/>
    </persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:$port"/>
    </transportConnectors>
  </broker>
</beans>
EOF
	# `activemq console` runs the broker in the foreground (java is its
	# child: the whole group is stopped); the Debian options file gives it
	# -Xms512M -Xmx512M.
	ACTIVEMQ_CONF=$d/conf ACTIVEMQ_DATA=$d/data ACTIVEMQ_TMP=$d/tmp ACTIVEMQ_PIDFILE=$d/pid ACTIVEMQ_USER=$(whoami) \
		spawn "$d/broker.log" activemq console "xbean:file:$d/conf/activemq.xml"
	waitport "$port" 120 "${GROUPS_[-1]}" activemq || return 1
	URL_activemq=tcp://127.0.0.1:$port
	HDRS_activemq=()
}

start_rabbitmq() {
	local d=$T/rabbitmq amqp stomp dist epmd
	mkdir -p "$d/home" "$d/mnesia" "$d/log"
	amqp=$(freeport)
	stomp=$(freeport)
	dist=$(freeport)
	epmd=$(freeport)
	touch "$d/env.conf"
	cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$amqp
stomp.listeners.tcp.1 = 127.0.0.1:$stomp
stomp.default_user = guest
stomp.default_pass = guest
disk_free_limit.absolute = 100MB
log.console = false
EOF
	export HOME=$d/home RABBITMQ_CONF_ENV_FILE=$d/env.conf RABBITMQ_NODENAME=tandempeers$$@localhost \
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$amqp RABBITMQ_DIST_PORT=$dist \
		ERL_EPMD_PORT=$epmd ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log \
		RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config \
		RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins RABBITMQ_PID_FILE=$d/pid \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
	# Our own epmd on our own port, so that none is left behind.
	spawn "$d/epmd.log" epmd -port "$epmd" -address 127.0.0.1
	waitport "$epmd" 10 "${GROUPS_[-1]}" epmd || return 1
	/usr/lib/rabbitmq/bin/rabbitmq-plugins enable --offline rabbitmq_stomp >"$d/plugins.log" 2>&1 ||
		{ log "rabbitmq-plugins failed: $(cat "$d/plugins.log")"; return 1; }
	spawn "$d/broker.log" /usr/lib/rabbitmq/bin/rabbitmq-server
	STOPS+=("/usr/lib/rabbitmq/bin/rabbitmqctl stop '$d/pid'")
	/usr/lib/rabbitmq/bin/rabbitmqctl wait --timeout 180 "$d/pid" >"$d/wait.log" 2>&1 ||
		{ log "rabbitmq did not start: $(tail -3 "$d/wait.log")"; return 1; }
	waitport "$stomp" 60 "$(cat "$d/pid")" rabbitmq || return 1
	URL_rabbitmq=tcp://127.0.0.1:$stomp
	HDRS_rabbitmq=(--stomp-header x-queue-type:quorum --stomp-header durable:true)
}

# bench NAME QUEUE ARGS... : one tandem bench run against column NAME
# (tandem-PROTO or a peer), printing its JSON.
bench() {
	local name=$1 q=$2
	shift 2
	case $name in
	tandem-*)
		"$BIN" bench --protocol "${name#tandem-}" --url "$URL_tandem" --http "$HTTP_tandem" --destination "queue://$q" --json "$@"
		;;
	*)
		local url=URL_$name hdrs="HDRS_$name[@]"
		"$BIN" bench --protocol stomp --url "${!url}" --destination "queue://$q" --stomp-destination "/queue/$q" "${!hdrs}" --json "$@"
		;;
	esac
}

COLS=()
for p in $PROTOS; do COLS+=("tandem-$p"); done
for p in $PEERS; do COLS+=("$p"); done

echo "# date: $(date -u +%FT%TZ)  host: $(hostname)  cpus: $(nproc)  $(uname -r)"
echo "# load before: $(uptime)"
echo "# tandem: $("$BIN" version 2>/dev/null | head -1)"
install || exit 1
for p in $PEERS; do
	case $p in
	activemq) echo "# activemq: $(dpkg-query -W -f '${Version}' activemq 2>/dev/null)" ;;
	rabbitmq) echo "# rabbitmq: $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null)" ;;
	esac
done
start_tandem || exit 1
for p in $PEERS; do
	log "starting $p"
	"start_$p" || exit 1
done

SHAPES=(s8 win p1)
declare -A ARGS=(
	[s8]="--producers 8 --window 1 --count 20000"
	[win]="--producers 1 --window 256 --count 50000"
	[p1]="--producers 1 --window 1 --count 10000"
)

for c in "${COLS[@]}"; do # warm-up, not recorded
	bench "$c" "warm-$c" --producers 1 --window 16 --count 5000 >"$OUT/warm.$c.json"
	echo "warm-up $c (exit $?): $(jq -c '{produced_per_sec, lost, duplicated}' "$OUT/warm.$c.json" 2>/dev/null)"
done
if [ -n "${URL_rabbitmq:-}" ]; then
	echo "# rabbitmq queues: $(/usr/lib/rabbitmq/bin/rabbitmqctl list_queues -q name type durable 2>/dev/null | tr '\t\n' ' ;')"
fi

FAILED=0
for i in $(seq 1 "$RUNS"); do
	n=${#COLS[@]}
	for s in "${SHAPES[@]}"; do
		for ((k = 0; k < n; k++)); do
			c=${COLS[(k + i - 1) % n]} # the order rotates with the run
			# shellcheck disable=SC2086
			bench "$c" "b-$s-$i-$c" ${ARGS[$s]} >"$OUT/$c.$s.$i.json"
			rc=$?
			ok=$(jq -r 'if .lost == 0 and .duplicated == 0 and .produced == .count then "ok" else "BAD" end' "$OUT/$c.$s.$i.json" 2>/dev/null)
			[ "$rc" = 0 ] && [ "$ok" = ok ] || FAILED=1
			echo "$s $c run $i (exit $rc, $ok): $(cat "$OUT/$c.$s.$i.json")"
		done
	done
done
echo "# load after: $(uptime)"

median() { # COL SHAPE KEY
	jq -s "[.[].$3 | select(. != null)] | sort | if length == 0 then null else .[(length - 1) / 2 | floor] end" \
		"$OUT/$1.$2".*.json 2>/dev/null
}
fmt() { [ "$1" = null ] || [ -z "$1" ] && echo - || printf '%.0f' "$1"; }
ratio() { # A B -> A/B
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "null" || b == "null" || a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'
}

echo
echo "Medians of $RUNS runs (msg/s; p1: send p50 in µs, lower is better). Ratios: Tandem over STOMP / the peer (p1: peer / Tandem, so > 1 is Tandem faster)."
hdr="| shape |"
sep="|---|"
for c in "${COLS[@]}"; do hdr+=" $c |"; sep+="---:|"; done
for p in $PEERS; do hdr+=" tandem-stomp / $p |"; sep+="---:|"; done
echo "$hdr"
echo "$sep"
for s in "${SHAPES[@]}"; do
	key=produced_per_sec
	for key in produced_per_sec $([ "$s" = p1 ] && echo send_p50_us); do
		row="| $s ${key/produced_per_sec/msg\/s} |"
		declare -A M=()
		for c in "${COLS[@]}"; do
			M[$c]=$(median "$c" "$s" "$key")
			row+=" $(fmt "${M[$c]}") |"
		done
		for p in $PEERS; do
			if [ "$key" = send_p50_us ]; then
				row+=" $(ratio "${M[$p]}" "${M[tandem-stomp]:-null}") |"
			else
				row+=" $(ratio "${M[tandem-stomp]:-null}" "${M[$p]}") |"
			fi
		done
		echo "$row"
		unset M
	done
done
[ "$FAILED" = 0 ] || { log "some runs failed or lost/duplicated messages (see above)"; exit 1; }
