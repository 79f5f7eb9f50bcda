#!/usr/bin/env bash
# Bootstraps a Redis Cluster. Both `make demo` and docker-compose use it, so
# the part that runs here is the part compose runs.
#
#   redis-cluster.sh create REPLICAS HOST:PORT...
#       Waits for every node to answer PING, makes a cluster of them with
#       REPLICAS replicas per master (skipped if it already is one), and waits
#       for cluster_state:ok on every node.
#   redis-cluster.sh start DIR PORT...
#       Starts one cluster-mode redis-server per port on 127.0.0.1, each in
#       DIR/PORT, and prints their pids, one per line, for the caller to stop.
set -euo pipefail

wait_ping() {
  local addr=$1 i
  for i in $(seq 1 100); do
    redis-cli -h "${addr%:*}" -p "${addr##*:}" ${REDIS_PASSWORD:+-a "$REDIS_PASSWORD" --no-auth-warning} ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-cluster: $addr does not answer PING" >&2
  return 1
}

cluster_ok() {
  redis-cli -h "${1%:*}" -p "${1##*:}" ${REDIS_PASSWORD:+-a "$REDIS_PASSWORD" --no-auth-warning} cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

create() {
  local replicas=$1; shift
  local addr i
  for addr in "$@"; do wait_ping "$addr"; done
  if ! cluster_ok "$1"; then
    redis-cli ${REDIS_PASSWORD:+-a "$REDIS_PASSWORD" --no-auth-warning} --cluster create "$@" \
      --cluster-replicas "$replicas" --cluster-yes >/dev/null
  fi
  for addr in "$@"; do
    for i in $(seq 1 300); do
      cluster_ok "$addr" && break
      [ "$i" = 300 ] && { echo "redis-cluster: $addr never reached cluster_state:ok" >&2; return 1; }
      sleep 0.1
    done
  done
  echo "redis-cluster: ok: $*" >&2
}

start() {
  local dir=$1; shift
  local port
  for port in "$@"; do
    mkdir -p "$dir/$port"
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$dir/$port/nodes.conf" --dir "$dir/$port" \
      --save '' --appendonly no --daemonize no \
      >"$dir/$port/redis.log" 2>&1 &
    echo $!
  done
}

case "${1:-}" in
  create) shift; create "$@" ;;
  start) shift; start "$@" ;;
  *) echo "usage: $0 create REPLICAS HOST:PORT... | start DIR PORT..." >&2; exit 2 ;;
esac
