#!/usr/bin/env bash
# Builds the function app package: dist/sensor-anomaly.zip, laid out as the Functions host
# reads it (host.json and one folder per function at the root), with the release binary, the
# ONNX Runtime library beside it and the default model. The executable bit is kept.
# Prints the glibc version the binary needs (the Flex Consumption image must have at least it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist/sensor-anomaly.zip}
scripts/setup.sh
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp host.json "$stage/"
cp -r functions/* "$stage/"
mkdir -p "$stage/models"
cp models/default.onnx "$stage/models/"
cp target/release/sensor-anomaly "$stage/sensor-anomaly"
cp .ort/lib/libonnxruntime.so.1.31.1 "$stage/"
chmod 755 "$stage/sensor-anomaly"
mkdir -p "$(dirname "$out")"
rm -f "$out"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
(cd "$stage" && zip -q -r -X "$out_abs" .)
need=$( { objdump -T target/release/sensor-anomaly .ort/lib/libonnxruntime.so.1.31.1 2>/dev/null || true; } \
  | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)
echo "==> $out ($(du -h "$out" | cut -f1)); needs ${need:-an unknown glibc} or newer" >&2
