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
PIDS=()
WORKER_PID=""
cleanup() {
  [ -n "$WORKER_PID" ] && stop_pids "$WORKER_PID"
  [ "${#PIDS[@]}" -gt 0 ] && stop_pids "${PIDS[@]}"
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # through the EXIT trap

die() { echo "bench: $*" >&2; exit 1; }

# distinct_ports N prints N different free ports.
distinct_ports() {
  local ports=() p
  while [ "${#ports[@]}" -lt "$1" ]; do
    p=$(free_port)
    [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
  done
  echo "${ports[@]}"
}

echo "== building $BIN/worker, $BIN/loadgen, $BIN/nats-server"
./scripts/install-deps.sh
go build -o "$BIN/" ./cmd/worker ./cmd/loadgen
go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.pprof "$OUT"/table.md

read -r -a ports <<<"$(distinct_ports 6)"
addrs="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
nats_port=${ports[3]}
pprof_addr="127.0.0.1:${ports[4]}"
echo "== Redis Cluster: 3 masters on $addrs"
PIDS+=($(scripts/redis-cluster.sh start "$DIR/redis" "${ports[@]:0:3}"))
scripts/redis-cluster.sh create 0 ${addrs//,/ }

echo "== NATS on 127.0.0.1:$nats_port"
"$BIN/nats-server" -a 127.0.0.1 -p "$nats_port" >"$DIR/nats.log" 2>&1 &
PIDS+=($!)
wait_port "127.0.0.1:$nats_port" || die "nats-server did not start: $(tail -5 "$DIR/nats.log")"
export NATS_URL="nats://127.0.0.1:$nats_port" REDIS_ADDRS="$addrs"

echo "== seeding $ENTITIES entities × 8 features"
"$BIN/loadgen" seed --entities "$ENTITIES" --features 8

# start_worker STRATEGY [ARGS...] starts a worker and waits until it serves.
start_worker() {
  local log="$DIR/worker-$1.log"
  "$BIN/worker" --strategy "$1" --conns-per-node "$CONNS_PER_NODE" "${@:2}" >"$log" 2>&1 &
  WORKER_PID=$!
  local i
  for i in $(seq 1 300); do
    grep -q '"worker serving"' "$log" && return 0
    kill -0 "$WORKER_PID" 2>/dev/null || { WORKER_PID=""; die "worker --strategy $1 exited: $(tail -5 "$log")"; }
    sleep 0.1
  done
  die "worker --strategy $1 not serving after 30s: $(tail -5 "$log")"
}

stop_worker() {
  stop_pids "$WORKER_PID"
  WORKER_PID=""
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
      start_worker "$strategy" "${profile[@]}"
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
    start_worker "$strategy"
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
