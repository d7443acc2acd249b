#!/usr/bin/env python3
"""Every detector on SKAB-format data (the Skoltech Anomaly Benchmark), by its outlier protocol.

For each labelled file separately: window the whole file with the Rust `window` command
(trailing windows: a row's features use that row and the rows before it, as the streaming path
does); fit the detector, its scaler and its threshold on the windows that end within the file's
first 400 rows *as they are* (labels are never used for fitting: SKAB's published methods do not
see them); export the ONNX model; score the window that ends at every later row with the Rust
scorer (`sensor-anomaly score`, ONNX Runtime) and take its `is_anomaly`.  Counts (tp, fp, fn,
tn) are kept per file and pooled per folder and overall, beside the F1 of alarming on every row.

A file that cannot be fitted (too short, a constant channel, a bad timestamp) is reported with
its name and reason and counted as raising no alarm: no single file aborts the run.

The settings (window length, margin, drifting-channel rule, PCA variance) come from
scripts/skab-settings.json, which scripts/cross-validate-skab.sh writes after choosing them on
some folders; the folders it did not choose on are reported as held out.

Usage:
    scripts/benchmark-skab.sh [--json] [--data DIR] [--files valve1/0,valve2/1] [--detectors pca]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import detectors, train

DEFAULT_DATA = train.REPO_ROOT.parent / "shared" / "datasets" / "skab"
SETTINGS_FILE = train.REPO_ROOT / "scripts" / "skab-settings.json"
TRAIN_ROWS = 400
TIME, LABEL, CHANGEPOINT = "datetime", "anomaly", "changepoint"
STATS = ["mean", "std"]
DETECTORS = ("pca", "autoencoder", "iforest")


@dataclass(frozen=True)
class Setting:
    """What is chosen from data, by cross-validation across folders."""
    window_secs: int = 30
    margin: float = 1.0  # times the largest held-out training score
    max_level_ratio: float | None = None  # leave out channels drifting more (train.level_ratios)
    pca_variance: float = 0.9  # pca only


def train_options(detector: str, s: Setting) -> train.TrainOptions:
    """Fixed per detector; the threshold is the max of the last 20% of the training windows
    (chronological hold-out) times the margin, because 400 s cannot show the drift to come."""
    common = dict(detector=detector, seed=0, threshold_quantile=1.0, threshold_margin=s.margin,
                  max_level_ratio=s.max_level_ratio, min_rows=100)
    if detector == "autoencoder":
        return train.TrainOptions(hidden=(16, 4, 16), max_iter=500, **common)
    if detector == "pca":
        return train.TrainOptions(pca_variance=s.pca_variance, **common)
    return train.TrainOptions(trees=100, **common)


def load_settings(path: Path = SETTINGS_FILE) -> dict:
    """{detector: (Setting, folders it was chosen on)} from the cross-validation output."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise train.InputError(f"cannot read {path}: {e} (scripts/cross-validate-skab.sh writes it)")
    out = {}
    for det, entry in raw.get("detectors", {}).items():
        out[det] = (Setting(**entry["setting"]), list(entry.get("chosen_on", [])))
    return out


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

@dataclass
class SkabFile:
    path: Path
    name: str  # folder/stem, e.g. valve1/0
    folder: str


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        first = fh.readline()
    return [c.strip() for c in first.rstrip("\r\n").split(";")]


def discover(data: Path, only=None) -> tuple[list[SkabFile], list[str]]:
    """Every labelled SKAB-format CSV below `data` (any depth), sorted; plus notes on CSVs left
    out (no `anomaly` column, e.g. SKAB's anomaly-free.csv)."""
    if not data.is_dir():
        raise train.InputError(f"no such folder: {data} (--data DIR: a folder of SKAB-format CSV files)")
    files, notes = [], []
    for p in sorted(data.rglob("*.csv")):
        rel = p.relative_to(data)
        folder = rel.parent.as_posix() if rel.parent != Path(".") else data.name
        if LABEL not in _header(p):
            notes.append(f"{rel.as_posix()}: no `{LABEL}` column, not a labelled file")
            continue
        files.append(SkabFile(p, f"{folder}/{p.stem}", folder))
    files.sort(key=lambda f: (f.folder, int(f.path.stem) if f.path.stem.isdigit() else 0, f.path.stem))
    if only:
        wanted = {w.removesuffix(".csv") for w in only}
        files = [f for f in files if f.name in wanted]
        missing = wanted - {f.name for f in files}
        if missing:
            raise train.InputError(f"no such SKAB file(s) under {data}: {', '.join(sorted(missing))}")
    if not files:
        raise train.InputError(f"no labelled SKAB-format CSV files (';'-separated, with an `{LABEL}` "
                               f"column) under {data}")
    return files, notes


def read_rows(path: Path):
    """(window_end key per row, label per row, channel names) from the file itself."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    if not rows:
        raise train.InputError("no rows")
    channels = [c for c in rows[0] if c not in (TIME, LABEL, CHANGEPOINT)]
    ends, labels = [], []
    for n, r in enumerate(rows, start=2):
        try:
            labels.append(int(float(r[LABEL])))
            ends.append(r[TIME].strip().replace(" ", "T") + "Z")
        except (TypeError, ValueError, AttributeError):
            raise train.InputError(f"line {n}: bad `{TIME}` or `{LABEL}` value") from None
    return ends, np.array(labels, np.int64), channels


@dataclass
class Prepared:
    """One file windowed at one window length: the training windows and, per scored row, the
    window that ends at that row."""
    labels: np.ndarray  # per scored row
    W: train.Windows
    train_idx: list
    row_windows: np.ndarray


def prepare(bin_path: Path, f: SkabFile, window_secs: int, tmp: Path) -> Prepared:
    ends, labels, channels = read_rows(f.path)
    if len(ends) <= TRAIN_ROWS:
        raise train.InputError(f"{len(ends)} rows, need more than {TRAIN_ROWS}")
    opts = train.WindowOptions(size_secs=window_secs, hop_secs=1, channels=channels,
                               csv=["--label-column", LABEL, "--ignore-columns", CHANGEPOINT,
                                    "--timestamp-column", TIME, "--device", f.name])
    wfile = train.window_telemetry(bin_path, f.path, tmp / f"windows-{window_secs}.jsonl", opts)
    W = train.load_windows(wfile, channels, STATS)
    W = replace(W, label=None)  # labels score the result; they never choose training rows
    index = {e: i for i, e in enumerate(W.window_end)}
    train_end = ends[TRAIN_ROWS - 1]
    train_idx = [i for i, e in enumerate(W.window_end) if e <= train_end]
    missing = [ends[r] for r in range(TRAIN_ROWS, len(ends)) if ends[r] not in index]
    if missing:
        raise train.InputError(f"no window ends at {missing[0]} (timestamps not whole seconds?)")
    rows = np.array([index[ends[r]] for r in range(TRAIN_ROWS, len(ends))], np.int64)
    return Prepared(labels[TRAIN_ROWS:], W, train_idx, rows)


def fit_and_score(bin_path, P: Prepared, opts: train.TrainOptions, tmp: Path, scorer: str = "rust"):
    """(score per scored row, threshold, info) for one detector on one prepared file.  `rust`
    scores with the production binary; `ort` runs the same graph in Python's ONNX Runtime (the
    cross-validation's shortcut; tests hold the two to the same numbers)."""
    data, info = train.fit(P.W.subset(P.train_idx), opts, source="skab")
    fitted = info["windows"].channels
    unique = np.unique(P.row_windows)
    Wu = P.W.subset(unique).select_channels(fitted)
    if scorer == "rust":
        model_path = tmp / "model.onnx"
        model_path.write_bytes(data)
        results = train.rust_score(bin_path, model_path, Wu, tmp)
        s = np.array([r["score"] if r else 0.0 for r in results], np.float64)
    else:
        ok = np.all(np.isfinite(Wu.X), axis=1)
        s = np.zeros(len(unique))
        if ok.any():
            s[ok] = detectors.ort_run(data, Wu.X[ok]).astype(np.float64).sum(axis=1)
    score_of = dict(zip(unique.tolist(), s))
    return np.array([score_of[w] for w in P.row_windows.tolist()]), info["threshold"], info


# --------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------

def counts(labels: np.ndarray, flags: np.ndarray) -> dict:
    y, f = np.asarray(labels).astype(bool), np.asarray(flags).astype(bool)
    return {"tp": int(np.sum(y & f)), "fp": int(np.sum(~y & f)),
            "fn": int(np.sum(y & ~f)), "tn": int(np.sum(~y & ~f))}


def figures(c: dict) -> dict:
    """F1, FAR (false alarms / healthy rows), MAR, and the F1 of alarming on every row."""
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    div = lambda a, b: a / b if b else 0.0  # noqa: E731
    return {**c, "rows": tp + fp + fn + tn, "f1": div(2 * tp, 2 * tp + fp + fn),
            "far": div(fp, fp + tn), "mar": div(fn, fn + tp),
            "precision": div(tp, tp + fp), "recall": div(tp, tp + fn),
            "f1_all_alarm": div(2 * (tp + fn), 2 * (tp + fn) + fp + tn)}


def pool(rows: list[dict]) -> dict:
    return figures({k: sum(r[k] for r in rows) for k in ("tp", "fp", "fn", "tn")})


def summarize(det: str, setting: Setting, chosen_on: list, per_file: list[dict]) -> dict:
    folders = sorted({f["folder"] for f in per_file})
    out = {"detector": det, "setting": asdict(setting), "chosen_on": chosen_on,
           "overall": pool(per_file),
           "folders": {d: pool([f for f in per_file if f["folder"] == d]) for d in folders}}
    held = [f for f in per_file if f["folder"] not in chosen_on]
    if chosen_on and held:
        out["held_out"] = {"folders": sorted({f["folder"] for f in held}), **pool(held)}
    out["failed_files"] = [{"file": f["file"], "error": f["error"]} for f in per_file if "error" in f]
    out["per_file"] = per_file
    return out


def run_file(bin_path, f: SkabFile, dets, settings, tmp: Path) -> dict:
    """{detector: per-file row}; a failure is recorded, counted as no alarms, and never raised."""
    out, prepared = {}, {}
    for det in dets:
        setting = settings[det][0]
        row = {"file": f.name, "folder": f.folder}
        try:
            if setting.window_secs not in prepared:
                prepared[setting.window_secs] = prepare(bin_path, f, setting.window_secs, tmp)
            P = prepared[setting.window_secs]
            scores, thr, info = fit_and_score(bin_path, P, train_options(det, setting), tmp)
            row.update(counts(P.labels, scores >= thr))
            row["threshold"] = thr
            row["left_out_channels"] = info["summary"]["left_out_channels"]
        except (train.InputError, train.PipelineError) as e:
            labels = _labels_or_empty(f)
            row.update(counts(labels, np.zeros(len(labels), bool)))
            row["error"] = str(e).splitlines()[0]
            print(f"[skab] {f.name}: {det}: not fitted: {row['error']} (counted as no alarms)",
                  file=sys.stderr, flush=True)
        out[det] = row
    return out


def _labels_or_empty(f: SkabFile) -> np.ndarray:
    try:
        return read_rows(f.path)[1][TRAIN_ROWS:]
    except (train.InputError, OSError, KeyError):
        return np.zeros(0, np.int64)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benchmark-skab.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="one JSON array, one object per detector")
    p.add_argument("--data", default=str(DEFAULT_DATA),
                   help="a folder of SKAB-format CSV files, searched at any depth")
    p.add_argument("--files", type=train._list_arg, help="only these, e.g. valve1/0,valve2/1")
    p.add_argument("--detectors", type=train._list_arg,
                   help="comma-separated, among " + ", ".join(DETECTORS) + " (default: every "
                        "detector in the settings file)")
    p.add_argument("--settings", default=str(SETTINGS_FILE),
                   help="chosen settings (written by scripts/cross-validate-skab.sh)")
    p.add_argument("--bin", default=train.DEFAULT_BIN)
    args = p.parse_args(argv)
    started = time.monotonic()
    try:
        settings = load_settings(Path(args.settings))
        args.detectors = args.detectors or [d for d in DETECTORS if d in settings]
        bad = [d for d in args.detectors if d not in settings]
        if bad:
            raise train.InputError(f"no settings for detector(s) {', '.join(bad)} in {args.settings} "
                                   f"(have {', '.join(settings)})")
        files, notes = discover(Path(args.data), args.files)
        for n in notes:
            print(f"[skab] skipped {n}", file=sys.stderr)
        bin_path = train.resolve_bin(args.bin)
        if not bin_path.is_file():
            raise train.InputError(f"binary not found: {bin_path} (cargo build --release, or --bin)")
    except train.InputError as e:
        print(f"benchmark-skab: error: {e}", file=sys.stderr)
        return 2
    per_det = {d: [] for d in args.detectors}
    for n, f in enumerate(files, 1):
        print(f"[skab] {n}/{len(files)} {f.name}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="skab-") as td:
            for det, row in run_file(bin_path, f, args.detectors, settings, Path(td)).items():
                per_det[det].append(row)
    table = [summarize(d, *settings[d], per_det[d]) for d in args.detectors]
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print_table(table, len(files), time.monotonic() - started)
    return 0


def print_table(table, n_files, secs):
    print(f"SKAB outlier-detection protocol: {n_files} files, fit on each file's first {TRAIN_ROWS} "
          f"rows as they are, {table[0]['overall']['rows']} rows scored and pooled ({secs:.0f} s)\n")
    print(f"{'detector':<12} {'subset':<22} {'F1':>6} {'FAR':>6} {'MAR':>6}  {'all-alarm F1':>12}")
    for r in table:
        subsets = [("all files", r["overall"])] + [(d, q) for d, q in r["folders"].items()]
        if "held_out" in r:
            subsets.append(("held out: " + ",".join(r["held_out"]["folders"]), r["held_out"]))
        for name, q in subsets:
            print(f"{r['detector']:<12} {name:<22} {q['f1']:6.3f} {q['far']:6.3f} {q['mar']:6.3f}  "
                  f"{q['f1_all_alarm']:12.3f}")
        for bad in r["failed_files"]:
            print(f"{'':<12} not fitted: {bad['file']}: {bad['error']}")
    print("\nSettings chosen on: " + "; ".join(f"{r['detector']} {','.join(r['chosen_on']) or '-'}"
                                           for r in table))
    print("Published (full SKAB corpus): Conv-AE 0.78, MSET 0.78, PCA T2+Q 0.76, LSTM-AE 0.74, "
          "dense AE 0.39, Isolation Forest 0.29")


if __name__ == "__main__":
    sys.exit(main())
