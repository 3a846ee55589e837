#!/usr/bin/env bash
# Makes Chromium available for the inspector's browser tests (driven by playwright-core, which
# cannot download browsers here): CHROMIUM_PATH or /usr/bin/chromium if present, else Debian's
# `chromium` package when running as root on Debian/Ubuntu, else a one-line instruction.
# Never fails the caller: without Chromium the browser tests skip themselves and say why.
set -uo pipefail
if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "${CHROMIUM_PATH}" ]; then exit 0; fi
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 && [ -r /etc/debian_version ]; then
  echo "agentry: installing chromium from Debian's packages (for the inspector's browser tests)" >&2
  if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    exit 0
  fi
  echo "agentry: installing chromium failed; the inspector's browser tests will be skipped" >&2
  exit 0
fi
echo "agentry: chromium not found: install it (Debian/Ubuntu: sudo apt-get install chromium) or set CHROMIUM_PATH; the inspector's browser tests will be skipped" >&2
exit 0
