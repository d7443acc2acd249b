#!/usr/bin/env bash
# Set-up for the browser test: Debian's Chromium (apt) and playwright-core (npm, no browser
# download). Prints why and exits non-zero when it cannot be done (not root, no apt, no node).
set -uo pipefail
cd "$(dirname "$0")/.."
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "Chromium is not installed at $chromium and cannot be installed here (needs root and apt-get: apt-get install chromium)" >&2
    exit 1
  fi
  echo "==> installing Debian's chromium (apt-get)" >&2
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1; then
    echo "apt-get install chromium failed" >&2
    exit 1
  fi
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are needed for the browser test" >&2
  exit 1
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "==> installing playwright-core (npm ci; no browser download)" >&2
  (cd tests/browser && npm ci --no-audit --no-fund --silent) || { echo "npm ci failed" >&2; exit 1; }
fi
