#!/usr/bin/env python3
"""Soak: the real handler under host-shaped traffic for a long time, watched every interval.

    scripts/soak.py                         # 30 minutes, the README's figure
    scripts/soak.py --duration 60 --interval 10

Traffic: `ScoreWindows` invocations as the Functions host sends them (cardinality many, string
bodies JSON-encoded in `Data`, metadata arrays JSON-encoded), each event a LineSeparated body of
Stream Analytics windows cut from the simulator's own output (so faults look like faults),
re-keyed onto 100,000 device ids that churn, with 1% of events malformed, 10% of invocations
re-deliveries of an earlier one, and `/api/reload` half way through (the same model file, as a
redeploy of an unchanged model does).

Every interval it prints (and appends to --report as JSON lines): RSS, open file descriptors,
p50/p99 invocation latency, windows/s and rows stored. At the end it checks, and exits 1 when
any fails:
- exactly once: the store holds one row per distinct alert the handler ever answered, none
  twice; a re-delivery answers the same alert ids as the first delivery;
- every malformed event is answered by exactly one dead letter, each time it is sent;
- memory: RSS after warm-up stays within --rss-bound-mib of the RSS at the end of warm-up
  (the live view, drift, recent-key sets and metric series are bounded);
- file descriptors: at the end, at most FD_JITTER more than warm-up's most;
- the handler exits 0 on SIGTERM.
The RSS curve goes to --plot (an SVG).
"""
import argparse
import http.client
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))
from sensor_anomaly_training.binary import start_handler  # noqa: E402
from sensor_anomaly_training.host import invocation  # noqa: E402


# Open connections and the SQLite journal come and go between samples.
FD_JITTER = 2


def args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=1800, help="seconds of load (default 1800)")
    p.add_argument("--interval", type=float, default=60, help="seconds between reports")
    p.add_argument("--handler", default=str(ROOT / "target/release/sensor-anomaly-handler"))
    p.add_argument("--cli", default=str(ROOT / "target/release/sensor-anomaly"))
    p.add_argument("--model", default=str(ROOT / "models/default.onnx"))
    p.add_argument("--devices", type=int, default=100_000, help="distinct device ids")
    p.add_argument("--events", type=int, default=48, help="events per invocation (host.json)")
    p.add_argument("--windows-per-event", type=int, default=2)
    p.add_argument("--malformed", type=float, default=0.01, help="fraction of malformed events")
    p.add_argument("--redeliver", type=float, default=0.10, help="fraction of re-deliveries")
    p.add_argument("--workers", type=int, default=3, help="concurrent connections")
    p.add_argument("--warmup", type=float, default=0.25, help="fraction of the run that is warm-up")
    p.add_argument("--rss-bound-mib", type=float, default=16.0,
                   help="allowed RSS growth after warm-up, MiB")
    p.add_argument("--report", default=str(ROOT / "reports/soak.jsonl"))
    p.add_argument("--plot", default=None, help="SVG of RSS over time (e.g. docs/soak-rss.svg)")
    p.add_argument("--seed", type=int, default=7)
    return p


def template_windows(cli: str) -> list:
    """The simulator's windows (10 devices x 2 h, faults included): realistic feature vectors."""
    sim = subprocess.run([cli, "simulate", "--devices", "10", "--hours", "2", "--seed", "11"],
                         check=True, capture_output=True)
    win = subprocess.run([cli, "window"], input=sim.stdout, check=True, capture_output=True)
    keep = ("device_id", "window_start", "window_end", "sample_count")
    out = []
    for line in win.stdout.decode().splitlines():
        w = json.loads(line)
        out.append({k: v for k, v in w.items() if k not in keep and not k.startswith("fault")
                    and k not in ("label", "faulty_samples")})
    return out


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Traffic:
    """Builds invocations; remembers what each should produce. Thread-safe through one lock."""

    def __init__(self, a, templates):
        self.a = a
        self.templates = templates
        self.rng = random.Random(a.seed)
        self.lock = threading.Lock()
        self.window = 0  # windows generated so far
        self.sequence = 0
        self.invocations = 0
        self.base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=60)
        self.recent = []  # (body, malformed events) of recent first deliveries

    def next(self):
        with self.lock:
            self.invocations += 1
            if self.recent and self.rng.random() < self.a.redeliver:
                key, body, malformed = self.rng.choice(self.recent)
                return key, body, malformed, True
            bodies, malformed = [], 0
            for _ in range(self.a.events):
                if self.rng.random() < self.a.malformed:
                    malformed += 1
                    bodies.append('{"device_id": "broken", "window_end": "2026-01-0')
                    continue
                lines = []
                for _ in range(self.a.windows_per_event):
                    k = self.window
                    self.window += 1
                    w = dict(self.rng.choice(self.templates))
                    w["device_id"] = f"dev-{k % self.a.devices:06d}"
                    w["window_end"] = iso(self.base + timedelta(minutes=k // self.a.devices))
                    lines.append(json.dumps(w, separators=(",", ":")))
                bodies.append("\n".join(lines))
            first = self.sequence
            self.sequence += len(bodies)
            body = invocation(bodies, first, namespace="soak.servicebus.windows.net").encode()
            key = first
            self.recent.append((key, body, malformed))
            if len(self.recent) > 200:
                self.recent.pop(0)
            return key, body, malformed, False


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.windows = 0
        self.alert_ids = set()
        self.first_answer = {}  # invocation key -> frozenset of alert ids
        self.redelivery_mismatches = 0
        self.dead_letter_mismatches = 0
        self.malformed_sent = 0
        self.dead_letters = 0
        self.failures = []
        self.invocations = 0


def worker(port, traffic, results, stop, windows_per_event, events):
    windows_per_invocation = windows_per_event * events
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        key, body, malformed, redelivery = traffic.next()
        started = time.perf_counter()
        try:
            conn.request("POST", "/ScoreWindows", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            text = response.read()
        except (OSError, http.client.HTTPException) as e:
            with results.lock:
                results.failures.append(f"connection: {e!r}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        elapsed = time.perf_counter() - started
        if response.status != 200:
            with results.lock:
                results.failures.append(f"status {response.status}: {text[:300]!r}")
            continue
        reply = json.loads(text)
        alerts = frozenset(json.loads(a)["alert_id"] for a in reply["Outputs"]["alerts"])
        letters = [json.loads(d) for d in reply["Outputs"]["deadletter"]]
        refused = sum(1 + d.get("omitted", 0) for d in letters)
        with results.lock:
            results.invocations += 1
            results.latencies.append(elapsed)
            results.windows += windows_per_invocation - malformed * windows_per_event
            results.alert_ids |= alerts
            results.malformed_sent += malformed
            results.dead_letters += refused
            if refused != malformed:
                results.dead_letter_mismatches += 1
            if redelivery:
                if results.first_answer.get(key, alerts) != alerts:
                    results.redelivery_mismatches += 1
            else:
                results.first_answer[key] = alerts
    conn.close()


def proc_stats(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def stored(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT device_id || '|' || window_end || '|' || model_version)"
            " FROM anomalies").fetchone()
        return rows, distinct
    finally:
        conn.close()


def reload(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/reload", b"")
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def plot(samples, path, bound_start, reload_at=None):
    """RSS (MiB) against minutes, as a plain SVG: no plotting library needed."""
    w, h, pad = 640, 320, 50
    xs = [s["elapsed_s"] / 60 for s in samples]
    ys = [s["rss_mib"] for s in samples]
    xmax = max(xs) or 1
    ymax = max(ys) * 1.25
    px = lambda x: pad + (w - 2 * pad) * x / xmax  # noqa: E731
    py = lambda y: h - pad - (h - 2 * pad) * y / ymax  # noqa: E731
    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    ticks = "".join(
        f'<text x="{pad - 6}" y="{py(v):.1f}" text-anchor="end" font-size="11">{v:.0f}</text>'
        f'<line x1="{pad}" x2="{w - pad}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>'
        for v in [ymax * i / 4 for i in range(5)])
    xticks = "".join(
        f'<text x="{px(v):.1f}" y="{h - pad + 16}" text-anchor="middle" font-size="11">{v:.0f}</text>'
        for v in [xmax * i / 5 for i in range(6)])
    reload_mark = "" if reload_at is None else (
        f'<line x1="{px(reload_at / 60):.1f}" x2="{px(reload_at / 60):.1f}" y1="{pad}" y2="{h - pad}" stroke="#c66" stroke-dasharray="2"/>'
        f'<text x="{px(reload_at / 60) + 4:.1f}" y="{pad + 26}" font-size="11" fill="#c66">/api/reload</text>')
    svg = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">Handler RSS under soak (scripts/soak.py)</text>
{ticks}{xticks}
<line x1="{px(bound_start / 60):.1f}" x2="{px(bound_start / 60):.1f}" y1="{pad}" y2="{h - pad}" stroke="#999" stroke-dasharray="4"/>
<text x="{px(bound_start / 60) + 4:.1f}" y="{pad + 12}" font-size="11" fill="#666">end of warm-up</text>
{reload_mark}
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{points}"/>
<text x="{w / 2}" y="{h - 10}" text-anchor="middle" font-size="12">minutes</text>
<text x="14" y="{h / 2}" font-size="12" transform="rotate(-90 14 {h / 2})" text-anchor="middle">RSS (MiB)</text>
</svg>
"""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(svg)


def main(argv=None) -> int:
    a = args_parser().parse_args(argv)
    for binary in (a.handler, a.cli):
        if not Path(binary).exists():
            sys.exit(f"{binary} is missing: cargo build --release")
    templates = template_windows(a.cli)
    scratch = Path(tempfile.mkdtemp(prefix="soak-"))
    db = scratch / "anomalies.sqlite"
    env = dict(os.environ, ANOMALY_MODEL_PATH=a.model, ANOMALY_SQLITE_PATH=str(db),
               ORT_DYLIB_PATH=os.environ.get("ORT_DYLIB_PATH", str(ROOT / ".ort/lib")))
    proc, port = start_handler([a.handler], env, cwd=scratch)
    traffic, results, stop = Traffic(a, templates), Results(), threading.Event()
    threads = [threading.Thread(target=worker, daemon=True,
                                args=(port, traffic, results, stop, a.windows_per_event, a.events))
               for _ in range(a.workers)]
    Path(a.report).parent.mkdir(parents=True, exist_ok=True)
    report = open(a.report, "w")
    samples, started = [], time.monotonic()
    reloaded = None
    checks = {}
    try:
        for t in threads:
            t.start()
        last_windows, last_time = 0, started
        while (now := time.monotonic()) - started < a.duration:
            time.sleep(min(a.interval, max(0.0, a.duration - (now - started))))
            if reloaded is None and time.monotonic() - started >= a.duration / 2:
                reloaded = reload(port)
            with results.lock:
                lat, results.latencies = results.latencies, []
                windows = results.windows
            rss, fds = proc_stats(proc.pid)
            rows, _ = stored(db)
            t = time.monotonic()
            sample = {
                "elapsed_s": round(t - started, 1), "rss_mib": round(rss, 1), "fds": fds,
                "p50_ms": round(statistics.median(lat) * 1000, 2) if lat else None,
                "p99_ms": round(sorted(lat)[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
                "invocations": len(lat),
                "windows_per_s": round((windows - last_windows) / (t - last_time)),
                "rows_stored": rows,
            }
            last_windows, last_time = windows, t
            samples.append(sample)
            report.write(json.dumps(sample) + "\n")
            report.flush()
            print(" ".join(f"{k}={v}" for k, v in sample.items()), flush=True)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        rows, distinct = stored(db)
        warm = [s for s in samples if s["elapsed_s"] >= a.duration * a.warmup]
        base = warm[0] if warm else samples[-1]
        growth = max(s["rss_mib"] for s in warm) - base["rss_mib"] if warm else 0.0
        # Connections and the store's journal open and close: a leak is growth past the most
        # warm-up ever held, by more than that jitter.
        warmup_fds = max(s["fds"] for s in samples if s not in warm) if len(warm) < len(samples) \
            else base["fds"]
        fd_growth = samples[-1]["fds"] - warmup_fds
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        checks = {
            "every alert stored once": rows == len(results.alert_ids) == distinct,
            "re-deliveries answered alike": results.redelivery_mismatches == 0,
            "every malformed event one dead letter": results.dead_letter_mismatches == 0
            and results.dead_letters == results.malformed_sent,
            f"RSS flat after warm-up (<= {a.rss_bound_mib} MiB)": growth <= a.rss_bound_mib,
            f"no fd growth after warm-up (<= {FD_JITTER})": fd_growth <= FD_JITTER,
            "reload answered 200": reloaded is not None and reloaded[0] == 200,
            "no failed invocations": not results.failures,
            "exit 0 on SIGTERM": code == 0,
        }
        summary = {
            "duration_s": a.duration, "invocations": results.invocations,
            "windows": results.windows, "devices": a.devices,
            "alerts_distinct": len(results.alert_ids), "rows_stored": rows,
            "malformed_events_sent": results.malformed_sent,
            "dead_letters": results.dead_letters,
            "rss_start_mib": samples[0]["rss_mib"], "rss_warm_mib": base["rss_mib"],
            "rss_max_mib": max(s["rss_mib"] for s in samples),
            "rss_growth_after_warmup_mib": round(growth, 1), "fd_growth": fd_growth,
            "failures": results.failures[:5], "checks": checks,
        }
        report.write(json.dumps({"summary": summary}) + "\n")
        print(json.dumps(summary, indent=2))
        if a.plot:
            plot(samples, a.plot, a.duration * a.warmup, a.duration / 2)
    finally:
        stop.set()
        report.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    failed = [name for name, ok in checks.items() if not ok]
    if failed or not checks:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
