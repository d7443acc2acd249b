#!/usr/bin/env bash
# SKAB's changepoint problem: NAB scores (SKAB's scorer, tsad) of the incidents the handler's own
# incident rules make (see training/sensor_anomaly_training/benchmark_skab_nab.py).
#   scripts/benchmark-skab-nab.sh                 # table
#   scripts/benchmark-skab-nab.sh --json          # everything, the whole grid of rules included
#   scripts/benchmark-skab-nab.sh --detectors autoencoder,pca --data DIR
#   scripts/benchmark-skab-nab.sh --setup         # only make the scorer's environment
# Reads ../shared/datasets/skab (or --data DIR). Makes .venv-nab: tsad 0.19.4 with the numpy,
# pandas and matplotlib versions it pins (they conflict with the training stack in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --python >&2
if ! .venv-nab/bin/python -c "import tsad.utils.evaluating.evaluating" 2>/dev/null; then
  echo "==> making .venv-nab (tsad 0.19.4, SKAB's changepoint scorer)" >&2
  python3 -m venv .venv-nab
  .venv-nab/bin/pip install --quiet --disable-pip-version-check numpy==1.25.0 pandas==1.5.3 matplotlib==3.7.1 >&2
  # tsad's other pins (plotly, pyarrow, scikit-learn 1.1, ...) serve its detectors, not the
  # evaluation module this uses, which imports numpy, pandas and matplotlib only.
  .venv-nab/bin/pip install --quiet --disable-pip-version-check --no-deps tsad==0.19.4 >&2
fi
[ "${1:-}" = --setup ] && exit 0
exec .venv/bin/python -m sensor_anomaly_training.benchmark_skab_nab "$@"
