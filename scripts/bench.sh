#!/usr/bin/env bash
# `make bench`: the batched worker side by side with its baselines
# (internal/baseline), on a local 3-master Redis Cluster and NATS.
#
# For each strategy (echo, naive, per-request, batched), request shape (1×4
# and 10×4) and closed-loop concurrency (64 and 256), a fresh worker is
# started, loadgen runs (warmup, then BENCH_DURATION measured) and the
# worker is stopped with SIGTERM. Then echo and batched run an open loop at
# half batched's best 1×4 rate. The JSON reports stay in out/bench/, and
# the markdown table with the ratios is printed and kept in
# out/bench/table.md. Everything started is stopped when the script ends,
# however it ends. About 3 minutes with the defaults.
#
#   BENCH_DURATION    measured time of each run (default 8s)
#   BENCH_ENTITIES    entities seeded, 8 features each (default 100000)
#   BENCH_STRATEGIES  strategies to run (default "echo naive per-request batched")
#   BENCH_PROFILE     if set, a 5 s CPU profile of batched at 1×4, 256 in
#                     flight, is saved to out/bench/batched-1x4-256.pprof
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
BIN=${BIN:-bin}
DURATION=${BENCH_DURATION:-8s}
ENTITIES=${BENCH_ENTITIES:-100000}
STRATEGIES=${BENCH_STRATEGIES:-echo naive per-request batched}
SHAPES="1x4 10x4"
CONCURRENCIES="64 256"
CONNS_PER_NODE=2
BUDGET=$((CONNS_PER_NODE + 1)) # the batched worker's data connections and its one topology connection
OUT=out/bench
DIR=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM # through the EXIT trap

die() { echo "bench: $*" >&2; exit 1; }

echo "== building $BIN/worker, $BIN/loadgen, $BIN/nats-server"
./scripts/install-deps.sh
go build -o "$BIN/" ./cmd/worker ./cmd/loadgen
go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.pprof "$OUT"/table.md

start_stack "$ENTITIES" 1
pprof_addr="127.0.0.1:${EXTRA_PORTS[0]}"

# start_strategy STRATEGY [ARGS...] starts a worker and waits until it serves.
start_strategy() {
  start_worker "$DIR/worker-$1.log" --strategy "$1" --conns-per-node "$CONNS_PER_NODE" "${@:2}" ||
    die "worker --strategy $1 did not start"
}

FAILED=()
# load NAME STRATEGY SHAPE LOADGEN-ARGS... runs loadgen into $OUT/NAME.json.
load() {
  local name=$1 strategy=$2 shape=$3
  local check=()
  [ "$strategy" = echo ] && check=(--no-check) # echo's values are placeholders
  echo "-- $name"
  if ! "$BIN/loadgen" run --label "$strategy" --entities "$ENTITIES" --features 8 \
      --req-entities "${shape%x*}" --req-features "${shape#*x}" --budget "$BUDGET" \
      --duration "$DURATION" --warmup 1s "${check[@]}" "${@:4}" \
      --json "$OUT/$name.json" >"$DIR/$name.txt" 2>&1; then
    FAILED+=("$name")
    echo "   loadgen failed:" >&2
    tail -5 "$DIR/$name.txt" >&2
  fi
  grep -E '^(requests|latency|errors)' "$DIR/$name.txt" | sed 's/^/   /' || true
}

echo "== closed loop, $DURATION per run"
files=()
for strategy in $STRATEGIES; do
  for shape in $SHAPES; do
    for c in $CONCURRENCIES; do
      name="$strategy-$shape-$c"
      profile=() profiler=""
      if [ -n "${BENCH_PROFILE:-}" ] && [ "$name" = batched-1x4-256 ]; then
        profile=(--pprof-addr "$pprof_addr")
      fi
      start_strategy "$strategy" "${profile[@]}"
      if [ "${#profile[@]}" -gt 0 ]; then
        # Five seconds in the middle of the measured window.
        (sleep 2 && curl -sf -o "$OUT/$name.pprof" "http://$pprof_addr/debug/pprof/profile?seconds=5" ||
          echo "bench: no CPU profile" >&2) &
        profiler=$!
      fi
      load "$name" "$strategy" "$shape" --concurrency "$c"
      [ -z "$profiler" ] || wait "$profiler" || true
      stop_worker
      [ -f "$OUT/$name.json" ] && files+=("$OUT/$name.json")
    done
  done
done

# Half of batched's best closed-loop rate at 1×4: a load it sustains, so
# that the open loop compares latency rather than saturation.
best=0
for f in "$OUT"/batched-1x4-*.json; do
  [ -f "$f" ] || continue
  # The report's own throughput is the first one at two spaces of indent.
  t=$(grep -m1 '^  "throughput":' "$f" | tr -dc '0-9.')
  best=$(awk -v a="$best" -v b="${t:-0}" 'BEGIN { print (b > a ? b : a) }')
done
rate=$(awk -v b="$best" 'BEGIN { printf "%d", b / 2 }')
if [ "$rate" -gt 0 ]; then
  echo "== open loop at $rate req/s (half of batched's best 1×4 rate), $DURATION per run"
  for strategy in echo batched; do
    [[ " $STRATEGIES " == *" $strategy "* ]] || continue
    name="$strategy-1x4-open"
    start_strategy "$strategy"
    load "$name" "$strategy" 1x4 --mode open --rate "$rate"
    stop_worker
    [ -f "$OUT/$name.json" ] && files+=("$OUT/$name.json")
  done
else
  echo "== no batched 1×4 run: no open loop"
fi

[ "${#files[@]}" -gt 0 ] || die "no run produced a report"
echo
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $CONNS_PER_NODE connections per node"
echo
"$BIN/loadgen" table \
  --compare "throughput batched/echo 1x4 closed" \
  --compare "throughput batched/per-request 10x4 closed" \
  --compare "conns naive/batched" \
  --compare "p99 batched/echo 1x4 open" \
  "${files[@]}" | tee "$OUT/table.md"
echo
echo "reports are in $OUT/"
[ "${#FAILED[@]}" -eq 0 ] || die "loadgen failed for: ${FAILED[*]}"
