#!/usr/bin/env bash
# Every detector on SKAB by its outlier-detection protocol (see scripts/benchmark_skab.py).
#   scripts/benchmark-skab.sh            # table
#   scripts/benchmark-skab.sh --json     # one JSON object per detector
# Reads ../shared/datasets/skab (or --data DIR); set-up progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python >&2
exec .venv/bin/python scripts/benchmark_skab.py "$@"
