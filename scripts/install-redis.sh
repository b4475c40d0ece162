#!/usr/bin/env bash
# Installs redis-server (Debian's package) for the Redis engine's tests and bench.
# Idempotent: does nothing when redis-server is already on PATH.  The package's
# service is not needed (and not started here): the tests run their own
# redis-server on a free loopback port in a temp directory.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends redis-server
