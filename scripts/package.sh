#!/usr/bin/env bash
# Builds the function app package: dist/sensor-anomaly.zip, laid out as the Functions host
# reads it (host.json and one folder per function at the root), with the release binary, the
# ONNX Runtime library beside it and the default model. The executable bit is kept.
# Prints the glibc version the binary needs (the Flex Consumption image must have at least it).
#
#   scripts/package.sh [dist/sensor-anomaly.zip]   # the zip to deploy
#   scripts/package.sh --dir target/functions-app  # the same layout unzipped, plus
#                                                  # local.settings.json, for `func start --script-root`
set -euo pipefail
cd "$(dirname "$0")/.."
dir=""
if [ "${1:-}" = "--dir" ]; then
  dir=${2:?--dir needs a folder}
  out=""
else
  out=${1:-dist/sensor-anomaly.zip}
fi
scripts/setup.sh
if [ -n "$dir" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  stage=$dir
else
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
fi
cp host.json "$stage/"
cp -r functions/* "$stage/"
mkdir -p "$stage/models"
cp models/default.onnx "$stage/models/"
# The service's binary only (crates/service): no simulator, no Event Hubs client.
cp target/release/sensor-anomaly-handler "$stage/sensor-anomaly-handler"
cp .ort/lib/libonnxruntime.so.1.31.1 "$stage/"
chmod 755 "$stage/sensor-anomaly-handler"
if [ -n "$dir" ]; then
  # Your local.settings.json if you made one, else the example (local stand-ins, compose.yaml).
  if [ -f local.settings.json ]; then cp local.settings.json "$dir/"; else cp local.settings.json.example "$dir/local.settings.json"; fi
  echo "==> $dir: run \`func start --script-root $dir\`" >&2
  exit 0
fi
mkdir -p "$(dirname "$out")"
rm -f "$out"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
(cd "$stage" && zip -q -r -X "$out_abs" .)
need=$( { objdump -T target/release/sensor-anomaly-handler .ort/lib/libonnxruntime.so.1.31.1 2>/dev/null || true; } \
  | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)
echo "==> $out ($(du -h "$out" | cut -f1)); needs ${need:-an unknown glibc} or newer" >&2
