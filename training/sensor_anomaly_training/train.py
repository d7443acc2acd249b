#!/usr/bin/env python3
"""Train an anomaly detector on sensor telemetry and export it as one contract ONNX file.

    telemetry (CSV or JSON lines)  --sensor-anomaly window-->  window features (JSON lines)
      --> fit (autoencoder | pca | iforest)  --> threshold  --> model.onnx (+ metadata)
      --> report (scores from the Rust scorer, the production path)

1. Windows.  The Rust `window` command computes the features, so training sees exactly what
   serving and the Stream Analytics query see.  Sources: --telemetry FILE (the user's data),
   --windows FILE (already windowed) or, by default, a healthy simulated fleet.
2. Validation of the data.  A missing feature column, a non-numeric value, too few rows or a
   constant channel is an error naming the problem (exit code 2).  Windows with a null feature
   (a one-sample window has no std) and windows with fewer samples than --min-samples are left
   out of fitting; windows labelled anomalous (label column) are never fitted on.
3. Split.  The last 20% of each device's healthy windows in time are held out (chronological:
   overlapping hopping windows would leak across a random split, and drift shows up in a later
   hold-out as it will in production) -- or --validation FILE is used instead.
4. Threshold, stored in the model: the --threshold-quantile quantile of healthy validation
   scores, times --threshold-margin; or, with labelled validation data, the threshold with the
   best F1 (--threshold max-f1) or the lowest one reaching a precision (--threshold
   precision:0.9).  Scores come from this very graph in ONNX Runtime.  Never the test data.
5. Export (see detectors.py and models/README.md) and the report (report.py), which scores the
   --test data (else the validation windows) with the Rust binary through ONNX Runtime.

The output is byte-for-byte reproducible for the same input, options and seed (no timestamps;
model_version = detector prefix + sha256 of the graph and threshold).

Exit codes: 0 success, 2 bad input or usage, 1 other failure (e.g. the Rust binary failed).

Examples:
    .venv/bin/sensor-anomaly-train                    # -> models/ae-<hash>.onnx (a new file)
    .venv/bin/sensor-anomaly-train --split random --out models/default.onnx   # the shipped model
    .venv/bin/sensor-anomaly-train --telemetry plant.csv --out models/plant.onnx
    .venv/bin/sensor-anomaly-train --telemetry plant.csv --validation val.csv \\
        --threshold max-f1 --test test.csv --detector pca --out models/plant-pca.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import binary, detectors
from .binary import DEFAULT_BIN, InputError, PipelineError
from .contract import CHANNELS, EXPECTED_NAME, FEATURE_NAMES, INPUT_NAME, OUTPUT_NAME, REPO_ROOT, STATS

MODELS_DIR = "models"  # without --out: models/<model_version>.onnx, never the shipped default

MIN_ROWS = 200
VALIDATION_FRACTION = 0.2

FEATURE_QUANTILES = {"q01": 0.01, "q05": 0.05, "q50": 0.50, "q95": 0.95, "q99": 0.99}
SCORE_QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p995": 0.995, "p999": 0.999}
WINDOW_FIELDS = {"device_id", "window_start", "window_end", "sample_count", "label",
                 "faulty_samples", "fault_kind", "fault_channel"}


logger = logging.getLogger(__name__)


def log(msg: str) -> None:
    """One progress line (`stage=... key=value`), at INFO: the CLI shows it unless --quiet."""
    logger.info(msg)


# --------------------------------------------------------------------------
# Windows: loading and validation
# --------------------------------------------------------------------------

@dataclass
class Windows:
    """Window records as arrays.  X rows with a null feature are NaN (see `usable`)."""
    X: np.ndarray
    channels: list[str]
    stats: list[str]
    device: list[str]
    window_end: list[str]
    sample_count: np.ndarray
    label: np.ndarray | None  # 0/1 per window, or None for unlabelled data
    fault_channel: list
    records: list = field(repr=False, default_factory=list)
    path: str = ""

    @property
    def feature_names(self):
        return [f"{c}_{s}" for c in self.channels for s in self.stats]

    @property
    def feature_channels(self):
        return [c for c in self.channels for _ in self.stats]

    @property
    def feature_stats(self):
        return [s for _ in self.channels for s in self.stats]

    def subset(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        return Windows(self.X[idx], self.channels, self.stats, [self.device[i] for i in idx],
                       [self.window_end[i] for i in idx], self.sample_count[idx],
                       None if self.label is None else self.label[idx],
                       [self.fault_channel[i] for i in idx], [self.records[i] for i in idx], self.path)

    def __len__(self):
        return len(self.device)

    def select_channels(self, channels):
        """The same windows with only these channels' features (in this order)."""
        cols = [self.feature_names.index(f"{c}_{s}") for c in channels for s in self.stats]
        return Windows(self.X[:, cols], list(channels), self.stats, self.device, self.window_end,
                       self.sample_count, self.label, self.fault_channel, self.records, self.path)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def infer_channels(record: dict, stats) -> list[str]:
    return sorted(k[: -len("_" + stats[0])] for k in record
                  if k.endswith("_" + stats[0]) and k not in WINDOW_FIELDS)


def read_features(path, names_of):
    """(X, records) of a window JSONL file: the features `names_of(first record)` names, in that
    order.  A null feature is NaN; a missing column or a value that is not a number is an
    error with the line number."""
    path = Path(path)
    try:
        fh = open(path, "r", encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read windows file {str(path)!r}: {e.strerror}") from None
    rows, recs, names = [], [], None
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: invalid JSON: {e.msg}") from None
            if not isinstance(rec, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line")
            if names is None:
                names = names_of(rec)
                if not names:
                    raise InputError(f"{path}:{lineno}: no feature columns")
            row = []
            for name in names:
                if name not in rec:
                    raise InputError(f"{path}:{lineno}: missing feature column {name!r}")
                v = rec[name]
                if v is None:
                    row.append(math.nan)
                    continue
                if not _is_number(v) or not math.isfinite(float(v)):
                    raise InputError(f"{path}:{lineno}: column {name!r} has non-numeric value {json.dumps(v)}")
                row.append(float(v))
            rows.append(row)
            recs.append(rec)
    return np.asarray(rows, np.float64).reshape(len(rows), len(names or [])), recs


def load_windows(path, channels=None, stats=STATS) -> Windows:
    """Read a window JSONL file (as `sensor-anomaly window` writes it).

    channels=None infers them from the first record (every `<channel>_<stat>` key, sorted).
    A null feature is kept as NaN (such windows are not fitted on).
    """
    path = Path(path)

    def names_of(first):
        nonlocal channels
        channels = list(channels) if channels else infer_channels(first, stats)
        if not channels:
            raise InputError(f"{path}: no `<channel>_{stats[0]}` feature columns in the first window")
        return [f"{c}_{s}" for c in channels for s in stats]

    X, recs = read_features(path, names_of)
    if not recs:
        raise InputError(f"{path}: no windows")
    labelled = any("label" in r for r in recs)
    label = np.array([int(r.get("label") or 0) for r in recs], np.int64) if labelled else None
    return Windows(
        X=X,
        channels=list(channels), stats=list(stats),
        device=[str(r.get("device_id", "")) for r in recs],
        window_end=[str(r.get("window_end", "")) for r in recs],
        sample_count=np.array([int(r.get("sample_count") or 0) for r in recs], np.int64),
        label=label, fault_channel=[r.get("fault_channel") for r in recs], records=recs,
        path=str(path))


def check_not_constant(W: Windows, X: np.ndarray, where: str) -> None:
    """A channel whose every feature is constant carries nothing and cannot be standardized."""
    const = [j for j in range(X.shape[1]) if X[:, j].min() == X[:, j].max()]
    if not const:
        return
    names = W.feature_names
    dead = [c for c in W.channels
            if all(j in const for j, fc in enumerate(W.feature_channels) if fc == c)]
    if dead:
        raise InputError(f"{where}: constant channel(s) {', '.join(dead)}: every value is the same, "
                         "so it cannot be modelled; drop it (--channels) or check the sensor")
    raise InputError(f"{where}: constant feature column(s) (std == 0), cannot standardize: "
                     f"{', '.join(names[j] for j in const)}; drop the stat with --stats")


def fit_rows(W: Windows, min_samples: int | None, where: str) -> np.ndarray:
    """Indices of the windows to learn from: complete, full enough and not labelled anomalous."""
    ok = np.all(np.isfinite(W.X), axis=1)
    dropped_null = int((~ok).sum())
    if min_samples is None:
        min_samples = int(np.median(W.sample_count[ok]) // 2) if ok.any() else 0
    full = W.sample_count >= min_samples
    dropped_small = int((ok & ~full).sum())
    ok &= full
    dropped_label = 0
    if W.label is not None:
        dropped_label = int((ok & (W.label == 1)).sum())
        ok &= W.label == 0
    log(f"stage=select {where}: {int(ok.sum())} of {len(W)} windows "
        f"(left out: {dropped_null} with a null feature, {dropped_small} with < {min_samples} "
        f"samples, {dropped_label} labelled anomalous)")
    return np.flatnonzero(ok)


def level_ratios(W: Windows, rows: np.ndarray) -> dict[str, float]:
    """Per channel: how much its level wanders between the training windows, relative to what
    its sample noise explains -- var(window means) / mean(window variance / samples).

    About 1 for a channel that is noise around a steady level; hundreds for one that drifts
    (a temperature warming up), whose normal range a short training period cannot show: its
    level later leaves the trained range without anything being wrong.  Needs mean and std."""
    if "mean" not in W.stats or "std" not in W.stats:
        return {}
    n = np.maximum(W.sample_count[rows].astype(np.float64), 1.0)
    out = {}
    for c in W.channels:
        m = W.X[rows, W.feature_names.index(f"{c}_mean")]
        sd = W.X[rows, W.feature_names.index(f"{c}_std")]
        noise = float(np.mean(sd ** 2 / n))
        between = float(np.var(m))
        out[c] = between / noise if noise > 0 else (math.inf if between > 0 else 1.0)
    return out


def drop_drifting(W: Windows, rows: np.ndarray, max_ratio: float | None):
    """(W restricted to the channels whose level ratio is at most `max_ratio`, the left-out
    channels with their ratios).  None keeps every channel."""
    if max_ratio is None:
        return W, {}
    ratios = level_ratios(W, rows)
    if not ratios:
        raise InputError("--max-level-ratio needs the mean and std stats")
    dropped = {c: r for c, r in ratios.items() if r > max_ratio}
    if len(dropped) == len(W.channels):
        raise InputError(f"every channel drifts more than --max-level-ratio {max_ratio:g} allows "
                         f"(ratios: {', '.join(f'{c} {r:.0f}' for c, r in ratios.items())}); "
                         "raise it or train on a longer, steadier period")
    if dropped:
        log(f"stage=select left out drifting channel(s): "
            f"{', '.join(f'{c} (level ratio {r:.0f})' for c, r in dropped.items())}")
    return W.select_channels([c for c in W.channels if c not in dropped]), dropped


def split_indices(W: Windows, rows: np.ndarray, method: str, seed: int):
    """(train, validation) index arrays over `rows`: chronological per device, or random."""
    if method == "random":
        perm = np.random.default_rng(seed).permutation(len(rows))
        n_val = max(1, int(round(len(rows) * VALIDATION_FRACTION)))
        return np.sort(rows[perm[n_val:]]), np.sort(rows[perm[:n_val]])
    train, val = [], []
    by_device: dict[str, list[int]] = {}
    for i in rows:
        by_device.setdefault(W.device[i], []).append(int(i))
    for idx in by_device.values():
        idx.sort(key=lambda i: (W.window_end[i], i))  # canonical RFC 3339 UTC sorts as time
        n_val = max(1, int(round(len(idx) * VALIDATION_FRACTION))) if len(idx) > 1 else 0
        train += idx[: len(idx) - n_val]
        val += idx[len(idx) - n_val:]
    return np.array(sorted(train), np.int64), np.array(sorted(val), np.int64)


# --------------------------------------------------------------------------
# The Rust binary: simulate, window, score
# --------------------------------------------------------------------------

resolve_bin = binary.resolve


def run_binary(args: list, what: str) -> None:
    binary.run(args, what)


@dataclass
class WindowOptions:
    size_secs: int = 60
    hop_secs: int | None = None
    channels: list | None = None  # None: auto
    csv: list = field(default_factory=list)  # extra `window` flags (CSV layout)

    def describe(self):
        hop = f" hop_secs={self.hop_secs}" if self.hop_secs else ""
        return f"window size_secs={self.size_secs}{hop}"


def window_telemetry(bin_path: Path, telemetry: Path, out: Path, opts: WindowOptions) -> Path:
    if not Path(telemetry).is_file():
        raise InputError(f"cannot read telemetry file {str(telemetry)!r}: no such file")
    args = [bin_path, "window", "--input", telemetry, "--out", out, "--size-secs", opts.size_secs,
            "--channels", ",".join(opts.channels) if opts.channels else "auto", *opts.csv]
    if opts.hop_secs:
        args += ["--hop-secs", opts.hop_secs]
    run_binary(args, "window")
    return out


def simulate_telemetry(bin_path: Path, out: Path, devices: int, hours: float, seed: int) -> Path:
    run_binary([bin_path, "simulate", "--healthy", "--devices", devices, "--hours", _num(hours),
                "--interval-secs", "1", "--seed", seed, "--fault-rate", "0", "--out", out], "simulate")
    return out


def rust_score(bin_path: Path, model_path: Path, W: Windows, tmpdir: Path) -> list[dict]:
    """Scores windows with the production scorer; returns one result per window, in order."""
    inp, out = Path(tmpdir) / "score-input.jsonl", Path(tmpdir) / "score-output.jsonl"
    usable = np.all(np.isfinite(W.X), axis=1)
    with open(inp, "w", encoding="utf-8") as fh:
        for i in np.flatnonzero(usable):
            rec = {"device_id": W.device[i], "window_end": W.window_end[i]}
            rec.update(zip(W.feature_names, (float(v) for v in W.X[i])))
            fh.write(json.dumps(rec) + "\n")
    run_binary([bin_path, "score", "--model", model_path, "--input", inp, "--out", out], "score")
    results = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    if len(results) != int(usable.sum()):
        raise PipelineError(f"score returned {len(results)} results for {int(usable.sum())} windows")
    by_index = dict(zip(np.flatnonzero(usable).tolist(), results))
    return [by_index.get(i) for i in range(len(W))]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


# --------------------------------------------------------------------------
# Threshold calibration
# --------------------------------------------------------------------------

def calibrate(scores: np.ndarray, labels: np.ndarray | None, rule: str, quantile: float,
              margin: float) -> tuple[float, dict]:
    """The alert threshold (alarm when score >= threshold) and how it was chosen."""
    scores = np.asarray(scores, np.float64)
    if rule == "quantile":
        healthy = scores if labels is None else scores[labels == 0]
        if len(healthy) == 0:
            raise InputError("no healthy validation windows to take a score quantile from")
        thr = float(np.quantile(healthy, quantile)) * margin
        return thr, {"rule": "quantile", "quantile": quantile, "margin": margin,
                     "validation_windows": int(len(healthy))}
    if labels is None or not (labels == 1).any() or not (labels == 0).any():
        raise InputError(f"--threshold {rule} needs labelled validation data with both healthy and "
                         "anomalous windows (--validation FILE with a label column)")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y == 1)
    fp = np.cumsum(y == 0)
    last = np.r_[s[1:] != s[:-1], True]  # candidate thresholds: each distinct score
    tp, fp, cand = tp[last], fp[last], s[last]
    precision = tp / (tp + fp)
    recall = tp / (labels == 1).sum()
    if rule == "max-f1":
        f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-300), 0.0)
        k = int(np.argmax(f1))
        info = {"rule": "max-f1", "validation_f1": float(f1[k])}
    else:
        target = float(rule.split(":", 1)[1])
        ok = np.flatnonzero(precision >= target)
        if len(ok) == 0:
            raise InputError(f"no threshold reaches precision {target} on the validation data "
                             f"(best {precision.max():.3f})")
        k = int(ok[-1])  # the lowest such threshold: most recall at that precision
        info = {"rule": "precision", "target_precision": target}
    info.update({"validation_precision": float(precision[k]), "validation_recall": float(recall[k]),
                 "validation_windows": int(len(scores))})
    return float(cand[k]), info


# --------------------------------------------------------------------------
# Training and export
# --------------------------------------------------------------------------

def _floats(a) -> list[float]:
    return [float(v) for v in np.asarray(a).ravel()]


def model_version(kind: str, bare_model: bytes, threshold_str: str) -> str:
    h = hashlib.sha256(bare_model)
    h.update(threshold_str.encode("ascii"))
    return f"{detectors.VERSION_PREFIX[kind]}-{h.hexdigest()[:12]}"


def standardization(X_train: np.ndarray, W: Windows):
    """Training mean and sample std, rounded to float32 (exactly what the graph uses)."""
    check_not_constant(W, X_train, "training windows")
    mean = X_train.mean(axis=0).astype(np.float32)
    std = X_train.std(axis=0, ddof=1).astype(np.float32)
    if not np.all(std > 0):  # e.g. a std that underflows in float32
        bad = [W.feature_names[j] for j in np.flatnonzero(~(std > 0))]
        raise InputError(f"feature std is zero in float32: {', '.join(bad)}")
    return mean, std


@dataclass
class TrainOptions:
    detector: str = "autoencoder"
    seed: int = 7
    hidden: tuple = (16, 8, 16)
    max_iter: int = 200
    denoise: bool = True
    pca_variance: float = 0.9
    trees: int = 100
    threshold: str = "quantile"
    threshold_quantile: float = 0.999
    threshold_margin: float = 1.0
    split: str = "chronological"
    min_samples: int | None = None
    max_level_ratio: float | None = None  # leave out channels whose level drifts more (None: keep all)
    far_folds: int = 0  # estimate the false-alarm rate on unseen normal data with this many refits
    min_rows: int = MIN_ROWS


def fit(W: Windows, opts: TrainOptions, validation: Windows | None = None, source: str = ""):
    """Fit, calibrate and export.  Returns (model bytes, info dict)."""
    if opts.detector not in detectors.DETECTORS:
        raise InputError(f"unknown detector {opts.detector!r} ({', '.join(detectors.DETECTORS)})")
    started = time.monotonic()
    rows = fit_rows(W, opts.min_samples, "training")
    W, left_out = drop_drifting(W, rows, opts.max_level_ratio)
    if validation is not None and left_out:
        validation = validation.select_channels(W.channels)
    if validation is None:
        train_idx, val_idx = split_indices(W, rows, opts.split, opts.seed)
        V = W.subset(val_idx)
        val_labels = None  # healthy by construction
    else:
        train_idx = rows
        vrows = np.flatnonzero(np.all(np.isfinite(validation.X), axis=1))
        V = validation.subset(vrows)
        val_labels = V.label
    if len(train_idx) < opts.min_rows:
        raise InputError(f"too few rows: {len(train_idx)} usable training window(s), need at least "
                         f"{opts.min_rows} (more telemetry, or smaller/hopping windows)")
    if len(V) == 0:
        raise InputError("no usable validation windows")
    X_train = W.X[train_idx]
    log(f"stage=split train={len(train_idx)} validation={len(V)} "
        f"({'--validation file' if validation is not None else opts.split})")
    mean, std = standardization(X_train, W)
    Z_train = detectors.standardize(X_train, mean, std)
    log(f"stage=fit detector={opts.detector} features={X_train.shape[1]}")
    t_fit = time.monotonic()
    if opts.detector == "autoencoder":
        det = detectors.Autoencoder.fit(
            Z_train, seed=opts.seed, hidden=opts.hidden, max_iter=opts.max_iter, denoise=opts.denoise,
            X_train=X_train, mean=mean, std=std, feature_channels=W.feature_channels,
            feature_stats=W.feature_stats, log=log)
    elif opts.detector == "pca":
        det = detectors.PCA.fit(Z_train, variance=opts.pca_variance, log=log)
    else:
        det = detectors.IsolationForest.fit(X_train, seed=opts.seed, n_estimators=opts.trees, log=log)
    fit_secs = time.monotonic() - t_fit

    model = detectors.to_onnx(det, mean, std)
    bare = model.SerializeToString()
    val_scores = detectors.ort_run(bare, V.X).astype(np.float64).sum(axis=1)
    threshold, calibration = calibrate(val_scores, val_labels, opts.threshold,
                                       opts.threshold_quantile, opts.threshold_margin)
    if not (threshold > 0 and math.isfinite(threshold)):
        raise InputError(f"calibrated threshold {threshold!r} is not a positive number")
    log(f"stage=threshold {json.dumps(calibration, sort_keys=True)} threshold={threshold!r}")
    threshold_str = repr(float(threshold))
    summary = {
        "detector": opts.detector,
        "rows_train": int(len(train_idx)),
        "rows_validation": int(len(V)),
        "seed": int(opts.seed),
        "split": "validation file" if validation is not None else opts.split,
        "threshold_calibration": calibration,
        "validation_score_quantiles": {k: float(np.quantile(val_scores, q)) for k, q in SCORE_QUANTILES.items()},
        "source": source,
        "channels": W.channels,
        "stats": W.stats,
        "left_out_channels": {c: round(r, 1) for c, r in left_out.items()},
        "max_level_ratio": opts.max_level_ratio,
        **det.summary(),
    }
    if opts.far_folds:
        summary["expected_false_alarms"] = expected_false_alarms(W, opts, validation)
    meta = {
        "anomaly.contract": "1",
        "anomaly.detector": opts.detector,
        "anomaly.model_version": model_version(opts.detector, bare, threshold_str),
        "anomaly.feature_names": json.dumps(W.feature_names),
        "anomaly.feature_channels": json.dumps(W.feature_channels),
        "anomaly.threshold": threshold_str,
        # float32 values exactly as used by the graph, written as Python float reprs
        "anomaly.feature_mean": json.dumps(_floats(mean)),
        "anomaly.feature_std": json.dumps(_floats(std)),
        "anomaly.feature_quantiles": json.dumps(
            {k: _floats(np.quantile(X_train, q, axis=0)) for k, q in FEATURE_QUANTILES.items()}, sort_keys=True),
        "anomaly.training_summary": json.dumps(summary, sort_keys=True),
    }
    from onnx import helper

    helper.set_model_props(model, meta)  # metadata only: the graph checked above is unchanged
    final = model.SerializeToString()
    info = {"threshold": threshold, "model_version": meta["anomaly.model_version"], "summary": summary,
            "detector": det, "mean": mean, "std": std, "validation": V, "windows": W, "validation_scores": val_scores,
            "seconds": time.monotonic() - started, "fit_seconds": fit_secs}
    return final, info


def far_blocks(W: Windows, rows: np.ndarray, split: str, folds: int, seed: int):
    """(fit rows, test rows) per fold. Chronological: forward chaining -- each device's windows
    in time order cut into folds + 1 blocks; fold k fits on the blocks before k and is counted on
    block k, so it meets later operation (drift included) as the model will in service. Random:
    k-fold over the rows."""
    if split == "random":
        perm = np.random.default_rng(seed).permutation(rows)
        parts = np.array_split(perm, folds)
        return [(np.sort(np.concatenate([q for j, q in enumerate(parts) if j != k])), np.sort(p))
                for k, p in enumerate(parts)]
    by_device: dict[str, list[int]] = {}
    for i in rows:
        by_device.setdefault(W.device[i], []).append(int(i))
    chunks = []
    for idx in by_device.values():
        idx.sort(key=lambda i: (W.window_end[i], i))
        chunks.append(np.array_split(np.array(idx, np.int64), folds + 1))
    return [(np.sort(np.concatenate([c[j] for c in chunks for j in range(k)])),
             np.sort(np.concatenate([c[k] for c in chunks])))
            for k in range(1, folds + 1)]


def expected_false_alarms(W: Windows, opts: TrainOptions, validation: Windows | None = None) -> dict:
    """How often a model fitted this way alarms on normal operation it has not seen, from the
    training windows alone (no labels: they are taken as normal, as for fitting). The same
    options, threshold rule included, are refitted on part of the windows and the alarms counted
    on the rest (`far_blocks`). The threshold's own calibration cannot say this: a quantile of
    the calibration windows alarms on 1 - q of them by construction."""
    rows = np.flatnonzero(np.all(np.isfinite(W.X), axis=1))
    inner = replace(opts, far_folds=0)
    folds, alarms, counted = [], 0, 0
    level = logger.level
    logger.setLevel(logging.WARNING)  # the refits would repeat every progress line
    try:
        for k, (fit_idx, test_idx) in enumerate(far_blocks(W, rows, opts.split, opts.far_folds, opts.seed), 1):
            fold = {"fold": k, "fit_windows": int(len(fit_idx)), "windows": int(len(test_idx))}
            try:
                data, info = fit(W.subset(fit_idx), inner, validation)
            except InputError as e:
                fold["error"] = str(e).splitlines()[0]
                folds.append(fold)
                continue
            T = W.subset(test_idx).select_channels(info["windows"].channels)
            scores = detectors.ort_run(data, T.X).astype(np.float64).sum(axis=1)
            n = int(np.sum(scores >= info["threshold"]))
            fold.update(alarms=n, far=n / len(test_idx) if len(test_idx) else 0.0)
            folds.append(fold)
            alarms, counted = alarms + n, counted + len(test_idx)
    finally:
        logger.setLevel(level)
    out = {"method": "k-fold" if opts.split == "random" else "forward chaining",
           "folds": folds, "windows": counted, "alarms": alarms,
           "far": alarms / counted if counted else None}
    far = "n/a" if out["far"] is None else f"{out['far']:.4f}"
    log(f"stage=expected_far method={out['method']} folds={opts.far_folds} windows={counted} "
        f"alarms={alarms} far={far}")
    return out


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def parse_hidden(s: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(p) for p in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}")
    if not sizes or any(h <= 0 for h in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {s!r}")
    return sizes


def _number_arg(kind, check, requirement: str):
    """An argparse type: parse with `kind`, accept when `check(value)` holds."""
    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'number' if kind is float else 'whole number'}: {s!r}")
        if not check(v):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {s}")
        return v
    return parse


_quantile_arg = _number_arg(float, lambda q: 0.0 < q <= 1.0, "in (0, 1]")
_fraction_arg = _number_arg(float, lambda q: 0.0 < q < 1.0, "in (0, 1)")
_positive_int = _number_arg(int, lambda v: v > 0, "> 0")
_positive_float = _number_arg(float, lambda v: math.isfinite(v) and v > 0, "> 0")


def _threshold_arg(s: str) -> str:
    if s in ("quantile", "max-f1"):
        return s
    if s.startswith("precision:"):
        _fraction_arg(s.split(":", 1)[1])
        return s
    raise argparse.ArgumentTypeError(f"expected quantile, max-f1 or precision:P, got {s!r}")


def _list_arg(s: str) -> list[str]:
    items = [p.strip() for p in s.split(",") if p.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sensor-anomaly-train",
        description="Train an anomaly detector on sensor telemetry and export the contract ONNX "
                    "model (models/README.md) plus an evaluation report. Features are computed "
                    "by the Rust `window` command, exactly as in serving.",
        epilog="Exit codes: 0 ok, 2 bad input/usage (message names the problem), 1 other failure. "
               "Progress goes to stderr, the summary to stdout. Same input, options and seed give "
               "a byte-identical ONNX file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("training data (default: a simulated healthy fleet)")
    src.add_argument("--telemetry", metavar="FILE",
                     help="your telemetry: CSV or JSON lines, one row per sample: timestamp, device "
                          "(optional), one column per channel, optional 0/1 label column")
    src.add_argument("--windows", metavar="FILE", help="already-windowed features (window JSONL)")
    src.add_argument("--validation", metavar="FILE",
                     help="validation data of the same kind (telemetry or windows), used for the "
                          "threshold instead of a hold-out of the training data")
    src.add_argument("--test", metavar="FILE",
                     help="labelled data of the same kind to evaluate in the report (never used "
                          "for fitting or the threshold)")
    src.add_argument("--channels", type=_list_arg, metavar="A,B",
                     help="channels to use (default: all numeric columns; simulated: the five)")
    src.add_argument("--stats", type=_list_arg, default=list(STATS), metavar="S,..",
                     help="window statistics used as features, among mean,std,min,max")
    src.add_argument("--window-secs", type=_positive_int, default=60, help="window size")
    src.add_argument("--hop-secs", type=_positive_int,
                     help="hop for hopping windows (default: tumbling)")
    src.add_argument("--timestamp-column", help="CSV timestamp column (default: timestamp, datetime or time)")
    src.add_argument("--device-column", default="device_id", help="CSV device column")
    src.add_argument("--label-column", default="label", help="CSV 0/1 anomaly label column (optional)")
    src.add_argument("--ignore-columns", type=_list_arg, metavar="A,B",
                     help="CSV columns that are neither channels nor labels")
    src.add_argument("--bin", default=DEFAULT_BIN, help="the Rust binary (window, simulate, score)")
    src.add_argument("--devices", type=_positive_int, default=20, help="simulated devices")
    src.add_argument("--hours", type=_positive_float, default=48.0, help="simulated hours per device (1 Hz samples)")
    mdl = p.add_argument_group("model")
    mdl.add_argument("--detector", choices=detectors.DETECTORS, default="autoencoder")
    mdl.add_argument("--seed", type=int, default=7,
                     help="seed for simulation, the split and the detector")
    mdl.add_argument("--hidden", type=parse_hidden, default="16,8,16", metavar="SIZES",
                     help="autoencoder hidden layer sizes")
    mdl.add_argument("--no-denoise", action="store_true",
                     help="autoencoder: identity target instead of restoring one corrupted channel "
                          "(denoising attributes faults to the right channel more often)")
    mdl.add_argument("--max-iter", type=_positive_int, default=200, help="autoencoder epochs (adam)")
    mdl.add_argument("--pca-variance", type=_fraction_arg, default=0.9,
                     help="pca: keep components up to this share of variance")
    mdl.add_argument("--trees", type=_positive_int, default=100, help="iforest: trees")
    mdl.add_argument("--min-samples", type=int,
                     help="fit only on windows with at least this many samples (default: half the "
                          "median window's; partial windows at a stream's start look anomalous)")
    mdl.add_argument("--max-level-ratio", type=_positive_float, metavar="R",
                     help="leave out channels whose level wanders more than R times what their "
                          "sample noise explains over the training windows (a warming-up "
                          "temperature: its normal range cannot be learned from a short period); "
                          "needs the mean and std stats. Default: keep every channel")
    mdl.add_argument("--far-folds", type=_number_arg(int, lambda v: 0 <= v <= 20, "between 0 and 20"), default=3, metavar="N",
                     help="estimate the false-alarm rate on normal data the model has not seen: "
                          "refit N times on part of the training windows and count alarms on the "
                          "rest (forward in time for the chronological split); in the report and "
                          "the model's training summary. 0 skips it")
    thr = p.add_argument_group("threshold")
    thr.add_argument("--threshold", type=_threshold_arg, default="quantile",
                     help="quantile (of healthy validation scores), max-f1 or precision:P "
                          "(both need labelled --validation data)")
    thr.add_argument("--threshold-quantile", type=_quantile_arg, default=0.999, metavar="Q")
    thr.add_argument("--threshold-margin", type=_positive_float, default=1.0, metavar="M",
                     help="multiply the quantile threshold by M (headroom for drift the "
                          "validation data does not show)")
    thr.add_argument("--split", choices=("chronological", "random"), default="chronological",
                     help="how to hold out validation windows when there is no --validation file")
    out = p.add_argument_group("output")
    out.add_argument("--out", help=f"output ONNX path (default: {MODELS_DIR}/<model_version>.onnx, a new "
                                   "file named after the model; the shipped models/default.onnx is only "
                                   "replaced when named here)")
    out.add_argument("--report", metavar="DIR",
                     help="report directory (default: reports/<model name>/)")
    out.add_argument("--no-report", action="store_true", help="skip the report")
    out.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def options_from_args(args) -> TrainOptions:
    return TrainOptions(detector=args.detector, seed=args.seed, hidden=tuple(args.hidden),
                        max_iter=args.max_iter, denoise=not args.no_denoise,
                        pca_variance=args.pca_variance, trees=args.trees, threshold=args.threshold,
                        threshold_quantile=args.threshold_quantile,
                        threshold_margin=args.threshold_margin, split=args.split,
                        min_samples=args.min_samples, max_level_ratio=args.max_level_ratio,
                        far_folds=args.far_folds)


def run(args) -> dict:
    bad_stats = [s for s in args.stats if s not in STATS]
    if bad_stats:
        raise InputError(f"unknown stat(s) {', '.join(bad_stats)} (mean, std, min, max)")
    if args.telemetry and args.windows:
        raise InputError("give --telemetry or --windows, not both")
    if args.threshold != "quantile" and not args.validation:
        raise InputError(f"--threshold {args.threshold} needs labelled --validation data")
    opts = options_from_args(args)
    bin_path = resolve_bin(args.bin)
    wopts = WindowOptions(size_secs=args.window_secs, hop_secs=args.hop_secs, channels=args.channels)
    if args.timestamp_column:
        wopts.csv += ["--timestamp-column", args.timestamp_column]
    wopts.csv += ["--device-column", args.device_column, "--label-column", args.label_column]
    if args.ignore_columns:
        wopts.csv += ["--ignore-columns", ",".join(args.ignore_columns)]
    channels = args.channels
    with tempfile.TemporaryDirectory(prefix="sensor-anomaly-train-") as td:
        td = Path(td)

        def windows_of(path, name):
            if args.windows:
                return Path(path)
            return window_telemetry(bin_path, Path(path), td / f"{name}.jsonl", wopts)

        if args.telemetry or args.windows:
            train_file = windows_of(args.telemetry or args.windows, "train")
            given = Path(args.telemetry or args.windows)
            source = f"{'telemetry' if args.telemetry else 'windows'}:{given.name}"
        else:
            if args.validation or args.test:
                raise InputError("--validation and --test need --telemetry or --windows")
            log(f"stage=simulate devices={args.devices} hours={_num(args.hours)} seed={args.seed}")
            channels = channels or CHANNELS
            wopts.channels = channels
            samples = simulate_telemetry(bin_path, td / "samples.jsonl", args.devices, args.hours, args.seed)
            train_file = window_telemetry(bin_path, samples, td / "train.jsonl", wopts)
            source = (f"simulate:healthy devices={args.devices} hours={_num(args.hours)} "
                      f"interval_secs=1 seed={args.seed}")
        if not args.windows:
            source += f"; {wopts.describe()}"
        W = load_windows(train_file, channels, args.stats)
        digest = hashlib.sha256(train_file.read_bytes()).hexdigest()[:16]
        source += f" sha256={digest}"
        log(f"stage=load windows={len(W)} channels={','.join(W.channels)} stats={','.join(W.stats)}")
        validation = (load_windows(windows_of(args.validation, "validation"), W.channels, W.stats)
                      if args.validation else None)
        test = load_windows(windows_of(args.test, "test"), W.channels, W.stats) if args.test else None
        data, info = fit(W, opts, validation, source)
        out = Path(args.out) if args.out else Path(MODELS_DIR) / f"{info['model_version']}.onnx"
        write_atomic(out, data)
        log(f"stage=write out={out} bytes={len(data)} sha256={hashlib.sha256(data).hexdigest()[:16]}")
        report_dir = None
        if not args.no_report:
            from . import report

            report_dir = Path(args.report) if args.report else Path("reports") / out.stem
            log(f"stage=report scoring with the Rust scorer -> {report_dir}")
            evaluated = test if test is not None else info["validation"]
            results = rust_score(bin_path, out, evaluated, td)
            report.write(report_dir, model_path=out, info=info, windows=evaluated, results=results,
                         evaluated_name="test data" if test is not None else
                         ("validation file" if validation is not None else "held-out validation windows"))
    s = info["summary"]
    print(f"detector:        {s['detector']}")
    print(f"windows:         train {s['rows_train']}, validation {s['rows_validation']}")
    print(f"threshold:       {info['threshold']!r} ({json.dumps(s['threshold_calibration'], sort_keys=True)})")
    print(f"model_version:   {info['model_version']}")
    print(f"output:          {out}")
    if report_dir:
        print(f"report:          {report_dir / 'report.md'}")
    print(f"seconds:         {info['seconds']:.1f}")
    return info


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="[train] %(message)s", stream=sys.stderr, force=True)
    try:
        run(args)
    except InputError as e:
        print(f"sensor-anomaly-train: error: {e}", file=sys.stderr)
        return 2
    except PipelineError as e:
        print(f"sensor-anomaly-train: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
