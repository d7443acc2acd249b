#!/usr/bin/env bash
# Every test: Rust unit and integration tests (real ONNX Runtime, real HTTP, real SQLite),
# the Python training tests, and Python/Rust score parity on the committed default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python

echo "==> Rust tests" >&2
cargo test --release --quiet

echo "==> Python training tests" >&2
.venv/bin/python -m unittest discover -s scripts/tests

echo "==> Python/Rust parity on models/default.onnx" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/sensor-anomaly simulate --devices 4 --hours 3 --seed 11 --fault-rate 1 --out "$work/samples.jsonl"
target/release/sensor-anomaly window --input "$work/samples.jsonl" --out "$work/windows.jsonl" --size-secs 60
.venv/bin/python scripts/parity.py --model models/default.onnx --windows "$work/windows.jsonl"

echo "==> all tests passed" >&2
