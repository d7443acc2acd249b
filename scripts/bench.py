#!/usr/bin/env python3
"""Throughput of the release handler under host-shaped load, beside ONNX Runtime's own ceiling
and, in the same run, any other build of the handler (an older commit, say).

    scripts/bench.sh                                   # builds, then runs this with the defaults
    scripts/bench.py --handler before=/tmp/old/sensor-anomaly-handler \\
                     --handler after=target/release/sensor-anomaly-handler --rounds 3

Workload (the one issue 20 measured): `ScoreWindows` invocations as the Functions host sends them
(cardinality many, `dataType` string, each body JSON-encoded inside a JSON-encoded array), each of
--windows-per-invocation windows in events of --windows-per-event LineSeparated records, cut
from the simulator's windows of --devices devices x --hours hours at 60 s. The invocations are
cycled, so after the first pass most are re-deliveries (the store answers "already have it").
Load comes from wrk (2 threads, 8 connections by default) on the same machine, so the handler
shares the cores with its load generator, as in the issue's figures.

Per handler and round: a fresh SQLite store, a short warm-up, then --duration seconds of
`ScoreWindows` and --duration seconds of `/api/score` (one window per request), then RSS, then
--duration seconds of `GET /api/health`: the same server, middleware and request span with
nothing to read or score, the most requests per second any endpoint can answer on the machine.
Handlers are interleaved round by round (machines drift); the report takes medians over rounds.

The ceiling is `sensor-anomaly bench-model` on the same windows and model: `Model::run` alone
(ONNX Runtime, one thread) at the invocation's batch size and at 10,000 rows.

Prints a table and writes --report (JSON).
"""
import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))
from sensor_anomaly_training.binary import start_handler  # noqa: E402
from sensor_anomaly_training.host import invocation  # noqa: E402

# wrk's Lua: prints its figures as one JSON line.
WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%f,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"non_2xx":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.timeout, e.status))
end
"""

# wrk's Lua: cycles the bodies written to a folder.
WRK_SCRIPT = r"""
local bodies, n, counter = {}, 0, 0
local threads, k = {}, 0
setup = function(thread) thread:set("offset", k * 7919); k = k + 1; table.insert(threads, thread) end
init = function(args)
  local dir, count = args[1], tonumber(args[2])
  for i = 0, count - 1 do
    local f = assert(io.open(string.format("%s/%05d.json", dir, i), "rb"))
    bodies[i + 1] = f:read("*a"); f:close()
  end
  n = count
  counter = offset or 0
end
request = function()
  counter = counter + 1
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, bodies[(counter % n) + 1])
end
""" + WRK_DONE

# wrk's Lua: GET with no body (the HTTP floor: the same server, middleware and request span,
# nothing to read or score).
WRK_GET = r"""
request = function() return wrk.format("GET", wrk.path) end
""" + WRK_DONE


def args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--handler", action="append", default=[],
                   help="NAME=PATH of a handler binary; repeat to compare (default: "
                        "current=target/release/sensor-anomaly-handler)")
    p.add_argument("--handler-env", action="append", default=[],
                   help="NAME:KEY=VALUE, an app setting for the handler called NAME (e.g. a model "
                        "store for one of two runs of the same binary); repeatable")
    p.add_argument("--cli", default=str(ROOT / "target/release/sensor-anomaly"))
    p.add_argument("--model", default=str(ROOT / "models/default.onnx"))
    p.add_argument("--devices", type=int, default=40)
    p.add_argument("--hours", type=float, default=24)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--windows-per-invocation", type=int, default=100)
    p.add_argument("--windows-per-event", type=int, default=4,
                   help="windows per event (LineSeparated); 4 keeps 100 windows within host.json's 48 events")
    p.add_argument("--data-type", choices=("string", "binary"), default="string",
                   help="the trigger's dataType: bodies as JSON text, or base64 (default string)")
    p.add_argument("--duration", type=int, default=10, help="seconds of load per measurement")
    p.add_argument("--warmup", type=int, default=3, help="seconds of load before measuring")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--connections", type=int, default=8, help="wrk connections")
    p.add_argument("--ceiling-seconds", type=float, default=2.0,
                   help="seconds per batch size for the ONNX Runtime ceiling")
    p.add_argument("--report", default=str(ROOT / "reports/bench.json"))
    return p


def windows(cli: str, a, scratch: Path) -> Path:
    """The simulator's windows as Stream Analytics would write them, ground truth removed."""
    samples, out = scratch / "samples.jsonl", scratch / "windows.jsonl"
    subprocess.run([cli, "simulate", "--devices", str(a.devices), "--hours", str(a.hours),
                    "--seed", str(a.seed), "--out", str(samples)], check=True)
    subprocess.run([cli, "window", "--input", str(samples), "--out", str(out),
                    "--size-secs", "60"], check=True)
    samples.unlink()
    return out


def strip(line: str) -> str:
    w = json.loads(line)
    for k in ("label", "fault_channel", "fault_kind", "faulty_samples"):
        w.pop(k, None)
    return json.dumps(w, separators=(",", ":"))


def workload(windows_file: Path, a, folder: Path) -> tuple:
    """Writes the invocation bodies; returns (count, a one-window /api/score body)."""
    lines = [strip(l) for l in windows_file.read_text().splitlines() if l.strip()]
    per, per_event = a.windows_per_invocation, a.windows_per_event
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for start in range(0, len(lines) - per + 1, per):
        chunk = lines[start:start + per]
        bodies = ["\n".join(chunk[i:i + per_event]) for i in range(0, per, per_event)]
        if a.data_type == "binary":
            bodies = [base64.b64encode(b.encode()).decode() for b in bodies]
        (folder / f"{count:05d}.json").write_text(invocation(bodies, start // per_event))
        count += 1
    return count, lines[len(lines) // 2]


def wrk(port: int, path: str, script: Path, args: list, a, seconds: float) -> dict:
    cmd = ["wrk", "-t", str(a.threads), "-c", str(a.connections), "-d", f"{max(1, round(seconds))}s",
           "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}{path}", "--", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    out = proc.stdout
    result = json.loads(out.strip().splitlines()[-1])
    failed = result["non_2xx"] + result["connect_errors"] + result["read_errors"] \
        + result["write_errors"] + result["timeouts"]
    if failed:
        sys.exit(f"{path}: {failed} requests failed or answered non-2xx: {result}")
    result["per_second"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def rss_mib(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return {"rss_mib": out.get("VmRSS"), "peak_rss_mib": out.get("VmHWM")}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(name: str, binary: str, a, scratch: Path, bodies: tuple) -> dict:
    folder, count, one = bodies
    db = scratch / f"{name}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = dict(os.environ, ANOMALY_MODEL_PATH=a.model, ANOMALY_SQLITE_PATH=str(db),
               ORT_DYLIB_PATH=os.environ.get("ORT_DYLIB_PATH", str(ROOT / ".ort/lib")),
               **a.extra_env.get(name, {}))
    started = time.perf_counter()
    proc, port = start_handler([binary], env, cwd=scratch)
    ready_s = time.perf_counter() - started
    try:
        return measured(name, a, proc, port, ready_s, bodies, scratch)
    except SystemExit as failure:
        # A failed request: say what the handler logged about it.
        logged = [l.rstrip() for l in getattr(proc, "stderr_lines", []) if " ERROR " in l or " WARN " in l]
        raise SystemExit(f"{failure}\n{name}'s last warnings and errors:\n" + "\n".join(logged[-10:])) from None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def measured(name: str, a, proc, port: int, ready_s: float, bodies: tuple, scratch: Path) -> dict:
    folder, count, one = bodies
    many = scratch / "many.lua"
    single_dir = scratch / "one"
    args = [str(folder), str(count)]
    if a.warmup > 0:
        wrk(port, "/ScoreWindows", many, args, a, a.warmup)
    cpu_before = cpu_seconds(proc.pid)
    invocations = wrk(port, "/ScoreWindows", many, args, a, a.duration)
    cpu = cpu_seconds(proc.pid) - cpu_before
    cpu_before = cpu_seconds(proc.pid)
    score = wrk(port, "/api/score", many, [str(single_dir), "1"], a, a.duration)
    score_cpu = cpu_seconds(proc.pid) - cpu_before
    memory = rss_mib(proc.pid)
    floor = wrk(port, "/api/health", scratch / "get.lua", [], a, a.duration)
    return {
        "handler": name,
        "ready_s": ready_s,
        "windows_per_s": invocations["per_second"] * a.windows_per_invocation,
        # The handler's own CPU, whatever the load generator took: windows per core-second.
        "windows_per_cpu_s": invocations["requests"] * a.windows_per_invocation / max(cpu, 1e-9),
        "invocation_p50_ms": invocations["p50_us"] / 1e3,
        "invocation_p99_ms": invocations["p99_us"] / 1e3,
        "score_requests_per_s": score["per_second"],
        "score_requests_per_cpu_s": score["requests"] / max(score_cpu, 1e-9),
        "score_p50_ms": score["p50_us"] / 1e3,
        "score_p99_ms": score["p99_us"] / 1e3,
        "health_requests_per_s": floor["per_second"],
        **memory,
    }


def ceiling(a, windows_file: Path) -> dict:
    out = subprocess.run([a.cli, "bench-model", "--model", a.model, "--windows", str(windows_file),
                          "--batch", str(a.windows_per_invocation), "--batch", "10000",
                          "--seconds", str(a.ceiling_seconds)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


MEASURES = [
    ("windows_per_s", "ScoreWindows windows/s", "{:,.0f}"),
    ("windows_per_cpu_s", "ScoreWindows windows per handler CPU-second", "{:,.0f}"),
    ("invocation_p50_ms", "ScoreWindows p50 ms", "{:.2f}"),
    ("invocation_p99_ms", "ScoreWindows p99 ms", "{:.2f}"),
    ("score_requests_per_s", "/api/score req/s", "{:,.0f}"),
    ("score_requests_per_cpu_s", "/api/score requests per handler CPU-second", "{:,.0f}"),
    ("score_p99_ms", "/api/score p99 ms", "{:.2f}"),
    ("health_requests_per_s", "GET /api/health req/s (the HTTP floor)", "{:,.0f}"),
    ("rss_mib", "RSS after load MiB", "{:.1f}"),
    ("peak_rss_mib", "peak RSS MiB", "{:.1f}"),
    ("ready_s", "start to ready s", "{:.3f}"),
]


def main(argv=None) -> int:
    a = args_parser().parse_args(argv)
    handlers = []
    for spec in a.handler or [f"current={ROOT / 'target/release/sensor-anomaly-handler'}"]:
        name, sep, path = spec.partition("=")
        if not sep or not name:
            sys.exit(f"--handler {spec!r}: expected NAME=PATH")
        if not Path(path).is_file():
            sys.exit(f"--handler {name}: {path} is missing (cargo build --release)")
        handlers.append((name, str(Path(path).absolute())))
    a.extra_env = {}
    for spec in a.handler_env:
        name, sep, setting = spec.partition(":")
        key, eq, value = setting.partition("=")
        if not sep or not eq or not key or name not in {n for n, _ in handlers}:
            sys.exit(f"--handler-env {spec!r}: expected NAME:KEY=VALUE for a --handler NAME")
        a.extra_env.setdefault(name, {})[key] = value
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing (Debian/Ubuntu: apt-get install wrk)")
    a.cli, a.model = str(Path(a.cli).absolute()), str(Path(a.model).absolute())
    if not Path(a.cli).is_file():
        sys.exit(f"{a.cli} is missing: cargo build --release")
    if a.windows_per_invocation % a.windows_per_event:
        sys.exit("--windows-per-invocation must be a multiple of --windows-per-event")
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        windows_file = windows(a.cli, a, scratch)
        count, one = workload(windows_file, a, scratch / "many")
        (scratch / "one").mkdir()
        (scratch / "one" / "00000.json").write_text(one)
        (scratch / "many.lua").write_text(WRK_SCRIPT)
        (scratch / "get.lua").write_text(WRK_GET)
        print(f"workload: {count} invocations of {a.windows_per_invocation} windows "
              f"({a.windows_per_event} per event, dataType {a.data_type}), {sum(f.stat().st_size for f in (scratch / 'many').iterdir()) / count / 1024:.0f} KiB each",
              flush=True)
        model = ceiling(a, windows_file)
        runs = []
        for r in range(a.rounds):
            for name, path in handlers:
                result = measure(name, path, a, scratch, (scratch / "many", count, one))
                result["round"] = r
                runs.append(result)
                print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    medians = {}
    for name, _ in handlers:
        mine = [r for r in runs if r["handler"] == name]
        medians[name] = {k: statistics.median(r[k] for r in mine) for k, _, _ in MEASURES}
    at_batch = next(t for t in model["run"] if t["batch"] == a.windows_per_invocation)
    big = max(model["run"], key=lambda t: t["batch"])
    for m in medians.values():
        m["share_of_ceiling"] = m["windows_per_s"] / at_batch["windows_per_second"]
    report = {"workload": {k: getattr(a, k) for k in ("devices", "hours", "seed",
                                                     "windows_per_invocation", "windows_per_event",
                                                     "data_type",
                                                     "duration", "rounds", "threads",
                                                     "connections")},
              "invocations": count, "ceiling": model, "runs": runs, "medians": medians}
    Path(a.report).parent.mkdir(parents=True, exist_ok=True)
    Path(a.report).write_text(json.dumps(report, indent=1) + "\n")

    names = [n for n, _ in handlers]
    header = "| measure (median of {} rounds) | {} |".format(a.rounds, " | ".join(names))
    if len(names) > 1:
        header += f" {names[-1]} / {names[0]} |"
    print("\n" + header)
    print("|---" * (len(names) + 1 + (len(names) > 1)) + "|")
    for key, label, fmt in MEASURES:
        cells = [fmt.format(medians[n][key]) for n in names]
        row = f"| {label} | " + " | ".join(cells) + " |"
        if len(names) > 1:
            row += f" {medians[names[-1]][key] / medians[names[0]][key]:.2f}x |"
        print(row)
    cells = [f"{medians[n]['share_of_ceiling']:.1%}" for n in names]
    print("| share of ONNX Runtime's ceiling at batch {} | ".format(a.windows_per_invocation)
          + " | ".join(cells) + " |" + (" |" if len(names) > 1 else ""))
    print(f"\nONNX Runtime alone (Model::run, one thread, model {model['model_version']}): "
          f"{at_batch['windows_per_second']:,.0f} windows/s at batch {at_batch['batch']}, "
          f"{big['windows_per_second']:,.0f} at batch {big['batch']}; with explanations "
          f"(Model::score) {next(t for t in model['score'] if t['batch'] == a.windows_per_invocation)['windows_per_second']:,.0f} at batch {a.windows_per_invocation}")
    print(f"report: {a.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
