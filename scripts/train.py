#!/usr/bin/env python3
"""Train the sensor-anomaly autoencoder and export it as a single ONNX file.

Pipeline (see notes/contract.md for the model contract):

 1. Training data.  By default the Rust binary produces it, so that training
    features are computed by exactly the code that computes serving features:

        sensor-anomaly simulate --healthy --devices D --hours H --interval-secs 1 \\
            --seed SEED --fault-rate 0 --out <tmp>/samples.jsonl
        sensor-anomaly window --input <tmp>/samples.jsonl \\
            --out <tmp>/windows.jsonl --size-secs 60

    With --windows FILE an existing window JSONL file is used instead and the
    binary is not needed.

 2. Validation.  The 20 contract features are read from every JSON line, in
    contract order.  A missing column, a non-numeric or non-finite value, fewer
    than 200 rows or a constant column is an error (message on stderr, exit 2).

 3. Training.  Seeded 80/20 train/validation split; standardization with the
    training mean and sample std (ddof=1); sklearn MLPRegressor (tanh hidden
    layers, identity output) trained to reproduce z from z.

 4. Export.  ONNX graph (opset 17, ir_version 8):
        features[N,20] -> Sub(mean) -> Div(std) -> z
        z -> (MatMul W + Add b + Tanh)* -> MatMul W + Add b -> r
        contributions[N,20] = (z - r)^2 * (1/20)        (score = row sum)
    The alert threshold is the --threshold-quantile quantile of the validation
    scores computed by running this very graph in ONNX Runtime, so it is in
    exactly the units the server computes.  Contract metadata_props are added
    and the model is checked with onnx.checker.

The output is byte-for-byte reproducible: same input + same options (seed,
hidden, max-iter, ...) give the same file (no timestamps, deterministic
model_version = "ae-" + sha256(weights, biases, mean, std, threshold)[:12]).

Exit codes: 0 success, 2 bad input or usage, 1 other failure (e.g. the Rust
binary failed).

Examples:
    .venv/bin/python scripts/train.py                        # simulate + train
    .venv/bin/python scripts/train.py --windows w.jsonl --out models/m.onnx
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = "target/release/sensor-anomaly"
DEFAULT_OUT = "models/default.onnx"

CHANNELS = ["temperature", "humidity", "vibration", "pressure", "sound"]
STATS = ["mean", "std", "min", "max"]
FEATURE_NAMES = [f"{ch}_{st}" for ch in CHANNELS for st in STATS]
FEATURE_CHANNELS = [ch for ch in CHANNELS for _ in STATS]
N_FEATURES = len(FEATURE_NAMES)

MIN_ROWS = 200
VALIDATION_FRACTION = 0.2
ACTIVATION = "tanh"
OPSET = 17
IR_VERSION = 8
INPUT_NAME = "features"
OUTPUT_NAME = "contributions"
EXPECTED_NAME = "expected"  # optional output: the value the model expected, raw units

FEATURE_QUANTILES = {"q01": 0.01, "q05": 0.05, "q50": 0.50, "q95": 0.95, "q99": 0.99}
SCORE_QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p995": 0.995, "p999": 0.999}


class InputError(Exception):
    """Bad input data or options: reported on stderr, exit code 2."""


class PipelineError(Exception):
    """A step outside our control failed (e.g. the Rust binary): exit code 1."""


def log(msg: str) -> None:
    print(f"[train] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_windows(path, min_rows: int = MIN_ROWS, check_constant: bool = True):
    """Read a window JSONL file.

    Returns (X, records): X is float64 [n, 20] in contract feature order and
    records is the list of parsed JSON objects (same order).  Blank lines are
    skipped; line numbers in messages are 1-based physical line numbers.
    Raises InputError on any contract violation.
    """
    path = Path(path)
    try:
        fh = open(path, "r", encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read windows file {str(path)!r}: {e.strerror}") from None
    rows, records = [], []
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
            row = []
            for name in FEATURE_NAMES:
                if name not in rec:
                    raise InputError(f"{path}:{lineno}: missing feature column {name!r}")
                v = rec[name]
                if not _is_number(v):
                    raise InputError(
                        f"{path}:{lineno}: column {name!r} has non-numeric value {json.dumps(v)}"
                    )
                fv = float(v)
                if not math.isfinite(fv):
                    raise InputError(f"{path}:{lineno}: column {name!r} has non-finite value {v!r}")
                row.append(fv)
            rows.append(row)
            records.append(rec)
    n = len(rows)
    if n < min_rows:
        raise InputError(f"{path}: too few rows: {n} window(s), need at least {min_rows}")
    X = np.asarray(rows, dtype=np.float64).reshape(n, N_FEATURES)
    if check_constant:
        check_not_constant(X, f"{path}")
    return X, records


def check_not_constant(X: np.ndarray, where: str) -> None:
    # all values equal <=> std == 0 (checked exactly, immune to rounding in the mean)
    const = [FEATURE_NAMES[j] for j in range(X.shape[1]) if X[:, j].min() == X[:, j].max()]
    if const:
        raise InputError(
            f"{where}: constant feature column(s) (std == 0), cannot standardize: {', '.join(const)}"
        )


# --------------------------------------------------------------------------
# Data generation through the Rust binary
# --------------------------------------------------------------------------

def run_binary(args: list[str], what: str) -> None:
    log(f"stage=run cmd={' '.join(args)}")
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise InputError(f"binary not found: {args[0]} (build it with `cargo build --release` or pass --bin / --windows)") from None
    except PermissionError:
        raise InputError(f"binary not executable: {args[0]}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-20:])
        raise PipelineError(f"`{what}` failed with exit code {proc.returncode}:\n{tail}")


def _require_output(path: Path, what: str) -> None:
    if not path.is_file() or path.stat().st_size == 0:
        raise PipelineError(f"`{what}` exited 0 but wrote no output to {path}")


def simulate_windows(bin_path: Path, tmpdir: Path, devices: int, hours: float, seed: int) -> Path:
    samples = tmpdir / "samples.jsonl"
    windows = tmpdir / "windows.jsonl"
    b = str(bin_path)
    run_binary([b, "simulate", "--healthy", "--devices", str(devices), "--hours", _num(hours),
                "--interval-secs", "1", "--seed", str(seed), "--fault-rate", "0",
                "--out", str(samples)], "simulate")
    _require_output(samples, "simulate")
    run_binary([b, "window", "--input", str(samples), "--out", str(windows),
                "--size-secs", "60"], "window")
    _require_output(windows, "window")
    return windows


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------

def split_indices(n: int, seed: int):
    """Deterministic 80/20 split: returns (train_idx, val_idx), each sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * VALIDATION_FRACTION)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def standardization(X_train: np.ndarray):
    """Training mean and sample std, rounded to float32 (exactly what the graph uses)."""
    check_not_constant(X_train, "training split")
    mean = X_train.mean(axis=0).astype(np.float32)
    std = X_train.std(axis=0, ddof=1).astype(np.float32)
    if not np.all(std > 0):  # e.g. a std that underflows in float32
        bad = [FEATURE_NAMES[j] for j in np.flatnonzero(~(std > 0))]
        raise InputError(f"feature std is zero in float32: {', '.join(bad)}")
    return mean, std


def standardize(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (X - mean.astype(np.float64)) / std.astype(np.float64)


class _IterationFilter(io.TextIOBase):
    """Forwards sklearn's verbose lines to stderr, only every `every` iterations."""

    def __init__(self, every: int):
        self.every, self.buf = max(1, every), ""

    def writable(self):
        return True

    def write(self, s):
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line.startswith("Iteration "):
                try:
                    it = int(line.split()[1].rstrip(","))
                except (IndexError, ValueError):
                    it = 0
                if it != 1 and it % self.every:
                    continue
                log("stage=fit " + line.replace("Iteration ", "iter=").replace(", loss = ", " loss="))
            elif line.strip():
                log("stage=fit " + line.strip())
        return len(s)


def train_autoencoder(Z_train: np.ndarray, hidden: tuple[int, ...], seed: int, max_iter: int,
                      tol: float = 1e-6, progress: bool = True, Z_target: np.ndarray | None = None):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    model = MLPRegressor(hidden_layer_sizes=hidden, activation=ACTIVATION, solver="adam",
                         random_state=seed, max_iter=max_iter, early_stopping=False,
                         tol=tol, shuffle=True, verbose=progress)
    sink = _IterationFilter(max(1, max_iter // 10)) if progress else io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sink):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(Z_train, Z_train if Z_target is None else Z_target)
    if progress:
        log(f"stage=fit done iterations={model.n_iter_} final_loss={model.loss_:.8f}")
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            log(f"stage=fit note: reached --max-iter={max_iter} before convergence (tol={tol})")
    return model


def corrupt_channels(X: np.ndarray, std: np.ndarray, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Copies of the windows with one channel each made faulty: shifted, stuck or noisy.

    Trained to map these back to the clean windows (a denoising autoencoder), the network learns
    to predict each channel from the others instead of copying it, so a faulty channel's error
    stays on that channel and the per-channel contributions name it.
    Features are grouped per channel as [mean, std, min, max] (the contract order).
    """
    Xc = X.astype(np.float64).copy()
    n = Xc.shape[0]
    which = rng.integers(0, channels, size=n)
    kind = rng.integers(0, 3, size=n)
    for i in range(n):
        m, s, lo, hi = (4 * which[i] + k for k in range(4))
        if kind[i] == 0:  # shift (drift, dip, offset)
            delta = rng.uniform(1.0, 5.0) * std[m] * rng.choice([-1.0, 1.0])
            Xc[i, [m, lo, hi]] += delta
        elif kind[i] == 1:  # stuck sensor
            Xc[i, s] = 0.0
            Xc[i, lo] = Xc[i, hi] = Xc[i, m]
        else:  # noisier sensor
            k = rng.uniform(3.0, 8.0)
            Xc[i, s] *= k
            Xc[i, lo] = Xc[i, m] - (Xc[i, m] - Xc[i, lo]) * k
            Xc[i, hi] = Xc[i, m] + (Xc[i, hi] - Xc[i, m]) * k
    return Xc


def reconstruction_mse(model, Z: np.ndarray) -> np.ndarray:
    """Per-row mean squared reconstruction error in float64 (reference for the graph)."""
    R = model.predict(Z)
    return np.mean((Z - R) ** 2, axis=1)


# --------------------------------------------------------------------------
# ONNX export
# --------------------------------------------------------------------------

def model_layers(model):
    """[(W float32 [in,out], b float32 [out]), ...] from a fitted MLPRegressor."""
    return [(np.asarray(W, dtype=np.float32), np.asarray(b, dtype=np.float32))
            for W, b in zip(model.coefs_, model.intercepts_)]


def build_graph_model(mean, std, layers, metadata: dict | None = None):
    """Build the contract ONNX model (a ModelProto) from float32 arrays."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.asarray(mean, np.float32), "feature_mean"),
             numpy_helper.from_array(np.asarray(std, np.float32), "feature_std"),
             numpy_helper.from_array(np.array(1.0 / N_FEATURES, np.float32), "inv_num_features")]
    nodes = [helper.make_node("Sub", [INPUT_NAME, "feature_mean"], ["centered"], name="center"),
             helper.make_node("Div", ["centered", "feature_std"], ["z"], name="standardize")]
    h = "z"
    last = len(layers) - 1
    for i, (W, b) in enumerate(layers):
        inits.append(numpy_helper.from_array(W, f"layer{i}_W"))
        inits.append(numpy_helper.from_array(b, f"layer{i}_b"))
        nodes.append(helper.make_node("MatMul", [h, f"layer{i}_W"], [f"layer{i}_mm"], name=f"layer{i}_matmul"))
        out = "reconstruction" if i == last else f"layer{i}_pre"
        nodes.append(helper.make_node("Add", [f"layer{i}_mm", f"layer{i}_b"], [out], name=f"layer{i}_add"))
        if i != last:  # MLPRegressor output layer is the identity
            nodes.append(helper.make_node("Tanh", [out], [f"layer{i}_act"], name=f"layer{i}_tanh"))
            h = f"layer{i}_act"
    nodes += [helper.make_node("Sub", ["z", "reconstruction"], ["residual"], name="residual"),
              helper.make_node("Mul", ["residual", "residual"], ["squared"], name="square"),
              helper.make_node("Mul", ["squared", "inv_num_features"], [OUTPUT_NAME], name="scale"),
              # What the model expected each feature to be, in raw units (for explanations).
              helper.make_node("Mul", ["reconstruction", "feature_std"], ["expected_centered"], name="unscale"),
              helper.make_node("Add", ["expected_centered", "feature_mean"], [EXPECTED_NAME], name="uncenter")]
    graph = helper.make_graph(
        nodes, "sensor_anomaly_autoencoder",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", N_FEATURES])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", N_FEATURES]),
                 helper.make_tensor_value_info(EXPECTED_NAME, TensorProto.FLOAT, ["N", N_FEATURES])],
        initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="sensor-anomaly scripts/train.py", producer_version="1")
    m.ir_version = IR_VERSION
    m.doc_string = ("Autoencoder anomaly detector. contributions = (z - AE(z))^2 / F with "
                    "z = (features - mean) / std; score = row sum of contributions.")
    if metadata:
        helper.set_model_props(m, metadata)
    onnx.checker.check_model(m, full_check=True)
    return m


def ort_contributions(model_bytes: bytes, X: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})[0]


def model_version(mean, std, layers, threshold_str: str) -> str:
    h = hashlib.sha256()
    for a in [mean, std] + [x for wb in layers for x in wb]:
        h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
    h.update(threshold_str.encode("ascii"))
    return "ae-" + h.hexdigest()[:12]


def _floats(a) -> list[float]:
    return [float(v) for v in np.asarray(a).ravel()]


def build_metadata(*, mean, std, layers, threshold: float, X_train, val_scores, rows_train,
                   rows_validation, seed, hidden, iterations, threshold_quantile, source,
                   denoise: bool = False) -> dict:
    threshold_str = repr(float(threshold))
    fq = {k: _floats(np.quantile(X_train, q, axis=0)) for k, q in FEATURE_QUANTILES.items()}
    sq = {k: float(np.quantile(val_scores, q)) for k, q in SCORE_QUANTILES.items()}
    summary = {
        "rows_train": int(rows_train),
        "rows_validation": int(rows_validation),
        "seed": int(seed),
        "hidden_layers": [int(h) for h in hidden],
        "activation": ACTIVATION,
        "iterations": int(iterations),
        "threshold_quantile": float(threshold_quantile),
        "validation_score_quantiles": sq,
        "source": source,
        "denoising": bool(denoise),
    }
    return {
        "anomaly.contract": "1",
        "anomaly.detector": "autoencoder",
        "anomaly.model_version": model_version(mean, std, layers, threshold_str),
        "anomaly.feature_names": json.dumps(FEATURE_NAMES),
        "anomaly.feature_channels": json.dumps(FEATURE_CHANNELS),
        "anomaly.threshold": threshold_str,
        # float32 values exactly as used by the graph, written as Python float reprs
        "anomaly.feature_mean": json.dumps(_floats(mean)),
        "anomaly.feature_std": json.dumps(_floats(std)),
        "anomaly.feature_quantiles": json.dumps(fq, sort_keys=True),
        "anomaly.training_summary": json.dumps(summary, sort_keys=True),
    }


# --------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------

def train_from_matrix(X: np.ndarray, *, seed: int, hidden: tuple[int, ...], max_iter: int,
                      threshold_quantile: float, source: str, progress: bool = True,
                      denoise: bool = True):
    """Train + export.  Returns (model_bytes, info dict)."""
    n = X.shape[0]
    train_idx, val_idx = split_indices(n, seed)
    X_train, X_val = X[train_idx], X[val_idx]
    if progress:
        log(f"stage=split rows={n} train={len(train_idx)} validation={len(val_idx)} seed={seed}")
    mean, std = standardization(X_train)
    Z_train = standardize(X_train, mean, std)
    if progress:
        log(f"stage=fit hidden={','.join(map(str, hidden))} activation={ACTIVATION} max_iter={max_iter}")
    Z_input, Z_target = Z_train, Z_train
    if denoise and X.shape[1] % 4 == 0:
        rng = np.random.default_rng(seed)
        Xc = corrupt_channels(X_train, std, X.shape[1] // 4, rng)
        Z_input = np.vstack([Z_train, standardize(Xc, mean, std)])
        Z_target = np.vstack([Z_train, Z_train])
        if progress:
            log(f"stage=fit denoising: {len(Z_train)} clean + {len(Xc)} corrupted rows (one channel each)")
    model = train_autoencoder(Z_input, hidden, seed, max_iter, progress=progress, Z_target=Z_target)
    layers = model_layers(model)

    bare = build_graph_model(mean, std, layers).SerializeToString()
    val_scores = ort_contributions(bare, X_val).astype(np.float64).sum(axis=1)
    threshold = float(np.quantile(val_scores, threshold_quantile))
    if progress:
        log(f"stage=threshold quantile={threshold_quantile} threshold={threshold!r} "
            f"validation_rows={len(val_idx)}")

    meta = build_metadata(mean=mean, std=std, layers=layers, threshold=threshold, X_train=X_train,
                          val_scores=val_scores, rows_train=len(train_idx),
                          rows_validation=len(val_idx), seed=seed, hidden=hidden,
                          iterations=model.n_iter_, threshold_quantile=threshold_quantile,
                          source=source, denoise=denoise)
    final = build_graph_model(mean, std, layers, meta).SerializeToString()
    info = {"rows": n, "rows_train": len(train_idx), "rows_validation": len(val_idx),
            "threshold": threshold, "model_version": meta["anomaly.model_version"],
            "validation_score_quantiles": json.loads(meta["anomaly.training_summary"])["validation_score_quantiles"],
            "iterations": int(model.n_iter_), "final_loss": float(model.loss_),
            "sklearn_model": model, "mean": mean, "std": std}
    return final, info


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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


_quantile_arg = _number_arg(float, lambda q: 0.0 < q < 1.0, "in (0, 1)")
_positive_int = _number_arg(int, lambda v: v > 0, "> 0")
_positive_float = _number_arg(float, lambda v: math.isfinite(v) and v > 0, "> 0")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train the sensor-anomaly autoencoder on healthy windows and export the "
                    "contract ONNX model (see notes/contract.md). By default the training windows "
                    "are produced by the Rust binary (simulate --healthy, then window --size-secs 60) "
                    "so training features are exactly the serving features.",
        epilog="Exit codes: 0 ok, 2 bad input/usage (message names the problem), 1 other failure. "
               "Progress goes to stderr, the final summary to stdout. Same input and options give "
               "a byte-identical ONNX file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("training data")
    src.add_argument("--windows", metavar="FILE",
                     help="train from an existing window JSONL file (skips simulation; --bin, "
                          "--devices, --hours are then unused)")
    src.add_argument("--bin", default=DEFAULT_BIN,
                     help="Rust binary used to simulate and window data (a relative path not "
                          "found from the current directory is resolved against the repo root)")
    src.add_argument("--devices", type=_positive_int, default=20, help="simulated devices")
    src.add_argument("--hours", type=_positive_float, default=48.0, help="simulated hours per device (1 Hz samples)")
    mdl = p.add_argument_group("model")
    mdl.add_argument("--seed", type=int, default=7,
                     help="seed for simulation, the train/validation split and MLP initialization")
    mdl.add_argument("--hidden", type=parse_hidden, default="16,8,16", metavar="SIZES",
                     help="comma-separated hidden layer sizes of the autoencoder")
    mdl.add_argument("--no-denoise", action="store_true",
                     help="train a plain autoencoder (identity target) instead of the denoising one, "
                          "which learns to restore one corrupted channel and so attributes faults better")
    mdl.add_argument("--max-iter", type=_positive_int, default=200, help="maximum training epochs (adam)")
    mdl.add_argument("--threshold-quantile", type=_quantile_arg, default=0.999, metavar="Q",
                     help="alert threshold = this quantile of validation scores")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="output ONNX path (relative paths resolved against the current directory)")
    return p


def run(args) -> dict:
    hidden = tuple(args.hidden)
    with tempfile.TemporaryDirectory(prefix="sensor-anomaly-train-") as td:
        if args.windows:
            windows = Path(args.windows)
            source_desc = f"windows:{windows.name}"
        else:
            bin_path = Path(args.bin)
            if not (bin_path.is_absolute() or bin_path.exists()):
                bin_path = REPO_ROOT / bin_path
            bin_path = bin_path.absolute()  # never let subprocess search PATH
            log(f"stage=simulate devices={args.devices} hours={_num(args.hours)} seed={args.seed}")
            windows = simulate_windows(bin_path, Path(td), args.devices, args.hours, args.seed)
            source_desc = (f"simulate:healthy devices={args.devices} hours={_num(args.hours)} "
                           f"interval_secs=1 seed={args.seed} fault_rate=0; window size_secs=60")
        log(f"stage=load file={windows}")
        X, _ = load_windows(windows)
        digest = hashlib.sha256(windows.read_bytes()).hexdigest()[:16]
        log(f"stage=load rows={X.shape[0]} features={X.shape[1]} sha256={digest}")
    source = f"{source_desc} sha256={digest}"
    data, info = train_from_matrix(X, seed=args.seed, hidden=hidden, max_iter=args.max_iter,
                                   threshold_quantile=args.threshold_quantile, source=source,
                                   denoise=not args.no_denoise)
    out = Path(args.out)
    write_atomic(out, data)
    log(f"stage=write out={out} bytes={len(data)} sha256={hashlib.sha256(data).hexdigest()[:16]}")
    sq = info["validation_score_quantiles"]
    print(f"rows:            {info['rows']} (train {info['rows_train']}, validation {info['rows_validation']})")
    print(f"iterations:      {info['iterations']} (final loss {info['final_loss']:.6g})")
    print(f"threshold:       {info['threshold']!r} (q={args.threshold_quantile})")
    print("val quantiles:   " + "  ".join(f"{k}={v:.6g}" for k, v in sq.items()))
    print(f"model_version:   {info['model_version']}")
    print(f"output:          {out}")
    return info


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except InputError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except PipelineError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
