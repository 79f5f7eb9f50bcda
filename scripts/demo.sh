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
trap cleanup EXIT

start_stack "$ENTITIES" 1
metrics_port=${EXTRA_PORTS[0]}
echo "== worker (2 connections per node; metrics at http://127.0.0.1:$metrics_port/metrics)"
start_worker "$OUT/worker.log" --conns-per-node 2 --metrics-addr "127.0.0.1:$metrics_port"

for inflight in 64 256; do
  echo
  echo "== load: 1 entity × 4 features, $inflight in flight, $DURATION"
  "$BIN/loadgen" run --entities "$ENTITIES" --features 8 --concurrency "$inflight" \
    --duration "$DURATION" --label "batched, $inflight in flight" --budget 3 \
    --json "$OUT/report-$inflight.json" --csv "$OUT/series-$inflight.csv" --plot "$OUT/plot-$inflight.svg"
done
echo
echo "== worker drained with SIGTERM"
stop_worker
grep '"worker stopped"' "$OUT/worker.log" || true
echo "reports, time series and plots are in $OUT/"
