#!/usr/bin/env bash
# Chooses the SKAB benchmark's settings by cross-validation across folders
# (see training/sensor_anomaly_training/cross_validate_skab.py).
#   scripts/cross-validate-skab.sh                  # table: choose on each folder, report the others
#   scripts/cross-validate-skab.sh --write valve1   # choose on valve1, write scripts/skab-settings.json
# Reads ../shared/datasets/skab (or --data DIR); set-up progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python >&2
[ -x target/release/sensor-anomaly ] || cargo build --release --quiet >&2
exec .venv/bin/python scripts/cross_validate_skab.py "$@"
