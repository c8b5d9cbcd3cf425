#!/bin/bash
# tls.sh: TLS against plain TCP in the windowed shape (issue 8's shape c:
# one producer, 256 sends in flight, 1 KiB durable messages, one consumer),
# interleaved in the same sitting: plain, TLS, plain, TLS, ... RUNS times
# each (default 5) against a fresh `tandem run`; prints every run's JSON and
# the medians, then TLS's throughput as a share of plain TCP's.
#
#   bench/tls.sh [TANDEM_BINARY] [RUNS] [COUNT]      (needs jq and openssl)
#
# Ports 47101 (clients) and 47102 (management) must be free. The brokers
# differ only in the acceptor's sslEnabled (a self-signed CA and an EC P-256
# certificate made here); the client trusts the CA (trustStorePath).
set -u
BIN=${1:-./tandem}
RUNS=${2:-5}
COUNT=${3:-100000}
PORT=127.0.0.1:47101
HTTP=127.0.0.1:47102
OUT=$(mktemp -d /tmp/tandem-tls-XXXX)

# A CA and the broker's certificate (for 127.0.0.1), as a PEM key store.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
	-keyout "$OUT/ca.key" -out "$OUT/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=broker \
	-keyout "$OUT/broker.key" -out "$OUT/broker.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$OUT/san.ext"
openssl x509 -req -in "$OUT/broker.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key" -CAcreateserial -days 2 \
	-extfile "$OUT/san.ext" -out "$OUT/broker.crt" 2>/dev/null
cat "$OUT/broker.crt" "$OUT/broker.key" >"$OUT/broker.pem"

config() { # MODE (plain|tls) -> broker.xml
	local params=""
	[ "$1" = tls ] && params="?sslEnabled=true;keyStorePath=$OUT/broker.pem"
	cat >"$OUT/$1.xml" <<EOF
<configuration xmlns="urn:activemq"><core xmlns="urn:activemq:core">
  <acceptors><acceptor name="artemis">tcp://$PORT$params</acceptor></acceptors>
  <management-http-address>$HTTP</management-http-address>
</core></configuration>
EOF
}
config plain
config tls

run() { # MODE RUN
	local mode=$1 i=$2 url="tcp://$PORT"
	[ "$mode" = tls ] && url="tcp://$PORT?sslEnabled=true&trustStorePath=$OUT/ca.pem"
	D=$(mktemp -d /tmp/tandem-tls-broker-XXXX)
	"$BIN" run --config "$OUT/$mode.xml" --data "$D/data" >"$D/broker.log" 2>&1 &
	BP=$!
	for _ in $(seq 1 200); do grep -q 'management:' "$D/broker.log" && break; sleep 0.05; done
	"$BIN" bench --url "$url" --json --http "$HTTP" --producers 1 --window 256 --count "$COUNT" >"$OUT/$mode.$i.json"
	echo "$mode run $i (exit $?): $(cat "$OUT/$mode.$i.json")"
	kill "$BP"
	wait "$BP" 2>/dev/null
	rm -rf "$D"
	sleep 1
}

for i in $(seq 1 "$RUNS"); do
	run plain "$i"
	run tls "$i"
done

median() { # MODE KEY
	jq -s "[.[].$2 | select(. != null)] | sort | if length == 0 then null else .[(length - 1) / 2 | floor] end" "$OUT"/$1.*.json
}
for mode in plain tls; do
	echo -n "$mode median:"
	for k in produced_per_sec consumed_per_sec send_p50_us send_p99_us broker_cpu_us_per_msg lost duplicated; do
		echo -n " $k=$(median "$mode" "$k")"
	done
	echo
done
p=$(median plain produced_per_sec)
t=$(median tls produced_per_sec)
echo "TLS produced_per_sec is $(jq -n "$t / $p * 100 | . * 10 | round / 10")% of plain TCP's (goal: at least 85%)"
