#!/usr/bin/env bash
# `make demo`: a local 3-master Redis Cluster, NATS, one worker and the load
# generator on loopback, with a printed report. Everything it starts is
# stopped when it ends, however it ends.
#   DEMO_DURATION  measured time of each load run (default 10s)
#   DEMO_ENTITIES  entities seeded (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
BIN=${BIN:-bin}
DURATION=${DEMO_DURATION:-10s}
ENTITIES=${DEMO_ENTITIES:-100000}
OUT=out/demo
mkdir -p "$OUT"
DIR=$(mktemp -d)
PIDS=()
WORKER_PID=""
cleanup() {
  [ -n "$WORKER_PID" ] && stop_pids "$WORKER_PID"
  [ "${#PIDS[@]}" -gt 0 ] && stop_pids "${PIDS[@]}"
  rm -rf "$DIR"
}
trap cleanup EXIT

ports=($(free_port) $(free_port) $(free_port))
addrs="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
echo "== Redis Cluster: 3 masters on $addrs"
PIDS+=($(scripts/redis-cluster.sh start "$DIR/redis" "${ports[@]}"))
scripts/redis-cluster.sh create 0 ${addrs//,/ }

nats_port=$(free_port)
echo "== NATS on 127.0.0.1:$nats_port"
"$BIN/nats-server" -a 127.0.0.1 -p "$nats_port" >"$DIR/nats.log" 2>&1 &
PIDS+=($!)
wait_port "127.0.0.1:$nats_port"
export NATS_URL="nats://127.0.0.1:$nats_port" REDIS_ADDRS="$addrs"

echo "== seeding $ENTITIES entities × 8 features"
"$BIN/loadgen" seed --entities "$ENTITIES" --features 8

metrics_port=$(free_port)
echo "== worker (2 connections per node; metrics at http://127.0.0.1:$metrics_port/metrics)"
"$BIN/worker" --conns-per-node 2 --metrics-addr "127.0.0.1:$metrics_port" >"$OUT/worker.log" 2>&1 &
WORKER_PID=$!
wait_log "$OUT/worker.log" '"worker serving"'

for inflight in 64 256; do
  echo
  echo "== load: 1 entity × 4 features, $inflight in flight, $DURATION"
  "$BIN/loadgen" run --entities "$ENTITIES" --features 8 --concurrency "$inflight" \
    --duration "$DURATION" --label "batched, $inflight in flight" --budget 3 \
    --json "$OUT/report-$inflight.json" --csv "$OUT/series-$inflight.csv" --plot "$OUT/plot-$inflight.svg"
done
echo
echo "== worker drained with SIGTERM"
stop_pids "$WORKER_PID"
WORKER_PID=""
grep '"worker stopped"' "$OUT/worker.log" || true
echo "reports, time series and plots are in $OUT/"
