#!/usr/bin/env bash
# Installs Dovecot's IMAP server (Debian's dovecot-imapd) for the mail source's IMAP tests.
# Idempotent: does nothing when the dovecot binary is already installed.  The package's
# service is not needed (and is not started here): the tests run their own dovecot on a
# free loopback port with a temp config and a temp maildir.
set -euo pipefail
if command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
# policy-rc.d-less containers may try to start the service; that failing is harmless.
$sudo apt-get install -y --no-install-recommends dovecot-imapd
