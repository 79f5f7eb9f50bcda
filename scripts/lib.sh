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

# wait_log FILE TEXT waits up to 60 s for TEXT to appear in FILE.
wait_log() {
  local i
  for i in $(seq 1 600); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no '$2' in $1 after 60s:" >&2
  tail -20 "$1" >&2
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
