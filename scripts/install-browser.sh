#!/usr/bin/env bash
# Installs headless Chromium (Debian's package) for the dashboard's browser tests.
# Idempotent: does nothing when /usr/bin/chromium is already there.  Playwright
# drives it with executable_path=/usr/bin/chromium; `playwright install` (which
# downloads a browser from the web) is never run.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core
