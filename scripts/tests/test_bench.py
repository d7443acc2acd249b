"""The bench script, short: it starts the release handler, drives it with wrk, measures ONNX
Runtime's ceiling and writes its report. The figures themselves are the README's, from the full
run (`scripts/bench.sh`); here only that every part runs and the report holds together."""
import json
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import bench  # noqa: E402


@unittest.skipIf(shutil.which("wrk") is None,
                 "wrk is not installed (Debian: apt-get install wrk; scripts/test.sh installs it "
                 "where it can)")
class ShortBench(unittest.TestCase):
    def test_a_short_bench_reports_every_figure_for_each_handler(self):
        handler = REPO / "target/release/sensor-anomaly-handler"
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "bench.json"
            code = bench.main([
                "--handler", f"a={handler}", "--handler", f"b={handler}",
                "--devices", "4", "--hours", "1", "--duration", "1", "--warmup", "0",
                "--rounds", "1", "--ceiling-seconds", "0.05", "--data-type", "binary",
                "--report", str(report)])
            self.assertEqual(code, 0)
            data = json.loads(report.read_text())
        self.assertEqual(data["invocations"], 4 * 60 // 100)
        self.assertEqual(len(data["runs"]), 2)
        for name in ("a", "b"):
            m = data["medians"][name]
            self.assertGreater(m["windows_per_s"], 0)
            self.assertGreater(m["windows_per_cpu_s"], 0)
            self.assertGreater(m["score_requests_per_s"], 0)
            self.assertGreater(m["score_requests_per_cpu_s"], 0)
            self.assertGreater(m["health_requests_per_s"], 0)
            self.assertLessEqual(m["invocation_p50_ms"], m["invocation_p99_ms"])
            self.assertGreater(m["rss_mib"], 0)
            self.assertGreater(m["share_of_ceiling"], 0)
        batches = {t["batch"] for t in data["ceiling"]["run"]}
        self.assertEqual(batches, {100, 10000})


if __name__ == "__main__":
    unittest.main()
