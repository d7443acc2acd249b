"""Tests for scripts/train.py (no Rust binary needed; uses --windows).

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
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

SCRIPTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SCRIPTS))
import train  # noqa: E402

TRAIN_PY = SCRIPTS / "train.py"
PARITY_PY = SCRIPTS / "parity.py"
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
    return subprocess.run([sys.executable, str(TRAIN_PY), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


class TrainTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = Path(cls.tmp.name)
        cls.X = synthetic_features(600, seed=1)
        cls.windows = cls.dir / "windows.jsonl"
        write_jsonl(cls.windows, records_from(cls.X))
        cls.model_a = cls.dir / "a.onnx"
        cls.model_b = cls.dir / "sub" / "b.onnx"
        cls.results = [run_cli("--windows", cls.windows, "--out", out, "--seed", "3",
                               "--max-iter", MAX_ITER, "--hidden", HIDDEN)
                       for out in (cls.model_a, cls.model_b)]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_a_cli_deterministic(self):
        for r in self.results:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("model_version:", r.stdout)
            self.assertIn("stage=fit", r.stderr)
        ha = hashlib.sha256(self.model_a.read_bytes()).hexdigest()
        hb = hashlib.sha256(self.model_b.read_bytes()).hexdigest()
        self.assertEqual(ha, hb)

    def test_a_other_seed_differs(self):
        out = self.dir / "seed4.onnx"
        r = run_cli("--windows", self.windows, "--out", out, "--seed", "4",
                    "--max-iter", MAX_ITER, "--hidden", HIDDEN)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotEqual(out.read_bytes(), self.model_a.read_bytes())

    def test_b_metadata(self):
        m = onnx.load(str(self.model_a))
        onnx.checker.check_model(m)
        self.assertEqual(m.ir_version, 8)
        self.assertEqual([(o.domain, o.version) for o in m.opset_import], [("", 17)])
        meta = {p.key: p.value for p in m.metadata_props}
        for k in CONTRACT_KEYS:
            self.assertIn(k, meta)
        parsed = {k: json.loads(meta[k]) for k in JSON_KEYS}
        self.assertEqual(meta["anomaly.contract"], "1")
        self.assertEqual(meta["anomaly.detector"], "autoencoder")
        self.assertRegex(meta["anomaly.model_version"], r"^ae-[0-9a-f]{12}$")
        self.assertEqual(parsed["anomaly.feature_names"], train.FEATURE_NAMES)
        self.assertEqual(parsed["anomaly.feature_names"][:5], ["temperature_mean", "temperature_std",
                         "temperature_min", "temperature_max", "humidity_mean"])
        self.assertEqual(parsed["anomaly.feature_channels"],
                         [n.rsplit("_", 1)[0] for n in train.FEATURE_NAMES])
        thr = float(meta["anomaly.threshold"])
        self.assertEqual(repr(thr), meta["anomaly.threshold"])
        self.assertGreater(thr, 0)
        for k in ("anomaly.feature_mean", "anomaly.feature_std"):
            self.assertEqual(len(parsed[k]), 20)
            self.assertTrue(all(isinstance(v, float) for v in parsed[k]))
        self.assertTrue(all(v > 0 for v in parsed["anomaly.feature_std"]))
        q = parsed["anomaly.feature_quantiles"]
        self.assertEqual(sorted(q), ["q01", "q05", "q50", "q95", "q99"])
        self.assertTrue(all(len(v) == 20 for v in q.values()))
        s = parsed["anomaly.training_summary"]
        for k in ("rows_train", "rows_validation", "seed", "hidden_layers", "activation",
                  "iterations", "threshold_quantile", "validation_score_quantiles", "source"):
            self.assertIn(k, s)
        self.assertEqual(s["rows_train"] + s["rows_validation"], 600)
        self.assertEqual(s["rows_validation"], 120)
        self.assertEqual(s["seed"], 3)
        self.assertEqual(s["hidden_layers"], [12, 6, 12])
        self.assertEqual(s["activation"], "tanh")
        self.assertEqual(s["threshold_quantile"], 0.999)
        self.assertEqual(sorted(s["validation_score_quantiles"]), ["p50", "p90", "p99", "p995", "p999"])
        self.assertEqual(meta["anomaly.training_summary"],
                         json.dumps(s, sort_keys=True))
        # threshold = validation p999 (same quantile), model_version recomputable
        self.assertAlmostEqual(thr, s["validation_score_quantiles"]["p999"], places=12)
        init = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
        layers = [(init[f"layer{i}_W"], init[f"layer{i}_b"]) for i in range(4)]
        self.assertEqual(train.model_version(init["feature_mean"], init["feature_std"], layers,
                                             meta["anomaly.threshold"]),
                         meta["anomaly.model_version"])
        np.testing.assert_array_equal(init["feature_mean"],
                                      np.array(parsed["anomaly.feature_mean"], np.float32))
        np.testing.assert_array_equal(init["feature_std"],
                                      np.array(parsed["anomaly.feature_std"], np.float32))

    def test_c_ort_matches_sklearn(self):
        data, info = train.train_from_matrix(self.X, seed=3, hidden=(12, 6, 12), max_iter=30,
                                             threshold_quantile=0.999, source="test",
                                             progress=False)
        cli_meta = {p.key: p.value for p in onnx.load(str(self.model_a)).metadata_props}
        self.assertEqual(info["model_version"], cli_meta["anomaly.model_version"])
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        self.assertEqual([i.name for i in sess.get_inputs()], ["features"])
        self.assertEqual([o.name for o in sess.get_outputs()], ["contributions", "expected"])
        self.assertEqual(sess.get_inputs()[0].shape, ["N", 20])
        X = synthetic_features(257, seed=9)
        out = sess.run(["contributions"], {"features": X.astype(np.float32)})[0]
        self.assertEqual(out.shape, (257, 20))
        self.assertEqual(out.dtype, np.float32)
        self.assertTrue(np.all(out >= 0))
        Z = train.standardize(X, info["mean"], info["std"])
        expected = train.reconstruction_mse(info["sklearn_model"], Z)
        got = out.astype(np.float64).sum(axis=1)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        # `expected` is the reconstruction in raw units.
        exp = sess.run(["expected"], {"features": X.astype(np.float32)})[0]
        want = info["sklearn_model"].predict(Z) * info["std"].astype(np.float64) + info["mean"].astype(np.float64)
        np.testing.assert_allclose(exp, want, rtol=1e-4, atol=1e-3)

    def test_d_offset_feature_dominates(self):
        sess = ort.InferenceSession(str(self.model_a), providers=["CPUExecutionProvider"])
        meta = {p.key: p.value for p in onnx.load(str(self.model_a)).metadata_props}
        std = np.array(json.loads(meta["anomaly.feature_std"]))
        thr = float(meta["anomaly.threshold"])
        base = synthetic_features(40, seed=11)
        for j in (0, 6, 13, 19):
            X = base.copy()
            X[:, j] += 25.0 * std[j]
            c = sess.run(["contributions"], {"features": X.astype(np.float32)})[0]
            self.assertTrue(np.all(np.argmax(c, axis=1) == j), train.FEATURE_NAMES[j])
            self.assertTrue(np.all(c.sum(axis=1) > thr))

    # ---- bad inputs: exit code 2 and a message naming the problem ----------

    def _bad(self, recs, *expected):
        path = self.dir / f"bad{len(os.listdir(self.dir))}.jsonl"
        write_jsonl(path, recs)
        r = run_cli("--windows", path, "--out", self.dir / "never.onnx", "--max-iter", "2")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        for e in expected:
            self.assertIn(e, r.stderr)
        self.assertFalse((self.dir / "never.onnx").exists())
        return r.stderr

    def test_e_missing_column(self):
        recs = records_from(self.X[:300])
        del recs[17]["vibration_max"]
        self._bad(recs, "missing", "vibration_max", ":18:")

    def test_e_non_numeric(self):
        recs = records_from(self.X[:300])
        recs[41]["humidity_std"] = "n/a"
        self._bad(recs, "non-numeric", "humidity_std", ":42:")

    def test_e_null_and_bool_are_non_numeric(self):
        recs = records_from(self.X[:300])
        recs[5]["sound_min"] = None
        self._bad(recs, "non-numeric", "sound_min", ":6:")
        recs = records_from(self.X[:300])
        recs[5]["sound_min"] = True
        self._bad(recs, "non-numeric", "sound_min", ":6:")

    def test_e_non_finite(self):
        path = self.dir / "nan.jsonl"
        lines = [json.dumps(r) for r in records_from(self.X[:300])]
        lines[9] = lines[9].replace('"pressure_mean": ', '"pressure_mean": NaN, "x": ', 1)
        path.write_text("\n".join(lines) + "\n")
        r = run_cli("--windows", path, "--out", self.dir / "never.onnx")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("non-finite", r.stderr)
        self.assertIn("pressure_mean", r.stderr)
        self.assertIn(":10:", r.stderr)

    def test_e_too_few_rows(self):
        self._bad(records_from(self.X[:150]), "too few rows", "150", "200")

    def test_e_constant_column(self):
        X = self.X[:300].copy()
        X[:, 5] = 0.1
        self._bad(records_from(X), "constant", "humidity_std")

    def test_e_invalid_json_and_missing_file(self):
        path = self.dir / "garbage.jsonl"
        path.write_text("{not json}\n")
        r = run_cli("--windows", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid JSON", r.stderr)
        r = run_cli("--windows", self.dir / "does-not-exist.jsonl")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read", r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    def test_parity_script_with_fake_scorer(self):
        """parity.py against a stand-in for `sensor-anomaly score` (float32 sums, +00:00 times)."""
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
        cmd = [sys.executable, str(PARITY_PY), "--model", str(self.model_a),
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
        for opt in ("--windows", "--bin", "--devices", "--hours", "--seed", "--out",
                    "--threshold-quantile", "--hidden", "--max-iter"):
            self.assertIn(opt, r.stdout)


if __name__ == "__main__":
    unittest.main()
