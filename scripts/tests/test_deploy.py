"""The package and the deployment script: the zip starts as the Functions host starts it, and
`scripts/deploy.sh --dry-run` prints the whole command sequence (a real deployment cannot run
here: no Azure, no Bicep CLI)."""
import json
import os
import subprocess
import tempfile
import unittest
import urllib.request
import zipfile
from pathlib import Path

from sensor_anomaly_training.binary import start_handler

REPO = Path(__file__).resolve().parents[2]


def get(url, body=None):
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.status, r.read()


class PackageTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.zip = Path(cls.tmp.name) / "sensor-anomaly.zip"
        r = subprocess.run([str(REPO / "scripts/package.sh"), str(cls.zip)], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(r.stderr)
        cls.stderr = r.stderr

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_layout_and_executable_bit(self):
        with zipfile.ZipFile(self.zip) as z:
            names = set(z.namelist())
            mode = z.getinfo("sensor-anomaly-handler").external_attr >> 16
            handler = z.read("sensor-anomaly-handler")
        for required in ["host.json", "sensor-anomaly-handler", "libonnxruntime.so.1.31.1", "models/default.onnx",
                         "ScoreWindows/function.json", "Health/function.json", "Dashboard/function.json"]:
            self.assertIn(required, names)
        self.assertFalse(any(n.startswith("functions/") for n in names), "function folders at the root")
        self.assertTrue(mode & 0o111, oct(mode))
        self.assertRegex(self.stderr, r"needs GLIBC_2\.\d+ or newer")
        self.assertNotIn("sensor-anomaly", names, "the CLI with the tools is not deployed")
        # The deployed binary links no tool and no Event Hubs client: their source paths (kept
        # for panic messages) are absent from it and present in the CLI's binary.
        cli = (REPO / "target/release/sensor-anomaly").read_bytes()
        for marker in [b"crates/tools/src/simulate.rs", b"azure_messaging_eventhubs", b"fe2o3"]:
            self.assertIn(marker, cli, "the check itself: the CLI carries it")
            self.assertNotIn(marker, handler, marker)

    def test_the_unpacked_app_starts_as_host_json_says_and_scores(self):
        app = Path(self.tmp.name) / "app"
        subprocess.run(["unzip", "-q", "-o", str(self.zip), "-d", str(app)], check=True)
        handler = json.loads((app / "host.json").read_text())["customHandler"]["description"]
        executable = app / handler["defaultExecutablePath"]
        cwd = app / handler.get("workingDirectory", "")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANOMALY_", "ORT_", "RUST_LOG"))}
        env.update(ANOMALY_SQLITE_PATH=str(app / "data.sqlite"))
        # The handler takes a free port (FUNCTIONS_CUSTOMHANDLER_PORT=0) and names it.
        proc, port = start_handler([executable, *handler.get("arguments", [])], env, cwd=cwd)
        try:
            base = f"http://127.0.0.1:{port}"
            status, _ = get(base + "/")
            self.assertEqual(status, 200)
            model = json.loads(get(base + "/api/model")[1])
            window = {"device_id": "pump-1", "window_end": "2026-01-01T00:01:00Z",
                      **dict(zip(model["feature_names"], model["feature_mean"]))}
            status, body = get(base + "/api/score", json.dumps(window).encode())
            self.assertEqual(status, 200)
            scored = json.loads(body)
            self.assertEqual(scored["severity"], "normal")
            # The ONNX Runtime library in use is the packaged one, beside the binary.
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            loaded = {line.split()[-1] for line in maps.splitlines() if "libonnxruntime.so" in line}
            self.assertEqual(loaded, {str((app / "libonnxruntime.so.1.31.1").resolve())})
        finally:
            proc.terminate()
            proc.wait(timeout=10)


class DeployDryRunTests(unittest.TestCase):
    def run_deploy(self, *args):
        return subprocess.run([str(REPO / "scripts/deploy.sh"), *args], capture_output=True, text=True, cwd="/")

    def test_the_full_sequence_is_printed_in_order(self):
        r = self.run_deploy("--dry-run", "-g", "rg-anomaly", "-l", "westeurope")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(all(line.startswith("+ ") for line in lines), lines)
        expected = [
            "+ az group create --name rg-anomaly --location westeurope",
            "+ az deployment group create --resource-group rg-anomaly --name sensor-anomaly --template-file infra/main.bicep --parameters infra/main.bicepparam",
            "+ scripts/package.sh dist/sensor-anomaly.zip",
            "+ az functionapp deployment source config-zip --resource-group rg-anomaly --name <functionAppName> --src dist/sensor-anomaly.zip",
            "+ az extension add --name stream-analytics",
            "+ az stream-analytics job start --resource-group rg-anomaly --job-name <streamAnalyticsJob>",
            "+ curl -fsS <functionAppUrl>/api/health",
        ]
        self.assertEqual(len(lines), len(expected), lines)
        for line, prefix in zip(lines, expected):
            self.assertTrue(line.startswith(prefix), f"{line!r} does not start with {prefix!r}")

    def test_what_if_stops_after_the_preview_and_bad_usage_exits_2(self):
        r = self.run_deploy("--dry-run", "--what-if", "-g", "rg", "-l", "eastus", "-p", "my params.bicepparam")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[-1],
                         "+ az deployment group what-if --resource-group rg --name sensor-anomaly "
                         "--template-file infra/main.bicep --parameters 'my params.bicepparam'")
        self.assertEqual(len(r.stdout.splitlines()), 2)
        r = self.run_deploy("--dry-run", "-g", "rg")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--location", r.stderr)
        r = self.run_deploy("--bogus")
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main()
