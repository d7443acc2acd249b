#!/usr/bin/env bash
# The README's performance figures: builds the release handler (and, with BENCH_BASELINE=<git
# revision>, that revision's handler in a worktree beside it), then runs scripts/bench.py with
# both side by side. Extra arguments go to bench.py.
#
#   scripts/bench.sh                                  # this checkout only
#   BENCH_BASELINE=600ac69 scripts/bench.sh           # the figure in the README: before and after
#   scripts/bench.sh --data-type binary --rounds 5
#
# Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python
command -v wrk >/dev/null || { echo "wrk is missing (Debian/Ubuntu: apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
handlers=()
if [ -n "${BENCH_BASELINE:-}" ]; then
  tree=target/bench-baseline/src
  rev=$(git rev-parse --verify "$BENCH_BASELINE^{commit}")
  if [ ! -d "$tree" ]; then
    git worktree add --detach "$tree" "$rev" >/dev/null
  else
    git -C "$tree" checkout --quiet --detach "$rev"
  fi
  echo "==> building the baseline handler at ${rev:0:12}" >&2
  CARGO_TARGET_DIR=target/bench-baseline/target cargo build --release --quiet \
    --manifest-path "$tree/Cargo.toml" -p sensor-anomaly-service
  handlers+=(--handler "${rev:0:7}=target/bench-baseline/target/release/sensor-anomaly-handler")
fi
handlers+=(--handler "this=target/release/sensor-anomaly-handler")
exec .venv/bin/python scripts/bench.py "${handlers[@]}" "$@"
