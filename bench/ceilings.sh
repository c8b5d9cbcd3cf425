#!/bin/bash
# ceilings.sh: what this disk allows the journal's perf-journal goals, measured
# in one sitting next to perf-journal itself.
#
#   bench/ceilings.sh DIR [TANDEM_BINARY]     (needs fio and jq: apt-get install fio jq)
#
# DIR must be on the file system under test (it gets a 512 MiB scratch file
# and a journal directory, both removed afterwards).
#
# W closed-loop writers of S bytes, each waiting for its append, keep at most
# W*S bytes in flight. Group commit can at best turn them into one write +
# fdatasync of W*S bytes at a time (or k writes of W*S/k bytes each with k in
# flight), so fio's write+fdatasync at those sizes and depths bounds the
# journal's records/s from above, whatever the software does. This script
# prints that bound next to the journal's figure and the raw 1 MiB baseline
# the goals are expressed against.
set -eu
DIR=${1:?usage: bench/ceilings.sh DIR [TANDEM_BINARY]}
BIN=${2:-./bin/tandem}
W=${WRITERS:-64}
S=${SIZE:-1024}
command -v fio >/dev/null || { echo "ceilings.sh: fio is missing (apt-get install fio)" >&2; exit 1; }
command -v jq >/dev/null || { echo "ceilings.sh: jq is missing (apt-get install jq)" >&2; exit 1; }
mkdir -p "$DIR"
SCRATCH=$(mktemp -d "$DIR/ceilings-XXXX")
trap 'rm -rf "$SCRATCH"' EXIT

fio_run() { # BS DEPTH: prints "MB/s IOPS" of write + fdatasync each, O_DIRECT, pre-written file
	fio --name=c --filename="$SCRATCH/fio.dat" --size=512M --bs="$1" --rw=write --ioengine=io_uring \
		--direct=1 --fdatasync=1 --iodepth="$2" --overwrite=1 --time_based --runtime=3 \
		--output-format=json 2>/dev/null | jq -r '.jobs[0].write | "\(.bw_bytes / 1e6) \(.iops)"'
}

inflight=$((W * S))
echo "disk: $(df -h "$DIR" | awk 'NR==2 {print $1, $6}'), ${W} writers x ${S} B = ${inflight} B in flight at most"
printf '%-34s %10s %10s %14s\n' "fio write+fdatasync (O_DIRECT)" "MB/s" "writes/s" "records/s max"
best=0
for k in 1 2 4 8; do
	bs=$((inflight / k))
	[ "$bs" -lt 4096 ] && break
	read -r mb iops < <(fio_run "$bs" "$k")
	recs=$(jq -n "$iops * $bs / $S | floor")
	printf '%-34s %10.0f %10.0f %14s\n' "  ${bs} B, ${k} in flight" "$mb" "$iops" "$recs"
	[ "$recs" -gt "$best" ] && best=$recs
done
read -r mb1 _ < <(fio_run 1M 1)
printf '%-34s %10.0f\n' "  1 MiB, 1 in flight" "$mb1"

echo
printf '%-10s %12s %9s %11s %12s %16s\n' backend records/s MB/s raw_bw_MB/s "MB/s÷raw_bw" "records÷ceiling"
for t in NIO DIRECT ASYNCIO; do
	"$BIN" perf-journal --dir "$SCRATCH/j" --journal-type "$t" --writers "$W" --size "$S" \
		--duration 5s --json --clean >"$SCRATCH/pj.json"
	jq -r --argjson best "$best" '[.backend, (.records_per_sec|floor), (.mb_per_sec*10|round/10),
		(.raw_bw_mb_per_sec|floor), (.mb_per_sec/.raw_bw_mb_per_sec*100|round/100),
		(.records_per_sec/$best*100|round/100)] | @tsv' "$SCRATCH/pj.json" |
		awk -F'\t' '{printf "%-10s %12s %9s %11s %12s %16s\n", $1, $2, $3, $4, $5, $6}'
	rm -rf "$SCRATCH/j"
done
echo
echo "records÷ceiling: the journal's records/s over the best fio line above (1.0 = the disk's limit"
echo "for this many records in flight); MB/s÷raw_bw: the goal's ratio (raw_bw: perf-journal's 1 MiB"
echo "appends to a growing file with fdatasync, measured in the same run)."
