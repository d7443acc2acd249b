"""The soak script, short: the real release handler under host-shaped traffic with churning
devices, malformed events, re-deliveries and a reload; its own end checks (exactly once, one
dead letter per malformed event, flat RSS, no fd growth, clean exit) must all pass. The
30-minute run behind the README's figure is `scripts/soak.py` itself."""
import json
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import soak  # noqa: E402


class ShortSoak(unittest.TestCase):
    def test_a_short_soak_passes_every_check(self):
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "soak.jsonl"
            plot = Path(tmp) / "rss.svg"
            code = soak.main(["--duration", "24", "--interval", "4", "--devices", "5000",
                              "--report", str(report), "--plot", str(plot)])
            lines = [json.loads(line) for line in report.read_text().splitlines()]
            summary = lines[-1]["summary"]
            self.assertEqual(code, 0, summary["checks"])
            self.assertGreaterEqual(len(lines) - 1, 5, "a sample every interval")
            self.assertGreater(summary["malformed_events_sent"], 0)
            self.assertGreater(summary["rows_stored"], 0)
            self.assertEqual(summary["rows_stored"], summary["alerts_distinct"])
            self.assertIn("<polyline", plot.read_text())


if __name__ == "__main__":
    unittest.main()
