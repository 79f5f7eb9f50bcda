#!/usr/bin/env bash
# Installs what the tests and the demo need on a Debian machine with Go:
# redis-server and redis-cli. Everything else comes from the Go module proxy.
set -euo pipefail
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing redis-server (Debian package)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
# The package may start a system-wide redis on 6379; the project never uses it.
