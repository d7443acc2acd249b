#!/usr/bin/env bash
# Set-up for the model-store tests: Azurite 3.35.0 from npm (the version compose.yaml pins; 3.37
# needs Node 22) into tests/azurite/node_modules. Prints why and exits non-zero when it cannot.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are needed for Azurite" >&2
  exit 1
fi
if [ ! -x tests/azurite/node_modules/.bin/azurite-blob ]; then
  echo "==> installing Azurite 3.35.0 (npm ci)" >&2
  (cd tests/azurite && npm ci --no-audit --no-fund --silent) || { echo "npm ci for Azurite failed" >&2; exit 1; }
fi
