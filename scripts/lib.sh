# Shared by demo.sh and bench.sh: free ports, readiness waits, and stopping
# what a script started, by pid.

# free_port prints a loopback port with nothing listening on it or on
# port+10000 (a Redis Cluster bus port).
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
       ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

# wait_port HOST:PORT waits up to 15 s for something to listen there.
wait_port() {
  local i
  for i in $(seq 1 150); do
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  return 1
}

# stop_pids PID... sends SIGTERM, waits up to 15 s, then SIGKILLs.
stop_pids() {
  local pid i
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# The scripts that source this file set BIN (where the binaries are) and DIR
# (a scratch directory). What they start goes into PIDS, or WORKER_PID for
# the worker, and cleanup, their EXIT trap, stops all of it and removes DIR.
PIDS=()
WORKER_PID=""
cleanup() {
  [ -n "$WORKER_PID" ] && stop_pids "$WORKER_PID"
  [ "${#PIDS[@]}" -gt 0 ] && stop_pids "${PIDS[@]}"
  rm -rf "$DIR"
}

# distinct_ports N prints N different free ports.
distinct_ports() {
  local ports=() p
  while [ "${#ports[@]}" -lt "$1" ]; do
    p=$(free_port)
    [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
  done
  echo "${ports[@]}"
}

# start_stack ENTITIES EXTRA starts a 3-master Redis Cluster and NATS on
# free ports and seeds ENTITIES entities × 8 features. It exports NATS_URL
# and REDIS_ADDRS, and leaves EXTRA more free ports in EXTRA_PORTS.
start_stack() {
  local ports addrs nats_port
  read -r -a ports <<<"$(distinct_ports $((4 + $2)))"
  addrs="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
  nats_port=${ports[3]}
  EXTRA_PORTS=("${ports[@]:4}")
  echo "== Redis Cluster: 3 masters on $addrs"
  PIDS+=($(scripts/redis-cluster.sh start "$DIR/redis" "${ports[@]:0:3}"))
  scripts/redis-cluster.sh create 0 ${addrs//,/ }
  echo "== NATS on 127.0.0.1:$nats_port"
  "$BIN/nats-server" -a 127.0.0.1 -p "$nats_port" >"$DIR/nats.log" 2>&1 &
  PIDS+=($!)
  wait_port "127.0.0.1:$nats_port" || { tail -5 "$DIR/nats.log" >&2; return 1; }
  export NATS_URL="nats://127.0.0.1:$nats_port" REDIS_ADDRS="$addrs"
  echo "== seeding $1 entities × 8 features"
  "$BIN/loadgen" seed --entities "$1" --features 8
}

# start_worker LOG ARGS... starts a worker with ARGS, logging to LOG, and
# waits until it serves. It sets WORKER_PID.
start_worker() {
  local log=$1 i
  shift
  "$BIN/worker" "$@" >"$log" 2>&1 &
  WORKER_PID=$!
  for i in $(seq 1 300); do
    grep -q '"worker serving"' "$log" && return 0
    if ! kill -0 "$WORKER_PID" 2>/dev/null; then
      WORKER_PID=""
      echo "worker $* exited:" >&2
      tail -5 "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "worker $* not serving after 30s:" >&2
  tail -5 "$log" >&2
  return 1
}

# stop_worker drains the worker with SIGTERM and waits for it.
stop_worker() {
  stop_pids "$WORKER_PID"
  WORKER_PID=""
}
