#!/usr/bin/env bash
# Set-up shared by demo.sh and test.sh. Idempotent: every step is skipped when already done.
#   - ONNX Runtime: libonnxruntime.so from the pinned `onnxruntime` Python wheel into .ort/lib
#     (ort is built with load-dynamic; nothing is downloaded at build time).
#   - Python (only with --python): a venv in .venv with scripts/requirements.txt and the
#     training package (training/, editable).
#   - The release build of the handler.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.31.1
ORT_DIR=.ort/lib
want_python=0
for arg in "$@"; do
  case "$arg" in
    --python) want_python=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

step() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup.sh: cargo not found; install Rust from https://rustup.rs" >&2
  exit 1
fi

if [ ! -f "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ]; then
  step "fetching ONNX Runtime $ORT_VERSION (the onnxruntime wheel's C library) into $ORT_DIR"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 \
    "onnxruntime==$ORT_VERSION" -d "$tmp"
  mkdir -p "$ORT_DIR"
  python3 - "$tmp" "$ORT_DIR" <<'PY'
import glob, os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(src, "onnxruntime-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/libonnxruntime") and ".so" in base:
            with z.open(name) as f, open(os.path.join(dst, base), "wb") as out:
                out.write(f.read())
            print("   ", base, file=sys.stderr)
PY
fi

if [ "$want_python" = 1 ]; then
  stamp=.venv/.requirements.sha256
  want=$(cat scripts/requirements.txt training/pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    step "creating .venv with scripts/requirements.txt and the training package (training/)"
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
    # Editable, so the package reads the repository it lives in (the contract, the CLI binary);
    # its dependencies are the exact pins above (pip fetches setuptools to build it).
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --editable training
    echo "$want" > "$stamp"
  fi
fi

step "building the handler (release)"
cargo build --release --quiet
