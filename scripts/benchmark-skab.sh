#!/usr/bin/env bash
# Every detector on SKAB by its outlier-detection protocol (see training/sensor_anomaly_training/benchmark_skab.py).
#   scripts/benchmark-skab.sh            # table
#   scripts/benchmark-skab.sh --json     # per detector: per-file tp/fp/fn/tn, pooled per folder and overall
#   scripts/benchmark-skab.sh --data DIR # any folder of SKAB-format CSV files, at any depth
# Reads ../shared/datasets/skab (or --data DIR); set-up progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python >&2
exec .venv/bin/python scripts/benchmark_skab.py "$@"
