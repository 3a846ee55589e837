#!/usr/bin/env bash
# Makes `nats-server` available: already on PATH (or in /usr/sbin), else installs Debian's
# package when running as root on Debian/Ubuntu, else stops with a one-line instruction.
set -euo pipefail
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "agentry: installing nats-server from Debian's packages" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
  exit 0
fi
echo "agentry: nats-server not found: install it (Debian/Ubuntu: sudo apt-get install nats-server) or set NATS_URL to a running server" >&2
exit 1
