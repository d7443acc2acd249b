#!/usr/bin/env bash
# Infrastructure scan: checkov (--framework bicep) over infra/, with the rules of
# scripts/lint_infra.py: every .bicep file parsed and scanned, every failed check waived next
# to its resource with a reason, and a second view with privateNetworking = true.
# Usage: scripts/lint-infra.sh [--json FILE]
# Creates .venv-lint (checkov pinned in scripts/requirements-lint.txt) on first use; needs
# python3 (3.9 or later) with venv, and PyPI the first time. Exits non-zero on any unwaived
# failure, any file checkov cannot parse, or any waiver without a reason or a match.
# See docs/infra-scan.md.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-lint
requirements=scripts/requirements-lint.txt
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/checkov" ] || ! cmp -s "$requirements" "$stamp"; then
  echo "==> installing checkov into $venv ($requirements)" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

# No Prisma Cloud account: checkov's guideline download is skipped (--skip-download) and it
# sends nothing.
export BC_SKIP_MAPPING=TRUE
exec "$venv/bin/python" scripts/lint_infra.py --infra infra --checkov "$venv/bin/checkov" "$@"
