#!/usr/bin/env bash
# Installs the MCP Inspector (npm package @modelcontextprotocol/inspector) into
# a project-local node_modules under .tools/mcp-inspector, for the test that
# drives `creative-hub mcp hub` with `inspector --cli` (tests/mcp/test_inspector.py).
# Needs node and npm (Debian: apt-get install nodejs npm); skips with a note
# when they are missing -- that test then skips too.  Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
dest="$repo/.tools/mcp-inspector"
version="${MCP_INSPECTOR_VERSION:-0.21.1}"
bin="$dest/node_modules/.bin/mcp-inspector"
if [ -x "$bin" ] && [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$version" ]; then
  echo "mcp-inspector $version at $bin"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-mcp-inspector: npm not found (apt-get install nodejs npm); the Inspector test will skip" >&2
  exit 0
fi
mkdir -p "$dest"
[ -f "$dest/package.json" ] || echo '{"name": "creative-hub-tools", "private": true}' > "$dest/package.json"
npm install --prefix "$dest" --no-audit --no-fund --loglevel=error "@modelcontextprotocol/inspector@$version"
echo "$version" > "$dest/.version"
echo "mcp-inspector $version at $bin"
