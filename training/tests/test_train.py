"""Tests for the training package (sensor_anomaly_training): train, detectors, report, parity and
benchmark_skab.

Most use --windows and need no Rust binary; the telemetry, report and benchmark tests run the
real release binary (scripts/test.sh builds it first).

Run from the repo root:
    .venv/bin/python -m unittest discover -s scripts/tests
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest
from datetime import datetime, timedelta, timezone
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from sensor_anomaly_training import benchmark_skab, binary, contract, detectors, train

MAX_ITER = "30"
HIDDEN = "12,6,12"

CONTRACT_KEYS = [
    "anomaly.contract", "anomaly.detector", "anomaly.model_version", "anomaly.feature_names",
    "anomaly.feature_channels", "anomaly.threshold", "anomaly.feature_mean", "anomaly.feature_std",
    "anomaly.feature_quantiles", "anomaly.training_summary",
]
JSON_KEYS = ["anomaly.feature_names", "anomaly.feature_channels", "anomaly.feature_mean",
             "anomaly.feature_std", "anomaly.feature_quantiles", "anomaly.training_summary"]


def synthetic_features(n, seed=0):
    """[n, 20] float64 of plausible, correlated window features (contract order)."""
    rng = np.random.default_rng(seed)
    base = np.array([22.0, 45.0, 0.8, 1013.0, 60.0])
    scale = np.array([2.0, 5.0, 0.2, 4.0, 3.0])
    common = rng.normal(size=(n, 1))
    level = base + scale * (0.7 * common + 0.5 * rng.normal(size=(n, 5)))
    spread = scale * 0.1 * np.exp(0.3 * rng.normal(size=(n, 5)))
    lo = level - 2.0 * spread - np.abs(rng.normal(scale=0.05, size=(n, 5))) * scale
    hi = level + 2.0 * spread + np.abs(rng.normal(scale=0.05, size=(n, 5))) * scale
    X = np.empty((n, 20))
    for c in range(5):
        X[:, 4 * c:4 * c + 4] = np.stack([level[:, c], spread[:, c], lo[:, c], hi[:, c]], axis=1)
    return X


def records_from(X):
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    recs = []
    for i, row in enumerate(X):
        dev, k = i % 4, i // 4
        start = t0 + timedelta(minutes=k)
        rec = {"device_id": f"dev-{dev:02d}", "window_start": iso(start),
               "window_end": iso(start + timedelta(seconds=60)), "sample_count": 60}
        rec.update({name: float(v) for name, v in zip(train.FEATURE_NAMES, row)})
        recs.append(rec)
    return recs


def write_jsonl(path, recs):
    with open(path, "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sensor_anomaly_training.train", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


BIN = train.resolve_bin(train.DEFAULT_BIN)
SKAB = benchmark_skab.DEFAULT_DATA


def require_binary(test):
    if not BIN.is_file():
        test.fail(f"{BIN} is missing: run scripts/setup.sh first (scripts/test.sh does)")


def windows_of(X):
    path = Path(tempfile.mkdtemp()) / "w.jsonl"
    write_jsonl(path, records_from(X))
    return train.load_windows(path, train.CHANNELS)


QUIET = train.TrainOptions(max_iter=30, hidden=(12, 6, 12), seed=3)


class ExpectedFalseAlarmTests(unittest.TestCase):
    """The false-alarm rate a model will have on normal data it has not seen, from its own
    training windows (no labels)."""

    def test_forward_blocks_fit_on_the_past_and_k_folds_partition(self):
        W = windows_of(synthetic_features(400, seed=2))
        rows = np.arange(len(W))
        blocks = train.far_blocks(W, rows, "chronological", 3, 0)
        self.assertEqual(len(blocks), 3)
        for fit_idx, test_idx in blocks:
            for dev in {W.device[i] for i in test_idx}:
                last_fit = max(W.window_end[i] for i in fit_idx if W.device[i] == dev)
                first_test = min(W.window_end[i] for i in test_idx if W.device[i] == dev)
                self.assertLess(last_fit, first_test, "fits only on the device's past")
        self.assertEqual(len(blocks[-1][0]) + len(blocks[-1][1]), len(rows))
        folds = train.far_blocks(W, rows, "random", 4, 0)
        tested = np.concatenate([t for _, t in folds])
        self.assertEqual(sorted(tested.tolist()), rows.tolist(), "each row counted once")
        for fit_idx, test_idx in folds:
            self.assertFalse(set(fit_idx.tolist()) & set(test_idx.tolist()))

    def test_a_steady_process_expects_few_alarms_and_a_drifting_one_many(self):
        opts = replace(QUIET, detector="pca", far_folds=3)
        steady = synthetic_features(800, seed=4)
        _, info = train.fit(windows_of(steady), opts)
        calm = info["summary"]["expected_false_alarms"]
        self.assertEqual(calm["method"], "forward chaining")
        self.assertEqual([f["fold"] for f in calm["folds"]], [1, 2, 3])
        self.assertLess(calm["far"], 0.05, calm)
        # Normal operation moves to another level of one channel in the last quarter of the
        # period: a model fitted on what came before alarms there, and the estimate says so
        # (the threshold's calibration on the last 20% of its own fit cannot).
        drifting = steady.copy()
        for col in (0, 2, 3):  # channel 0's mean, min and max
            drifting[600:, col] += 8 * 2.0
        _, info = train.fit(windows_of(drifting), opts)
        worried = info["summary"]["expected_false_alarms"]
        self.assertGreater(worried["folds"][2]["far"], 0.8, worried)
        self.assertGreater(worried["far"], 0.3, worried)
        self.assertEqual(worried["alarms"], sum(f.get("alarms", 0) for f in worried["folds"]))

    def test_folds_that_cannot_be_fitted_are_named(self):
        _, info = train.fit(windows_of(synthetic_features(300, seed=5)),
                            replace(QUIET, detector="pca", far_folds=5, min_rows=100))
        e = info["summary"]["expected_false_alarms"]
        self.assertIn("too few rows", e["folds"][0]["error"])
        self.assertTrue(any("alarms" in f for f in e["folds"]), e)


class CliTests(unittest.TestCase):
    """The command line on window files: reproducibility, the metadata contract, bad input."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.X = synthetic_features(600, seed=1)
        cls.windows = cls.dir / "windows.jsonl"
        write_jsonl(cls.windows, records_from(cls.X))
        cls.model_a = cls.dir / "a.onnx"
        cls.model_b = cls.dir / "sub" / "b.onnx"
        cls.results = [run_cli("--windows", cls.windows, "--out", out, "--seed", "3", "--no-report",
                               "--channels", ",".join(train.CHANNELS),
                               "--max-iter", MAX_ITER, "--hidden", HIDDEN)
                       for out in (cls.model_a, cls.model_b)]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_the_cli_is_deterministic(self):
        for r in self.results:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("model_version:", r.stdout)
            self.assertIn("stage=fit", r.stderr)
        self.assertEqual(self.model_a.read_bytes(), self.model_b.read_bytes())

    def test_another_seed_gives_another_model(self):
        out = self.dir / "seed4.onnx"
        r = run_cli("--windows", self.windows, "--out", out, "--seed", "4", "--no-report",
                    "--max-iter", MAX_ITER, "--hidden", HIDDEN)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotEqual(out.read_bytes(), self.model_a.read_bytes())

    def test_the_metadata_follows_the_contract(self):
        m = onnx.load(str(self.model_a))
        onnx.checker.check_model(m)
        self.assertEqual(m.ir_version, 8)
        self.assertEqual([(o.domain, o.version) for o in m.opset_import], [("", 17)])
        meta = {p.key: p.value for p in m.metadata_props}
        self.assertEqual(sorted(meta), sorted(CONTRACT_KEYS))
        parsed = {k: json.loads(meta[k]) for k in JSON_KEYS}
        self.assertEqual(meta["anomaly.contract"], "1")
        self.assertEqual(meta["anomaly.detector"], "autoencoder")
        self.assertRegex(meta["anomaly.model_version"], r"^ae-[0-9a-f]{12}$")
        self.assertEqual(parsed["anomaly.feature_names"], train.FEATURE_NAMES)
        self.assertEqual(parsed["anomaly.feature_channels"],
                         [n.rsplit("_", 1)[0] for n in train.FEATURE_NAMES])
        thr = float(meta["anomaly.threshold"])
        self.assertEqual(repr(thr), meta["anomaly.threshold"])
        self.assertGreater(thr, 0)
        for k in ("anomaly.feature_mean", "anomaly.feature_std"):
            self.assertEqual(len(parsed[k]), 20)
        self.assertTrue(all(v > 0 for v in parsed["anomaly.feature_std"]))
        q = parsed["anomaly.feature_quantiles"]
        self.assertEqual(sorted(q), ["q01", "q05", "q50", "q95", "q99"])
        self.assertTrue(all(len(v) == 20 for v in q.values()))
        s = parsed["anomaly.training_summary"]
        # Chronological hold-out: the last 20% of each of the 4 devices' 150 windows.
        self.assertEqual((s["rows_train"], s["rows_validation"]), (480, 120))
        self.assertEqual(s["split"], "chronological")
        self.assertEqual(s["hidden_layers"], [12, 6, 12])
        self.assertEqual(s["threshold_calibration"],
                         {"rule": "quantile", "quantile": 0.999, "margin": 1.0, "validation_windows": 120})
        self.assertAlmostEqual(thr, s["validation_score_quantiles"]["p999"], places=12)
        init = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
        np.testing.assert_array_equal(init["feature_mean"], np.array(parsed["anomaly.feature_mean"], np.float32))
        # model_version is recomputable from the graph without metadata and the threshold.
        bare = onnx.load(str(self.model_a))
        del bare.metadata_props[:]
        self.assertEqual(train.model_version("autoencoder", bare.SerializeToString(), meta["anomaly.threshold"]),
                         meta["anomaly.model_version"])

    # ---- bad inputs: exit code 2 and a message naming the problem ----------

    def _bad(self, recs, *expected, args=()):
        path = self.dir / f"bad{len(os.listdir(self.dir))}.jsonl"
        write_jsonl(path, recs)
        r = run_cli("--windows", path, "--out", self.dir / "never.onnx", "--max-iter", "2",
                    "--no-report", *args)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        for e in expected:
            self.assertIn(e, r.stderr)
        self.assertFalse((self.dir / "never.onnx").exists())
        return r.stderr

    def test_a_missing_column_is_refused(self):
        recs = records_from(self.X[:300])
        del recs[17]["vibration_max"]
        self._bad(recs, "missing", "vibration_max", ":18:")

    def test_a_non_numeric_value_is_refused(self):
        recs = records_from(self.X[:300])
        recs[41]["humidity_std"] = "n/a"
        self._bad(recs, "non-numeric", "humidity_std", ":42:")
        recs = records_from(self.X[:300])
        recs[5]["sound_min"] = True
        self._bad(recs, "non-numeric", "sound_min", ":6:")

    def test_a_non_finite_value_is_refused(self):
        path = self.dir / "nan.jsonl"
        lines = [json.dumps(r) for r in records_from(self.X[:300])]
        lines[9] = lines[9].replace('"pressure_mean": ', '"pressure_mean": NaN, "x": ', 1)
        path.write_text("\n".join(lines) + "\n")
        r = run_cli("--windows", path, "--out", self.dir / "never.onnx", "--no-report")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("non-numeric", r.stderr)
        self.assertIn("pressure_mean", r.stderr)
        self.assertIn(":10:", r.stderr)

    def test_too_few_rows_are_refused(self):
        self._bad(records_from(self.X[:150]), "too few rows", "120", "200")

    def test_a_constant_channel_is_refused(self):
        X = self.X[:300].copy()
        X[:, 4:8] = 0.1  # every humidity feature
        self._bad(records_from(X), "constant channel", "humidity")
        X = self.X[:300].copy()
        X[:, 5] = 0.1
        self._bad(records_from(X), "constant feature", "humidity_std")

    def test_threshold_rules_need_labels(self):
        self._bad(records_from(self.X[:300]), "needs labelled --validation", args=("--threshold", "max-f1"))

    def test_invalid_json_and_a_missing_file_are_refused(self):
        path = self.dir / "garbage.jsonl"
        path.write_text("{not json}\n")
        r = run_cli("--windows", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid JSON", r.stderr)
        r = run_cli("--windows", self.dir / "does-not-exist.jsonl")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read", r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    def test_null_features_are_left_out_not_fatal(self):
        recs = records_from(self.X[:300])
        recs[5]["sound_std"] = None  # a one-sample window has no std
        path = self.dir / "nulls.jsonl"
        write_jsonl(path, recs)
        r = run_cli("--windows", path, "--out", self.dir / "nulls.onnx", "--max-iter", "2", "--no-report")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 with a null feature", r.stderr)

    def test_parity_script_with_fake_scorer(self):
        """sensor-anomaly-parity against a stand-in for `sensor-anomaly score` (float32 sums, +00:00 times)."""
        fake = self.dir / "fake-scorer"
        fake.write_text(f"""#!{sys.executable}
import json, os, sys
import numpy as np, onnxruntime as ort
a = sys.argv
m, i, o = (a[a.index(f) + 1] for f in ("--model", "--input", "--out"))
names = {train.FEATURE_NAMES!r}
recs = [json.loads(l) for l in open(i)]
X = np.array([[r[n] for n in names] for r in recs], np.float32)
s = ort.InferenceSession(m).run(None, {{"features": X}})[0].sum(axis=1, dtype=np.float32)
bump = float(os.environ.get("BUMP", "0"))
with open(o, "w") as f:
    for k, (r, v) in enumerate(zip(recs, s)):
        f.write(json.dumps({{"device_id": r["device_id"], "score": float(v) + (bump if k == 5 else 0.0),
                            "window_end": r["window_end"].replace("Z", "+00:00")}}) + "\\n")
""")
        fake.chmod(0o755)
        cmd = [sys.executable, "-m", "sensor_anomaly_training.parity", "--model", str(self.model_a),
               "--windows", str(self.windows), "--bin", str(fake)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("parity OK: 600 windows", r.stdout)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "BUMP": "0.001"})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("1 of 600 score(s) differ", r.stderr)

    def test_help(self):
        r = run_cli("--help")
        self.assertEqual(r.returncode, 0)
        for opt in ("--telemetry", "--windows", "--validation", "--test", "--detector", "--threshold",
                    "--threshold-margin", "--report", "--seed", "--out"):
            self.assertIn(opt, r.stdout)


class DetectorTests(unittest.TestCase):
    """Each detector's ONNX graph against its numpy/scikit-learn reference; reproducibility."""

    @classmethod
    def setUpClass(cls):
        cls.W = windows_of(synthetic_features(800, seed=2))
        cls.fitted = {d: train.fit(cls.W, replace(QUIET, detector=d)) for d in detectors.DETECTORS}
        cls.X = synthetic_features(300, seed=9)

    def run_graph(self, det, X=None):
        data, _ = self.fitted[det]
        return detectors.ort_run(data, self.X if X is None else X)

    def test_autoencoder_matches_sklearn(self):
        _, info = self.fitted["autoencoder"]
        Z = detectors.standardize(self.X, info["mean"], info["std"])
        np.testing.assert_allclose(self.run_graph("autoencoder"), info["detector"].reference(Z), atol=1e-5)
        exp = detectors.ort_run(self.fitted["autoencoder"][0], self.X, outputs=("expected",))
        want = info["detector"].mlp.predict(Z) * info["std"] + info["mean"]
        np.testing.assert_allclose(exp, want, rtol=1e-4, atol=1e-3)

    def test_pca_matches_numpy(self):
        _, info = self.fitted["pca"]
        Z = detectors.standardize(self.X, info["mean"], info["std"])
        ref = info["detector"].reference(Z)  # also asserts the decomposition sums to T2/Q index
        np.testing.assert_allclose(self.run_graph("pca"), ref, rtol=1e-4, atol=1e-5)
        self.assertTrue(np.all(self.run_graph("pca") >= 0))

    def test_iforest_matches_sklearn(self):
        _, info = self.fitted["iforest"]
        got = self.run_graph("iforest").astype(np.float64)
        np.testing.assert_allclose(got, info["detector"].reference(self.X), atol=1e-6)
        # The score is exactly Liu et al.'s anomaly score as scikit-learn computes it.
        np.testing.assert_allclose(got.sum(axis=1), info["detector"].sklearn_scores(self.X), atol=2e-6)
        self.assertTrue(np.all(got >= 0))
        m = onnx.load_from_string(self.fitted["iforest"][0])
        self.assertIn(("ai.onnx.ml", 3), [(o.domain, o.version) for o in m.opset_import])
        self.assertEqual([o.name for o in m.graph.output], ["contributions"])

    def test_every_detector_reproducible_and_tagged(self):
        for det, prefix in detectors.VERSION_PREFIX.items():
            again, info = train.fit(self.W, replace(QUIET, detector=det))
            self.assertEqual(again, self.fitted[det][0], det)
            meta = {p.key: p.value for p in onnx.load_from_string(again).metadata_props}
            self.assertEqual(sorted(meta), sorted(CONTRACT_KEYS), det)
            self.assertEqual(meta["anomaly.detector"], det)
            self.assertRegex(meta["anomaly.model_version"], rf"^{prefix}-[0-9a-f]{{12}}$")
            self.assertEqual(float(meta["anomaly.threshold"]), info["threshold"])

    def test_an_offset_channel_is_blamed(self):
        """A channel pushed far off gets most of the score (per channel, as the scorer sums it)."""
        std = self.W.X.std(axis=0)
        for det in detectors.DETECTORS:
            for c, channel in enumerate(train.CHANNELS):
                X = self.X[:60].copy()
                X[:, 4 * c:4 * c + 4] += 25.0 * std[4 * c]
                contrib = self.run_graph(det, X).reshape(60, 5, 4).sum(axis=2)
                blamed = np.mean(np.argmax(contrib, axis=1) == c)
                self.assertGreaterEqual(blamed, 0.9 if det != "iforest" else 0.6, f"{det} {channel}")
                if det != "iforest":  # its score saturates: far off is not much more isolated
                    self.assertTrue(np.all(contrib.sum(axis=1) >= self.fitted[det][1]["threshold"]), det)


class CalibrationTests(unittest.TestCase):
    def test_quantile_of_healthy_scores_times_margin(self):
        s = np.arange(1, 101, dtype=float)
        y = np.r_[np.zeros(90), np.ones(10)].astype(int)
        thr, info = train.calibrate(s, y, "quantile", 1.0, 1.5)
        self.assertEqual(thr, 135.0)  # max healthy score 90, times 1.5
        self.assertEqual(info["validation_windows"], 90)

    def test_max_f1_and_precision_targets(self):
        s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
        y = np.array([0, 0, 1, 0, 1, 1, 0, 1])
        thr, info = train.calibrate(s, y, "max-f1", 0.999, 1.0)
        self.assertEqual(thr, 0.3)  # flags 0.3.. : tp 4, fp 2 -> F1 0.8, the best cut
        self.assertAlmostEqual(info["validation_f1"], 0.8)
        thr, info = train.calibrate(s, y, "precision:0.75", 0.999, 1.0)
        self.assertEqual(thr, 0.5)  # flags 0.5..0.8: precision 3/4, the lowest cut that reaches it
        with self.assertRaises(train.InputError):  # the top score is healthy: precision <= 1/3
            train.calibrate(np.array([0.1, 0.2, 0.3]), np.array([1, 0, 0]), "precision:0.5", 0.999, 1.0)
        with self.assertRaises(train.InputError):
            train.calibrate(s, None, "max-f1", 0.999, 1.0)


def telemetry_csv(path: Path, seed: int, fault_rate: float):
    """Simulated telemetry written as a user's CSV (`;`, space-separated times, 0/1 label)."""
    sim = subprocess.run([str(BIN), "simulate", "--devices", "3", "--hours", "2", "--seed", str(seed),
                          "--fault-rate", str(fault_rate)], capture_output=True, text=True, check=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("timestamp;device_id;" + ";".join(train.CHANNELS) + ";label;fault_channel\n")
        for line in sim.stdout.splitlines():
            r = json.loads(line)
            f.write(";".join([r["timestamp"].replace("T", " ").rstrip("Z"), r["device_id"]]
                             + [repr(r[c]) for c in train.CHANNELS]
                             + ["1" if r.get("fault_kind") else "0", r.get("fault_channel") or ""]) + "\n")


class TelemetryEndToEndTests(unittest.TestCase):
    """A user's CSV -> the Rust `window` command -> model -> report scored by the Rust scorer."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        require_binary(cls)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def fail(cls, msg):
        raise AssertionError(msg)

    def test_train_on_csv_calibrate_on_labelled_validation_and_report(self):
        train_csv, val_csv, test_csv = (self.dir / f"{n}.csv" for n in ("train", "val", "test"))
        telemetry_csv(train_csv, 1, 0.0)
        telemetry_csv(val_csv, 2, 1.5)
        telemetry_csv(test_csv, 3, 1.5)
        model, rep = self.dir / "plant.onnx", self.dir / "report"
        r = run_cli("--telemetry", train_csv, "--validation", val_csv, "--test", test_csv,
                    "--threshold", "max-f1", "--detector", "pca", "--out", model, "--report", rep)
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
        s = json.loads(meta["anomaly.training_summary"])
        self.assertEqual(s["threshold_calibration"]["rule"], "max-f1")
        self.assertEqual(s["split"], "validation file")
        self.assertEqual(json.loads(meta["anomaly.feature_names"])[:2], ["humidity_mean", "humidity_std"])
        got = json.loads((rep / "report.json").read_text())
        m = got["metrics"]
        self.assertEqual(got["model_version"], meta["anomaly.model_version"])
        self.assertEqual(m["evaluated"], "test data")
        self.assertGreater(m["anomalous"], 0)
        self.assertEqual(m["tp"] + m["fn"], m["anomalous"])
        self.assertGreater(m["f1"], 0.7)
        self.assertGreater(m["pr_auc"], 0.7)
        self.assertGreater(m["attribution"]["windows"], 0)
        text = (rep / "report.md").read_text()
        self.assertIn("expected_false_alarms", s, "the estimate travels in the model file")
        for needle in ("| f1 |", "| PR-AUC |", "| FAR |", "| MAR |", "top-channel accuracy", "scores.png",
                       "## Expected false-alarm rate on normal operation it has not seen"):
            self.assertIn(needle, text)
        for png in ("scores.png", "validation-scores.png", "precision-recall.png"):
            self.assertGreater((rep / png).stat().st_size, 1000, png)
        # Dropped into the running function: POST /api/reload, then it scores with the new model.
        self.assert_function_serves(model, meta)

    def assert_function_serves(self, model, meta):
        import urllib.request

        env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_")}
        env.update({"ANOMALY_MODEL_PATH": str(contract.REPO_ROOT / "models" / "default.onnx"),
                    "ANOMALY_SQLITE_PATH": str(self.dir / "anomalies.sqlite"),
                    # Reload reads only from the models folder: here, where the model was trained to.
                    "ANOMALY_MODELS_DIR": str(Path(model).parent)})
        server, port = binary.start_handler([BIN, "serve"], env, cwd=contract.REPO_ROOT)

        def post(path, body):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())

        try:
            status, body = post("/api/reload", {"path": Path(model).name})
            self.assertEqual(status, 200, body)
            window = {"device_id": "pump-9", "window_end": "2026-01-01T00:01:00Z",
                      **dict(zip(json.loads(meta["anomaly.feature_names"]),
                                 json.loads(meta["anomaly.feature_mean"])))}
            status, scored = post("/api/score", window)
            self.assertEqual(status, 200, scored)
            self.assertEqual(scored["model_version"], meta["anomaly.model_version"])
            self.assertFalse(scored["is_anomaly"], scored)
        finally:
            server.terminate()
            server.wait(timeout=10)

    def test_bad_csv_names_line_and_column(self):
        path = self.dir / "typo.csv"
        telemetry_csv(path, 4, 0.0)
        lines = path.read_text().splitlines()
        cells = lines[7].split(";")
        cells[3] = "12,5"
        lines[7] = ";".join(cells)
        path.write_text("\n".join(lines) + "\n")
        r = run_cli("--telemetry", path, "--out", self.dir / "never.onnx", "--no-report")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('line 8: column "humidity" has non-numeric value "12,5"', r.stderr)
        r = run_cli("--telemetry", path, "--channels", "temperature,flow", "--out", self.dir / "never.onnx")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('no channel column "flow"', r.stderr)
        self.assertFalse((self.dir / "never.onnx").exists())


def skab_like_file(path, *, rows=900, onset=550, length=200, seed=0, label_training=False,
                   drift=True):
    """A SKAB-format file: 1 Hz, ';'-separated, `anomaly` and `changepoint` columns.  `flow` and
    `current` are noise around steady levels (the anomaly shifts `flow`); `temp` warms up."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2020, 3, 9, 10, 0, 0)
    lines = ["datetime;flow;current;temp;anomaly;changepoint"]
    for i in range(rows):
        bad = onset <= i < onset + length
        flow = 32.0 + rng.normal(scale=0.4) - (3.0 if bad else 0.0)
        current = 1.0 + 0.3 * rng.normal()
        temp = 70.0 + (0.01 * i if drift else 0.0) + 0.02 * rng.normal()
        label = 1 if bad or (label_training and i < 400) else 0
        when = (t0 + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{when};{flow:.4f};{current:.4f};{temp:.4f};{label}.0;{1 if i == onset else 0}.0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


SMALL_SETTINGS = {"detectors": {
    "pca": {"setting": {"window_secs": 20, "margin": 1.5, "max_level_ratio": 50.0, "pca_variance": 0.9},
            "chosen_on": ["plant-a"]},
    "iforest": {"setting": {"window_secs": 20, "margin": 1.0, "max_level_ratio": None, "pca_variance": 0.9},
                "chosen_on": []}}}


class BenchmarkProtocolTests(unittest.TestCase):
    """benchmark_skab.py and cross_validate_skab.py on a made-up SKAB-format folder (no shared data)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.data = Path(cls.tmp.name) / "mydata"
        skab_like_file(d / "plant-a" / "0.csv", seed=1)
        skab_like_file(d / "plant-a" / "1.csv", seed=2)
        # Same samples as plant-a/1, but its first 400 rows are labelled anomalous: labels must
        # not change what is fitted.
        skab_like_file(d / "plant-b" / "deep" / "1.csv", seed=2, label_training=True)
        skab_like_file(d / "plant-b" / "short.csv", rows=300, seed=3)  # cannot be fitted
        (d / "plant-b" / "unlabelled.csv").write_text("datetime;flow\n2020-03-09 10:00:00;1.0\n")
        cls.settings = Path(cls.tmp.name) / "settings.json"
        cls.settings.write_text(json.dumps(SMALL_SETTINGS))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def bench(self, *args):
        return subprocess.run([sys.executable, "-m", "sensor_anomaly_training.benchmark_skab", "--data", self.data,
                               "--settings", self.settings, "--bin", BIN, *map(str, args)],
                              capture_output=True, text=True, timeout=600)

    def test_any_folder_per_file_counts_and_no_file_aborts(self):
        require_binary(self)
        r = self.bench("--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("plant-b/unlabelled.csv: no `anomaly` column", r.stderr)
        self.assertIn("plant-b/short: pca: not fitted: 300 rows, need more than 400", r.stderr)
        table = {t["detector"]: t for t in json.loads(r.stdout)}
        self.assertEqual(set(table), {"pca", "iforest"})
        pca = table["pca"]
        names = [f["file"] for f in pca["per_file"]]
        self.assertEqual(names, ["plant-a/0", "plant-a/1", "plant-b/short", "plant-b/deep/1"])
        self.assertEqual(sorted(pca["folders"]), ["plant-a", "plant-b", "plant-b/deep"])
        for f in pca["per_file"]:
            self.assertEqual(sum(f[k] for k in ("tp", "fp", "fn", "tn")), 500 if "short" not in f["file"] else 0)
        self.assertEqual(pca["failed_files"], [{"file": "plant-b/short", "error": "300 rows, need more than 400"}])
        # Pooled figures are sums of the per-file counts, per folder and overall.
        for k in ("tp", "fp", "fn", "tn"):
            self.assertEqual(pca["overall"][k], sum(f[k] for f in pca["per_file"]))
            self.assertEqual(pca["folders"]["plant-a"][k],
                             sum(f[k] for f in pca["per_file"] if f["folder"] == "plant-a"))
        # Chosen on plant-a: the rest is held out; iforest was chosen on nothing, so no held-out claim.
        self.assertEqual(pca["held_out"]["folders"], ["plant-b", "plant-b/deep"])
        self.assertNotIn("held_out", table["iforest"])
        # The drifting `temp` channel is left out by the level-ratio rule; the shift is found.
        a0 = pca["per_file"][0]
        self.assertEqual(list(a0["left_out_channels"]), ["temp"])
        self.assertGreater(pca["folders"]["plant-a"]["f1"], 0.9, pca["folders"])
        q = pca["overall"]
        positives = q["tp"] + q["fn"]
        self.assertAlmostEqual(q["f1_all_alarm"], 2 * positives / (2 * positives + q["fp"] + q["tn"]))
        # Labels never choose training rows: a file whose training rows are all labelled
        # anomalous is fitted exactly like its twin.
        twin, deep = pca["per_file"][1], pca["per_file"][3]
        self.assertEqual(twin["threshold"], deep["threshold"])
        self.assertEqual((twin["tp"] + twin["fp"]), (deep["tp"] + deep["fp"]))

    def test_table_and_bad_arguments(self):
        require_binary(self)
        r = self.bench("--detectors", "pca")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("held out: plant-b,plant-b/deep", r.stdout)
        self.assertIn("not fitted: plant-b/short", r.stdout)
        r = self.bench("--files", "plant-z/0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no such SKAB file(s) under", r.stderr)
        r = self.bench("--detectors", "autoencoder")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no settings for detector(s) autoencoder", r.stderr)

    def test_cross_validation_chooses_on_one_folder_and_reports_the_other(self):
        require_binary(self)
        out = Path(self.tmp.name) / "chosen.json"
        r = subprocess.run([sys.executable, "-m", "sensor_anomaly_training.cross_validate_skab", "--data", self.data,
                            "--detectors", "pca", "--bin", BIN, "--json", "--write", "plant-a",
                            "--settings", out], capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        report = json.loads(r.stdout)
        folds = report[0]["folds"]
        self.assertEqual([f["chosen_on"] for f in folds], [["plant-a"], ["plant-b"], ["plant-b/deep"]])
        self.assertEqual(folds[0]["held_out"]["folders"], ["plant-b", "plant-b/deep"])
        written = json.loads(out.read_text())
        self.assertEqual(written["detectors"]["pca"]["chosen_on"], ["plant-a"])
        self.assertEqual(written["detectors"]["pca"]["setting"], folds[0]["setting"])
        # The benchmark reads what the cross-validation wrote and reproduces its figures with
        # the Rust scorer.
        r = subprocess.run([sys.executable, "-m", "sensor_anomaly_training.benchmark_skab", "--data", self.data,
                            "--settings", out, "--bin", BIN, "--json", "--detectors", "pca"],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        bench = json.loads(r.stdout)[0]
        for k in ("tp", "fp", "fn", "tn"):
            self.assertEqual(bench["overall"][k], folds[0]["overall"][k], k)


class TrainingOnUsersDataTests(unittest.TestCase):
    """sensor-anomaly-train never overwrites the shipped model unasked; drifting channels; one channel."""

    def test_without_out_a_new_file_named_after_the_model(self):
        with tempfile.TemporaryDirectory() as td:
            td = Path(td)
            windows = td / "w.jsonl"
            write_jsonl(windows, records_from(synthetic_features(400, seed=4)))
            shipped = contract.REPO_ROOT / "models" / "default.onnx"
            before = hashlib.sha256(shipped.read_bytes()).hexdigest()
            r = subprocess.run([sys.executable, "-m", "sensor_anomaly_training.train", "--windows", windows, "--no-report",
                                "--detector", "pca", "--channels", ",".join(train.CHANNELS)],
                               capture_output=True, text=True, timeout=300, cwd=td)
            self.assertEqual(r.returncode, 0, r.stderr)
            made = list((td / "models").glob("*.onnx"))
            self.assertEqual(len(made), 1, made)
            m = onnx.load(str(made[0]))
            version = {p.key: p.value for p in m.metadata_props}["anomaly.model_version"]
            self.assertEqual(made[0].name, f"{version}.onnx")
            self.assertIn(f"output:          models/{version}.onnx", r.stdout)
            self.assertEqual(hashlib.sha256(shipped.read_bytes()).hexdigest(), before)

    def test_a_drifting_channel_is_left_out_and_recorded(self):
        with tempfile.TemporaryDirectory() as td:
            path = skab_like_file(Path(td) / "plant.csv", rows=600, onset=599, length=1)
            W = train.load_windows(train.window_telemetry(
                BIN, path, Path(td) / "w.jsonl", train.WindowOptions(
                    size_secs=20, hop_secs=1, channels=["flow", "current", "temp"],
                    csv=["--label-column", "anomaly", "--ignore-columns", "changepoint"])),
                ["flow", "current", "temp"], ["mean", "std"]) if BIN.is_file() else None
            if W is None:
                require_binary(self)
            rows = np.flatnonzero(np.all(np.isfinite(W.X), axis=1))
            ratios = train.level_ratios(W, rows)
            self.assertLess(ratios["flow"], 5)
            self.assertGreater(ratios["temp"], 1000)
            _, info = train.fit(replace(W, label=None), replace(QUIET, detector="pca", max_level_ratio=50))
            self.assertEqual(info["windows"].channels, ["flow", "current"])
            self.assertEqual(list(info["summary"]["left_out_channels"]), ["temp"])
            with self.assertRaises(train.InputError) as e:
                train.fit(W.select_channels(["temp"]), replace(QUIET, detector="pca", max_level_ratio=50))
            self.assertIn("every channel drifts more than --max-level-ratio 50", str(e.exception))

    def test_a_single_channel_series_trains_and_scores(self):
        """A NAB-style `timestamp,value` file, 5-minute samples: the documented commands."""
        require_binary(self)
        rng = np.random.default_rng(5)
        t0 = datetime(2014, 4, 1)
        lines = ["timestamp,value"]
        for i in range(2 * 24 * 12 + 60):  # two days, then five hours more
            v = 50 + 5 * np.sin(2 * np.pi * i / 288) + rng.normal()
            if i >= 2 * 24 * 12 + 30:
                v += 40  # the last 2.5 hours: way off
            lines.append(f"{(t0 + timedelta(minutes=5 * i)).strftime('%Y-%m-%d %H:%M:%S')},{v:.3f}")
        with tempfile.TemporaryDirectory() as td:
            td = Path(td)
            train_csv, all_csv = td / "train.csv", td / "all.csv"
            train_csv.write_text("\n".join(lines[: 1 + 2 * 24 * 12]) + "\n")
            all_csv.write_text("\n".join(lines) + "\n")
            model = td / "nab.onnx"
            r = run_cli("--telemetry", train_csv, "--window-secs", "3600", "--hop-secs", "300",
                        "--detector", "pca", "--threshold-margin", "1.5", "--out", model, "--no-report",
                        "--bin", BIN)
            self.assertEqual(r.returncode, 0, r.stderr)
            meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
            self.assertEqual(json.loads(meta["anomaly.feature_channels"]), ["value"] * 4)
            windows, scored = td / "w.jsonl", td / "s.jsonl"
            for cmd in (["window", "--input", all_csv, "--size-secs", "3600", "--hop-secs", "300",
                         "--channels", "auto", "--out", windows],
                        ["score", "--model", model, "--input", windows, "--out", scored]):
                r = subprocess.run([str(BIN), *map(str, cmd)], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
            results = [json.loads(x) for x in scored.read_text().splitlines()]
            flagged = [x["window_end"] for x in results if x["is_anomaly"]]
            last_healthy = (t0 + timedelta(minutes=5 * (2 * 24 * 12 + 29))).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.assertTrue(flagged and min(flagged) > last_healthy, flagged[:3])
            self.assertTrue(all(x["is_anomaly"] for x in results[-20:]))

    def test_window_reports_timestamps_out_of_order(self):
        require_binary(self)
        with tempfile.TemporaryDirectory() as td:
            path = Path(td) / "t.csv"
            path.write_text("timestamp,value\n2014-04-01 00:10:00,1\n2014-04-01 00:05:00,2\n"
                            "2014-04-01 00:10:00,3\n2014-04-01 00:10:00,4\n")
            r = subprocess.run([str(BIN), "window", "--input", path, "--size-secs", "600",
                                "--channels", "auto", "--out", Path(td) / "w.jsonl"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("1 sample(s) go back in time within their device (first at line 3", r.stderr)
            self.assertIn("2 sample(s) repeat their device's previous timestamp (first at line 4", r.stderr)


SKAB_MISSING = (f"SKAB data not found at {SKAB}: it is not part of the repository (see README, "
                "Benchmark: SKAB); put the dataset there to run this test")


@unittest.skipUnless(SKAB.is_dir(), SKAB_MISSING)
class SkabSmokeTests(unittest.TestCase):
    """The benchmark on two SKAB files (the full run: scripts/benchmark-skab.sh)."""

    def test_two_files(self):
        require_binary(self)
        files = ["valve1/1", "valve2/0"]
        r = subprocess.run([sys.executable, "-m", "sensor_anomaly_training.benchmark_skab", "--json",
                            "--files", ",".join(files)], capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        table = json.loads(r.stdout)
        self.assertEqual([t["detector"] for t in table], list(benchmark_skab.DETECTORS))
        labels = [benchmark_skab.read_rows(SKAB / f"{f}.csv")[1][benchmark_skab.TRAIN_ROWS:] for f in files]
        rows = sum(len(y) for y in labels)
        for t in table:
            self.assertEqual(t["overall"]["rows"], rows)
            self.assertEqual([p["file"] for p in t["per_file"]], files)
            self.assertEqual(t["failed_files"], [])
            for k in ("f1", "far", "mar"):
                self.assertTrue(0.0 <= t["overall"][k] <= 1.0, t)
        # The default detector must beat alarming on every row.
        self.assertGreater(table[0]["overall"]["f1"], table[0]["overall"]["f1_all_alarm"] + 0.05)


class ContractTests(unittest.TestCase):
    """The contract file is what the exported models follow (the Rust side is held to the same
    file by its own tests)."""

    def test_an_exported_model_carries_every_required_key_and_the_contract_names(self):
        X = synthetic_features(400, seed=5)
        W = windows_of(X)
        model, info = train.fit(W, replace(QUIET, detector="pca"))
        m = onnx.load_from_string(model)
        keys = {p.key for p in m.metadata_props}
        for key in contract.REQUIRED_METADATA + contract.OPTIONAL_METADATA:
            self.assertIn(key, keys)
        self.assertEqual([i.name for i in m.graph.input], [contract.INPUT_NAME])
        self.assertIn(contract.OUTPUT_NAME, [o.name for o in m.graph.output])
        self.assertTrue(info["model_version"].startswith(contract.VERSION_PREFIX["pca"] + "-"))
        self.assertEqual(train.FEATURE_NAMES, [f"{c}_{s}" for c in contract.CHANNELS for s in contract.STATS])


if __name__ == "__main__":
    unittest.main()
