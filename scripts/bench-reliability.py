#!/usr/bin/env python3
"""Measures what one hostile or very large invocation costs the handler.

Starts a handler binary (by default target/release/sensor-anomaly; pass another with --bin to
compare builds side by side), sends it host-shaped ScoreWindows invocations, and prints, for
each: status, seconds, response bytes, and the process's peak RSS (VmHWM) after it.

  hostile-N     one event whose body is a JSON array of N numbers, beside four good windows
  near-limit    Stream-Analytics-shaped windows packed 1 MB per event (LineSeparated), as many
                events as fit under ANOMALY_MAX_INVOCATION_BYTES once doubly encoded
  over-limit    the same with twice as many events

Also prints the doubly-encoded size factor of Stream Analytics' JSON, which sets what the host
can send: maxEventBatchSize x the largest event x this factor.

  scripts/bench-reliability.py [--bin PATH] [--cases hostile-10000,hostile-30000,near-limit]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def metadata(n, first=1):
    seq = list(range(first, first + n))
    enc = json.dumps
    return {
        "PartitionContext": {"PartitionId": "0", "EventHubName": "windows", "ConsumerGroup": "$Default"},
        "SequenceNumberArray": enc(seq),
        "OffsetArray": enc([str(s * 1000) for s in seq]),
        "EnqueuedTimeUtcArray": enc(["2026-01-01T00:00:00"] * n),
    }


def invocation(bodies, first=1):
    return {"Data": {"events": json.dumps(bodies)}, "Metadata": metadata(len(bodies), first)}


def windows(bin_path, tmp):
    samples, out = os.path.join(tmp, "s.jsonl"), os.path.join(tmp, "w.jsonl")
    subprocess.run([bin_path, "simulate", "--devices", "8", "--hours", "6", "--seed", "3", "--out", samples], check=True)
    subprocess.run([bin_path, "window", "--input", samples, "--out", out], check=True)
    return [line.strip() for line in open(out) if line.strip()]


def packed_events(records, event_bytes):
    """Events of LineSeparated records, each just under `event_bytes`, cycling the records."""
    current, size, i = [], 0, 0
    while True:
        r = records[i % len(records)]
        i += 1
        if size + len(r) + 1 > event_bytes:
            yield "\n".join(current)
            current, size = [], 0
        current.append(r)
        size += len(r) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/sensor-anomaly"))
    ap.add_argument("--cases", default="hostile-10000,hostile-30000,near-limit,over-limit")
    ap.add_argument("--limit-mib", type=int, default=64, help="ANOMALY_MAX_INVOCATION_BYTES in MiB")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-reliability-")
    records = windows(args.bin, tmp)
    one = json.dumps(json.dumps(records[:256]))
    factor = len(one) / sum(len(r) for r in records[:256])
    print(f"doubly-encoded factor of Stream Analytics JSON: {factor:.3f} (mean record {sum(map(len, records)) / len(records):.0f} bytes)")

    port = free_port()
    env = dict(os.environ, FUNCTIONS_CUSTOMHANDLER_PORT=str(port),
               ANOMALY_SQLITE_PATH=os.path.join(tmp, "a.sqlite"),
               ANOMALY_MAX_INVOCATION_BYTES=str(args.limit_mib << 20), RUST_LOG="warn")
    log = open(os.path.join(tmp, "handler.log"), "w")
    proc = subprocess.Popen([args.bin, "serve"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        good = records[:4]

        def post(body):
            data = json.dumps(body).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/ScoreWindows", data=data,
                                         headers={"content-type": "application/json"})
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=600) as r:
                    status, reply = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, reply = e.code, e.read()
            except (urllib.error.URLError, ConnectionError) as e:
                # The handler closed the connection (a 413 before reading the body) or died.
                alive = proc.poll() is None
                status, reply = ("dropped" if alive else "died"), str(e).encode()
            return status, time.perf_counter() - started, len(reply), len(data)

        post(invocation(good))
        print(f"baseline peak RSS after one small batch: {vm_hwm_mib(proc.pid):.0f} MiB")
        print(f"{'case':<16} {'request':>12} {'status':>7} {'seconds':>8} {'response':>12} {'peak RSS':>9}")
        limit = args.limit_mib << 20
        for case in args.cases.split(","):
            if case.startswith("hostile-"):
                n = int(case.split("-")[1])
                body = invocation([json.dumps([i * 1.5 for i in range(n)])] + good)
            else:
                per_event = 1 << 20
                fits = int(limit / (per_event * factor))
                n = fits if case == "near-limit" else 2 * fits
                gen = packed_events(records, per_event)
                body = invocation([next(gen) for _ in range(max(n - 1, 1))])
            status, seconds, size, sent = post(body)
            peak = f"{vm_hwm_mib(proc.pid):>7.0f} MiB" if proc.poll() is None else "   (gone)"
            print(f"{case:<16} {sent:>12,} {status:>7} {seconds:>8.3f} {size:>12,} {peak}", flush=True)
            if proc.poll() is not None:
                print(f"the handler exited with {proc.returncode} (killed by signal {-proc.returncode} if negative)")
                break
    finally:
        proc.kill()
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
