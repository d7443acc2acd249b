#!/usr/bin/env bash
# Every test: Rust unit and integration tests (real ONNX Runtime, real HTTP, real SQLite),
# the Python training tests (with a two-file SKAB smoke run), and Python/Rust score parity on
# the committed default model and on a model of every detector.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python

echo "==> Rust tests" >&2
# The Azure SQL suite is #[ignore]d (reported as ignored, with its reason) unless a SQL Server
# is named; then the ignored tests run too.
gated=()
if [ -z "${ANOMALY_TEST_SQL_CONNECTION_STRING:-}" ]; then
  echo "==> note: the Azure SQL contract suite is skipped: ANOMALY_TEST_SQL_CONNECTION_STRING is not set (README: Azure SQL, tests against SQL Server)" >&2
else
  gated=(-- --include-ignored)
fi
cargo test --release --workspace --quiet "${gated[@]}"

echo "==> Python training tests" >&2
skab=../shared/datasets/skab
if [ ! -d "$skab" ]; then
  echo "==> note: the SKAB smoke test is skipped: $skab not found (the dataset is not part of the repository; see README, Benchmark: SKAB)" >&2
fi
.venv/bin/python -m unittest discover -s scripts/tests

echo "==> Python/Rust parity: the default model and every detector" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=target/release/sensor-anomaly
$bin simulate --devices 4 --hours 3 --seed 11 --fault-rate 1 --out "$work/samples.jsonl"
$bin window --input "$work/samples.jsonl" --out "$work/windows.jsonl" --size-secs 60
.venv/bin/python scripts/parity.py --model models/default.onnx --windows "$work/windows.jsonl"
$bin simulate --healthy --devices 4 --hours 3 --seed 12 --out "$work/healthy.jsonl"
for detector in autoencoder pca iforest; do
  .venv/bin/python scripts/train.py --quiet --telemetry "$work/healthy.jsonl" --detector "$detector" \
    --max-iter 40 --out "$work/$detector.onnx" --no-report > /dev/null
  .venv/bin/python scripts/parity.py --model "$work/$detector.onnx" --windows "$work/windows.jsonl"
done

echo "==> Dashboard in headless Chromium" >&2
if reason=$(scripts/browser-setup.sh 2>&1 >/dev/null); then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  $bin demo --devices 4 --hours 2 --seed 7 --serve --port "$port" --db "$work/dashboard.sqlite" > "$work/demo-serve.log" 2>&1 &
  demo_pid=$!
  trap 'kill $demo_pid 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 100); do grep -q "serving the demo" "$work/demo-serve.log" 2>/dev/null && break; sleep 0.2; done
  node tests/browser/dashboard.test.mjs "http://127.0.0.1:$port" target/dashboard.png
  kill "$demo_pid"
else
  echo "==> note: the browser test is skipped: $reason (the dashboard's JSON endpoints were tested over HTTP above)" >&2
fi

echo "==> all tests passed" >&2
