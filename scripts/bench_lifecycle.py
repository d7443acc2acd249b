#!/usr/bin/env python3
"""The model lifecycle's two costs, measured against Azurite (tests/azurite, scripts/azurite-setup.sh):

1. **Fleet-wide switch time.** Two handler instances (`sensor-anomaly-handler`, as the host runs it)
   follow one model store with ANOMALY_MODEL_POLL_SECS; the script promotes a model with
   `sensor-anomaly model promote` and times, from the command's return, how long until both
   instances' `GET /api/model` name it. Repeated --promotions times, alternating two models.
2. **Shadow-scoring cost.** `scripts/bench.py` drives the same handler binary twice side by side,
   alone and following a store whose pointer names a challenger, under the same host-shaped load.

The two models are the shipped default and a copy whose `anomaly.model_version` is edited in place
(same length, so the ONNX protobuf stays valid): distinct files, hashes and versions, the same
graph. Azurite takes an account key, so the store is reached with one (the app's identity is not
exercised here)."""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))
from sensor_anomaly_training.binary import start_handler  # noqa: E402

AZURITE = ROOT / "tests/azurite/node_modules/.bin/azurite-blob"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_VERSION = b"ae-08eb8db3ca8f"


def variant(model: Path, version: str, out: Path) -> Path:
    data = model.read_bytes()
    if len(version) != len(DEFAULT_VERSION) or data.count(DEFAULT_VERSION) != 1:
        sys.exit(f"the variant needs a {len(DEFAULT_VERSION)}-character version and the shipped model")
    out.write_bytes(data.replace(DEFAULT_VERSION, version.encode()))
    return out


def start_azurite(folder: Path):
    if not AZURITE.exists():
        sys.exit("Azurite is not installed: scripts/azurite-setup.sh")
    log = open(folder / "azurite.log", "w")
    proc = subprocess.Popen(["sh", "-c", f"exec '{AZURITE}' --blobHost 127.0.0.1 --blobPort 0 "
                             "--inMemoryPersistence --skipApiVersionCheck --disableTelemetry"],
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        text = (folder / "azurite.log").read_text()
        if "successfully listens on http://127.0.0.1:" in text:
            port = int(text.split("successfully listens on http://127.0.0.1:")[1].split()[0])
            return proc, port
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"Azurite did not start:\n{(folder / 'azurite.log').read_text()}")


def model_version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/model", timeout=5) as r:
        return json.load(r)["model_version"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cli", default=str(ROOT / "target/release/sensor-anomaly"))
    p.add_argument("--handler", default=str(ROOT / "target/release/sensor-anomaly-handler"))
    p.add_argument("--model", default=str(ROOT / "models/default.onnx"))
    p.add_argument("--poll-secs", type=int, default=5)
    p.add_argument("--promotions", type=int, default=6)
    p.add_argument("--skip-shadow", action="store_true", help="only the switch time")
    p.add_argument("--bench-args", default="--duration 6 --rounds 3",
                   help="extra arguments for scripts/bench.py's shadow run")
    p.add_argument("--report", default=str(ROOT / "reports/bench-lifecycle.json"))
    a = p.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="lifecycle-"))
    azurite, port = start_azurite(scratch)
    endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
    connection = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint={endpoint}"
    handlers = []
    report: dict = {"poll_secs": a.poll_secs}
    try:
        models = [variant(Path(a.model), "ae-lifecycle-01", scratch / "a.onnx"),
                  variant(Path(a.model), "ae-lifecycle-02", scratch / "b.onnx")]
        store_env = dict(os.environ, ANOMALY_MODEL_STORE=connection, ANOMALY_MODEL_CONTAINER="fleet")
        store_env.pop("ANOMALY_MODEL_STORE__blobServiceUri", None)

        def cli(*args):
            return subprocess.run([a.cli, "model", *args], env=store_env, check=True,
                                  capture_output=True, text=True).stdout

        cli("promote", "--file", str(models[0]), "--by", "bench")
        env = dict(store_env, ANOMALY_MODEL_PATH=str(Path(a.model).absolute()),
                   ANOMALY_MODEL_POLL_SECS=str(a.poll_secs),
                   ANOMALY_SQLITE_PATH=str(scratch / "fleet.sqlite"),
                   ORT_DYLIB_PATH=os.environ.get("ORT_DYLIB_PATH", str(ROOT / ".ort/lib")))
        for _ in range(2):
            handlers.append(start_handler([a.handler], env, cwd=scratch))
        ports = [port for _, port in handlers]
        switches = []
        for i in range(a.promotions):
            target = models[(i + 1) % 2]
            version = "ae-lifecycle-0" + ("2" if (i + 1) % 2 else "1")
            # At a random point of the poll interval, as an operator would: the switch time
            # then spreads over the interval instead of always hitting just after a poll.
            time.sleep(random.uniform(0, a.poll_secs))
            cli("promote", "--file", str(target), "--by", "bench")
            promoted = time.perf_counter()
            seen = {}
            while len(seen) < len(ports):
                for p_ in ports:
                    if p_ not in seen and model_version(p_) == version:
                        seen[p_] = time.perf_counter() - promoted
                if time.perf_counter() - promoted > 10 * a.poll_secs + 30:
                    sys.exit(f"promotion {i}: not every instance switched: {seen}")
                time.sleep(0.02)
            fleet = max(seen.values())
            switches.append({"promotion": i, "model_version": version,
                             "instances_s": sorted(seen.values()), "fleet_s": fleet})
            print(json.dumps(switches[-1]), flush=True)
        fleet_times = [s["fleet_s"] for s in switches]
        report["switch"] = {"runs": switches, "fleet_median_s": statistics.median(fleet_times),
                            "fleet_max_s": max(fleet_times)}
        for proc, _ in handlers:
            proc.terminate()
            proc.wait(timeout=30)
        handlers.clear()

        if not a.skip_shadow:
            # The champion is the shipped model itself (so both runs score with the same
            # model), the challenger the variant.
            shadow_env = ["ANOMALY_MODEL_STORE=" + connection, "ANOMALY_MODEL_CONTAINER=shadow"]
            store_env["ANOMALY_MODEL_CONTAINER"] = "shadow"
            cli("promote", "--file", str(Path(a.model).absolute()), "--by", "bench")
            cli("challenge", "--file", str(models[0]), "--by", "bench")
            # The handler with these settings serves the challenger in shadow (checked, so the
            # comparison below is not of two identical runs).
            check_env = dict(store_env, ANOMALY_MODEL_PATH=str(Path(a.model).absolute()),
                             ANOMALY_SQLITE_PATH=str(scratch / "check.sqlite"),
                             ORT_DYLIB_PATH=os.environ.get("ORT_DYLIB_PATH", str(ROOT / ".ort/lib")))
            proc, check_port = start_handler([a.handler], check_env, cwd=scratch)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{check_port}/api/model", timeout=5) as r:
                    challenger = json.load(r)["challenger"]
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            if not challenger or challenger["model_version"] != "ae-lifecycle-01":
                sys.exit(f"the shadow run would have no challenger: {challenger}")
            bench_report = scratch / "bench-shadow.json"
            cmd = [sys.executable, str(ROOT / "scripts/bench.py"),
                   "--handler", f"alone={a.handler}", "--handler", f"shadow={a.handler}",
                   "--report", str(bench_report), *a.bench_args.split()]
            for setting in shadow_env:
                cmd += ["--handler-env", f"shadow:{setting}"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"scripts/bench.py failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
            out = run.stdout
            print(out[out.find("| measure"):], flush=True)
            report["shadow"] = json.loads(bench_report.read_text())["medians"]
    finally:
        for proc, _ in handlers:
            proc.kill()
        azurite.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    Path(a.report).parent.mkdir(parents=True, exist_ok=True)
    Path(a.report).write_text(json.dumps(report, indent=1) + "\n")
    s = report["switch"]
    print(f"fleet switch (2 instances, ANOMALY_MODEL_POLL_SECS={a.poll_secs}, {a.promotions} promotions): "
          f"median {s['fleet_median_s']:.2f} s, max {s['fleet_max_s']:.2f} s")
    if "shadow" in report:
        alone, shadow = report["shadow"]["alone"], report["shadow"]["shadow"]
        print(f"shadow cost: {shadow['windows_per_s'] / alone['windows_per_s']:.2f}x windows/s, "
              f"{shadow['windows_per_cpu_s'] / alone['windows_per_cpu_s']:.2f}x per CPU-second, "
              f"p99 {alone['invocation_p99_ms']:.2f} -> {shadow['invocation_p99_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
