#!/usr/bin/env python3
"""Check that the Rust scorer and ONNX Runtime (Python) agree on anomaly scores.

For every window in --windows the score is computed in Python as the row sum
of the model's `contributions` output (ONNX Runtime, CPU), and the Rust binary
is run as

    sensor-anomaly score --model M --input W --out <tmp>

Scores are matched by (device_id, window_end).  The check fails (exit 1) if
the number of windows differs, a key is missing/duplicated on either side, or
any |rust - python| > --tol (default 1e-5); the worst mismatches are listed.
On success the count and max abs diff are printed.  Differences between the
Rust `threshold` / `model_version` fields and the model metadata are reported
as warnings.

Exit codes: 0 parity ok, 1 mismatch or Rust failure, 2 bad input/usage.

Example:
    .venv/bin/sensor-anomaly-parity --model models/default.onnx \\
        --windows windows.jsonl --bin target/release/sensor-anomaly
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import binary, train
from .contract import REPO_ROOT


class Mismatch(Exception):
    """Parity failure: exit code 1."""


resolve_bin = binary.resolve


_FRAC = re.compile(r"(\.\d{6})\d+")


def norm_time(s):
    """Canonical UTC form of an RFC3339 timestamp, so '...Z' == '...+00:00'."""
    if not isinstance(s, str):
        return json.dumps(s)
    try:
        t = datetime.fromisoformat(_FRAC.sub(r"\1", s.strip()).replace("z", "Z"))
    except ValueError:
        return s
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat()


def key_of(rec) -> tuple[str, str]:
    return (str(rec.get("device_id")), norm_time(rec.get("window_end")))


def python_scores(model_path: Path, windows_path: Path):
    import onnx
    import onnxruntime as ort

    try:
        m = onnx.load(str(model_path))
    except Exception as e:  # noqa: BLE001  (any load failure is a usage error)
        raise train.InputError(f"cannot load model {str(model_path)!r}: {e}") from None
    meta = {p.key: p.value for p in m.metadata_props}
    names = json.loads(meta.get("anomaly.feature_names", "null"))
    if not isinstance(names, list) or not names:
        raise train.InputError(f"{model_path}: no anomaly.feature_names metadata")
    X, recs = train.read_features(windows_path, lambda _: names)
    # The Rust scorer refuses a window with a null feature (e.g. no std for one sample).
    usable = np.all(np.isfinite(X), axis=1)
    X, recs = X[usable], [r for r, ok in zip(recs, usable) if ok]
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    contrib = sess.run([train.OUTPUT_NAME], {train.INPUT_NAME: X.astype(np.float32)})[0]
    scores = contrib.astype(np.float64).sum(axis=1)
    out = {}
    for rec, s in zip(recs, scores):
        k = key_of(rec)
        if k in out:
            raise train.InputError(f"{windows_path}: duplicate window (device_id={k[0]}, window_end={k[1]})")
        out[k] = float(s)
    return out, meta


def rust_scores(bin_path: Path, model: Path, windows: Path, scores_file: Path | None):
    with tempfile.TemporaryDirectory(prefix="sensor-anomaly-parity-") as td:
        if scores_file is None:
            scores_file = Path(td) / "scores.jsonl"
            cmd = [str(bin_path), "score", "--model", str(model), "--input", str(windows),
                   "--out", str(scores_file)]
            print(f"[parity] running: {' '.join(cmd)}", file=sys.stderr)
            try:
                binary.run(cmd, "score")
            except (binary.PipelineError, binary.InputError) as e:
                if not Path(cmd[0]).is_file():
                    raise
                raise Mismatch(f"rust {e}") from None
        try:
            lines = scores_file.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise Mismatch(f"cannot read rust scores {str(scores_file)!r} (did `score` write "
                           f"--out?): {e.strerror}") from None
    out, extra, dups = {}, [], []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            s = rec["score"]
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
                raise ValueError(f"bad score {s!r}")
            k = (rec["device_id"], rec["window_end"])
        except (ValueError, KeyError, TypeError) as e:
            raise Mismatch(f"rust output line {lineno}: not a valid score record ({e})") from None
        k = key_of(rec)
        if k in out:
            dups.append(k)
        out[k] = float(s)
        extra.append(rec)
    return out, extra, dups


def compare(py: dict, rs: dict, dups: list, tol: float, top: int):
    problems = []
    if len(py) != len(rs) + len(dups):
        problems.append(f"count differs: python {len(py)} windows, rust {len(rs) + len(dups)} scores")
    if dups:
        problems.append(f"{len(dups)} duplicate key(s) in rust output, e.g. {dups[0]}")
    only_py = sorted(set(py) - set(rs))
    only_rs = sorted(set(rs) - set(py))
    for label, ks in (("missing in rust output", only_py), ("only in rust output", only_rs)):
        if ks:
            problems.append(f"{len(ks)} key(s) {label}, e.g. " + "; ".join(f"{d} @ {w}" for d, w in ks[:3]))
    common = sorted(set(py) & set(rs))
    diffs = sorted(((abs(rs[k] - py[k]), k) for k in common), reverse=True)
    max_diff = diffs[0][0] if diffs else 0.0
    bad = [d for d in diffs if d[0] > tol]
    if bad:
        problems.append(f"{len(bad)} of {len(common)} score(s) differ by more than {tol:g} "
                        f"(max abs diff {max_diff:.3e}); worst:")
        for d, k in bad[:top]:
            problems.append(f"  {k[0]} @ {k[1]}: python={py[k]!r} rust={rs[k]!r} |diff|={d:.3e}")
    return problems, max_diff, len(common)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="sensor-anomaly-parity",
        description="Compare per-window anomaly scores of the Rust scorer with ONNX Runtime in "
                    "Python (score = row sum of `contributions`), matched by (device_id, window_end).",
        epilog="Exit codes: 0 parity ok, 1 mismatch or Rust failure, 2 bad input/usage.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="ONNX model (contract format)")
    p.add_argument("--windows", required=True, help="window JSONL file (output of `window`)")
    p.add_argument("--bin", default=train.DEFAULT_BIN,
                   help="Rust binary; a relative path not found from the current directory is "
                        "resolved against the repo root")
    p.add_argument("--scores", metavar="FILE",
                   help="use an existing `score` output instead of running the binary")
    p.add_argument("--tol", type=float, default=1e-5, help="max allowed |rust - python| per window")
    p.add_argument("--top", type=int, default=10, help="number of worst mismatches to list")
    args = p.parse_args(argv)
    model, windows = Path(args.model), Path(args.windows)
    try:
        if not model.is_file():
            raise train.InputError(f"model not found: {model}")
        py, meta = python_scores(model, windows)
        rs, recs, dups = rust_scores(resolve_bin(args.bin), model, windows,
                                     Path(args.scores) if args.scores else None)
    except train.InputError as e:
        print(f"sensor-anomaly-parity: error: {e}", file=sys.stderr)
        return 2
    except Mismatch as e:
        print(f"sensor-anomaly-parity: FAIL: {e}", file=sys.stderr)
        return 1

    thr, ver = meta.get("anomaly.threshold"), meta.get("anomaly.model_version")
    bad_thr = {r.get("threshold") for r in recs
               if thr is not None and isinstance(r.get("threshold"), (int, float))
               and abs(r["threshold"] - float(thr)) > 1e-9 * max(1.0, abs(float(thr)))}
    if bad_thr:
        print(f"sensor-anomaly-parity: warning: rust threshold {sorted(bad_thr)[:3]} != model threshold {thr}",
              file=sys.stderr)
    bad_ver = {r.get("model_version") for r in recs if "model_version" in r} - {ver}
    if bad_ver:
        print(f"sensor-anomaly-parity: warning: rust model_version {sorted(map(str, bad_ver))[:3]} != {ver}",
              file=sys.stderr)

    problems, max_diff, n = compare(py, rs, dups, args.tol, args.top)
    if problems:
        print("sensor-anomaly-parity: FAIL\n" + "\n".join(problems), file=sys.stderr)
        return 1
    print(f"parity OK: {n} windows, max abs diff {max_diff:.3e} (tol {args.tol:g}), "
          f"model_version {ver}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
