#!/usr/bin/env bash
# Runs the whole pipeline on this machine: simulated fleet -> Stream Analytics windows ->
# ScoreWindows over HTTP with host-shaped invocations -> embedded SQLite store -> report.
# Any option is passed to `sensor-anomaly demo` (see `--help`), e.g. --devices 50 --json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec target/release/sensor-anomaly demo "$@"
