#!/usr/bin/env python3
"""Cold start of the handler: exec -> first 200 on GET / (as the Functions host waits for it),
median of N runs, for one or more binaries side by side (e.g. an old build against this one).

    scripts/bench-startup.py --bin target/release/sensor-anomaly-handler \
        --bin /tmp/old-target/release/sensor-anomaly:serve --runs 15

A binary may carry its arguments after a colon. Each run gets a fresh SQLite file and port; the
model is the committed default. Prints the binary's size and the median/min/max start time.
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_start(command, workdir):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANOMALY_", "RUST_LOG"))}
    env.update(FUNCTIONS_CUSTOMHANDLER_PORT=str(port),
               ANOMALY_SQLITE_PATH=str(Path(workdir) / f"{port}.sqlite"),
               ANOMALY_MODEL_PATH=str(REPO / "models/default.onnx"),
               ORT_DYLIB_PATH=str(REPO / ".ort/lib"))
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                if proc.poll() is not None:
                    sys.exit(f"{command[0]} exited with {proc.returncode}")
                time.sleep(0.001)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", required=True, help="binary[:arg,...]")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    commands = []
    for spec in args.bin:
        path, _, rest = spec.partition(":")
        commands.append([str(Path(path).resolve()), *[a for a in rest.split(",") if a]])
    times = {c[0]: [] for c in commands}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.runs):  # interleaved, so a busy moment hits every binary alike
            for command in commands:
                times[command[0]].append(one_start(command, workdir))
    for command in commands:
        t = sorted(times[command[0]])
        size = Path(command[0]).stat().st_size / 1e6
        print(f"{command[0]}: {size:.1f} MB, cold start median {statistics.median(t) * 1e3:.1f} ms "
              f"(min {t[0] * 1e3:.1f}, max {t[-1] * 1e3:.1f}, {len(t)} runs)")


if __name__ == "__main__":
    main()
