"""SKAB's changepoint benchmark (benchmark_skab_nab.py): incidents from the handler's own rules
(`sensor-anomaly incidents`) turned into predicted changepoints, scored by SKAB's scorer (tsad, in
the environment scripts/benchmark-skab-nab.sh makes)."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

from sensor_anomaly_training import benchmark_skab as bs
from sensor_anomaly_training import benchmark_skab_nab as nab
from sensor_anomaly_training import train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import BIN, SKAB, SKAB_MISSING, SMALL_SETTINGS, require_binary, skab_like_file  # noqa: E402

SCRIPT = train.REPO_ROOT / "scripts" / "benchmark-skab-nab.sh"
SCORER_PYTHON = str(train.REPO_ROOT / ".venv-nab" / "bin" / "python")


def ensure_scorer():
    """Makes the scorer's environment (pip, once); fails with pip's words if it cannot."""
    r = subprocess.run([str(SCRIPT), "--setup"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise AssertionError(f"cannot make the NAB scorer's environment: {r.stderr[-2000:]}")


def record(minute: int, ratio: float) -> dict:
    """A scored window as `sensor-anomaly score` writes it, `ratio` times the threshold."""
    severity = ("normal" if ratio < 1 else "low" if ratio < 2 else "medium" if ratio < 4
                else "high" if ratio < 8 else "critical")
    return {"device_id": "valve", "window_end": f"2020-03-09T10:{minute:02d}:00Z", "score": ratio,
            "threshold": 1.0, "is_anomaly": ratio >= 1, "severity": severity,
            "contributions": {"flow": ratio}, "top_channel": "flow", "top_feature": "flow_mean",
            "top_feature_z": 3.0, "explanation": "flow is off", "model_version": "m"}


class IncidentPredictionTests(unittest.TestCase):
    def test_a_row_is_anomalous_from_the_opening_window_to_the_resolving_one(self):
        require_binary(self)
        ratios = [0.1] * 30
        ratios[10] = ratios[11] = 1.5  # low twice: opens at 11 (2 of 3), resolves at 16 (5 quiet)
        ratios[25] = 9.0  # critical once: opens at once, still open at the end
        with tempfile.TemporaryDirectory() as td:
            td = Path(td)
            records = td / "scored.jsonl"
            records.write_text("".join(json.dumps(record(m, r)) + "\n" for m, r in enumerate(ratios)))
            s = nab.Scored("f/0", "f", [f"2020-03-09T10:{m:02d}:00" for m in range(30)], [0] * 30,
                           records, [int(r >= 1) for r in ratios])
            pred, counts = nab.incident_prediction(BIN, s, nab.DEFAULT_RULES, td)
            expected = [0] * 30
            expected[11:16] = [1] * 5
            expected[25:] = [1] * 5
            self.assertEqual(pred, expected)
            self.assertEqual(counts, {"opened": 2, "resolved": 1})
            # Other rules, other incidents: one window opens, and 10 quiet ones resolve.
            pred, _ = nab.incident_prediction(BIN, s, nab.Rules(1, 1, "high", 10), td)
            expected = [0] * 30
            expected[10:21] = [1] * 11
            expected[25:] = [1] * 5
            self.assertEqual(pred, expected)


class ChangepointColumnTests(unittest.TestCase):
    def test_a_file_without_a_readable_changepoint_column_is_refused_with_where(self):
        with tempfile.TemporaryDirectory() as td:
            missing, bad = Path(td) / "a.csv", Path(td) / "b.csv"
            missing.write_text("datetime;x;anomaly\n2020-01-01 00:00:00;1;0\n")
            bad.write_text("datetime;x;anomaly;changepoint\n2020-01-01 00:00:00;1;0;0\n2020-01-01 00:00:01;1;0;x\n")
            with self.assertRaisesRegex(train.InputError, "no `changepoint` column"):
                nab.read_changepoints(missing)
            with self.assertRaisesRegex(train.InputError, "line 3: bad `changepoint` value"):
                nab.read_changepoints(bad)


class ScorerTests(unittest.TestCase):
    """The scorer is SKAB's NAB: a perfect detector scores 100, a silent one 0, false alarms below."""

    @classmethod
    def setUpClass(cls):
        ensure_scorer()

    def test_perfect_silent_and_noisy_detectors(self):
        index = [f"2020-03-09T10:{m // 60:02d}:{m % 60:02d}" for m in range(600)]
        true = [0] * 600
        true[200] = true[400] = 1  # an anomaly from row 200 to row 400
        perfect = [0] * 600
        perfect[200:400] = [1] * 200
        noisy = list(perfect)
        for r in (50, 100, 500, 550):  # four one-row false alarms
            noisy[r] = 1
        series = {"a": {"index": index, "true": true}}
        jobs = [{"id": k, "files": ["a"], "predictions": {"a": p}}
                for k, p in (("perfect", perfect), ("silent", [0] * 600), ("noisy", noisy))]
        out = nab.run_scorer(SCORER_PYTHON, series, jobs)
        self.assertGreater(out["perfect"]["Standard"], 99.0)
        self.assertEqual((out["perfect"]["missed"], out["perfect"]["fp"]), (0, 0))
        self.assertEqual(out["silent"]["Standard"], 0.0)
        self.assertEqual(out["silent"]["missed"], 2)
        self.assertEqual(out["noisy"]["fp"], 8, "each one-row alarm is two changepoints")
        self.assertLess(out["noisy"]["Standard"], out["perfect"]["Standard"])
        self.assertLess(out["noisy"]["LowFP"], out["noisy"]["Standard"], "LowFP punishes them more")


class MadeUpFolderTests(unittest.TestCase):
    """The whole benchmark on a made-up SKAB-format folder (no shared data)."""

    def test_both_directions_and_a_file_that_cannot_be_fitted(self):
        require_binary(self)
        with tempfile.TemporaryDirectory() as td:
            d = Path(td) / "mydata"
            skab_like_file(d / "plant-a" / "0.csv", seed=1)
            skab_like_file(d / "plant-b" / "0.csv", seed=2)
            skab_like_file(d / "plant-b" / "short.csv", rows=300, seed=3)
            settings = Path(td) / "settings.json"
            settings.write_text(json.dumps(SMALL_SETTINGS))
            r = subprocess.run([str(SCRIPT), "--json", "--data", str(d), "--settings", str(settings),
                                "--detectors", "pca", "--bin", str(BIN)],
                               capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("plant-b/short: pca: not fitted: 300 rows, need more than 400", r.stderr)
        (report,) = json.loads(r.stdout)
        default = report["default_rules"]
        # Two changepoints (the shift's onset in each fitted file; the short file has none
        # after its first 400 rows); the shifts are plain, so neither is missed.
        self.assertEqual(default["all"]["changepoints"], 2)
        self.assertEqual(default["all"]["missed"], 0, default)
        self.assertGreater(default["all"]["Standard"], 0.0)
        directions = {(c["chosen_on"], c["reported_on"]) for c in report["cross_validation"]}
        self.assertEqual(directions, {("plant-a", "plant-b"), ("plant-b", "plant-a")})
        self.assertIn(report["expected"], report["cross_validation"])
        self.assertEqual(len(report["grid"]), len(nab.GRID))


@unittest.skipUnless(SKAB.is_dir(), SKAB_MISSING)
class SkabNabSmokeTests(unittest.TestCase):
    """Two SKAB files (the full run: scripts/benchmark-skab-nab.sh)."""

    def test_two_files(self):
        require_binary(self)
        files = ["valve1/1", "valve2/0"]
        r = subprocess.run([str(SCRIPT), "--json", "--files", ",".join(files)],
                           capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stderr)
        (report,) = json.loads(r.stdout)
        self.assertEqual(report["detector"], "autoencoder")
        cps = sum(sum(nab.read_changepoints(SKAB / f"{f}.csv")[bs.TRAIN_ROWS:]) for f in files)
        for result in (report["default_rules"]["all"], report["per_window_alarms"]["all"]):
            self.assertEqual(result["changepoints"], cps)
            self.assertTrue(np.isfinite(result["Standard"]) and result["Standard"] <= 100.0, result)
        self.assertLess(report["default_rules"]["all"]["fp"], report["per_window_alarms"]["all"]["fp"],
                        "incidents raise fewer false changepoints than per-window alarms")


if __name__ == "__main__":
    unittest.main()
