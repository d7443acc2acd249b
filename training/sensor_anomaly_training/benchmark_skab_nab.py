#!/usr/bin/env python3
"""SKAB's changepoint problem, scored with the NAB metric by SKAB's own scorer, on the incidents
the handler's own incident rules make.

For each labelled file: window, fit on the windows ending within the first 400 rows (labels never
used) and score every later row with the Rust scorer, exactly as the outlier benchmark does
(`benchmark_skab.py`, settings from scripts/skab-settings.json). The scored rows then go through
`sensor-anomaly incidents`: the same `Tracker` the service runs, not a re-implementation. A row
is predicted anomalous from the window at which an incident *opened* (the `opened` message: when
the service would have told anyone) to the window at which it *resolved*; the predicted
changepoints are where that 0/1 series changes, as SKAB's notebooks derive them from a detector's
output (`abs(prediction.diff())`, first row = first prediction).

The score is `tsad`'s NAB evaluation (the package SKAB's README names; SKAB's `core/metrics.py`
is a copy of it) with SKAB's arguments: 60 s windows to the right of each true changepoint,
profiles Standard, LowFP and LowFN. It runs in its own virtual environment with the versions tsad
pins (scripts/benchmark-skab-nab.sh makes it), because they conflict with the training stack.

The incident rules are measured three ways:
- the handler's defaults (chosen on the demo's simulated fleet, never on SKAB);
- cross-validated across folders, in both directions: rules chosen by NAB standard on one folder,
  reported on the other (the worse direction is the expected figure);
- beside them, the per-window alarms themselves turned into changepoints (what SKAB's notebooks
  score), to show what the incident layer changes.

Usage:
    scripts/benchmark-skab-nab.sh [--json] [--data DIR] [--files valve1/0,valve2/1]
                                  [--detectors autoencoder,pca]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import benchmark_skab as bs
from . import train

WINDOW_WIDTH = "60s"  # SKAB's leaderboard: 60 s to the right of each true changepoint
LEADERBOARD = [  # SKAB README, changepoint detection (NAB standard, LowFP, LowFN)
    ("MSCRED", 32.42, 16.53, 40.28),
    ("Isolation forest", 26.16, 19.5, 30.82),
    ("T-squared+Q (PCA)", 25.35, 14.51, 31.33),
    ("Conv-AE", 23.61, 21.54, 27.55),
    ("LSTM-AE", 23.51, 20.11, 25.91),
    ("T-squared", 19.54, 10.2, 24.31),
    ("MSET", 13.84, 10.22, 17.37),
]
SCORER = train.REPO_ROOT / "scripts" / "nab_score.py"
PROFILES = ("Standard", "LowFP", "LowFN")


@dataclass(frozen=True)
class Rules:
    """The incident settings (ANOMALY_INCIDENT_*)."""
    open_after: int = 2
    open_of: int = 3
    open_severity: str = "high"
    resolve_after: int = 5

    def env(self) -> dict:
        return {"ANOMALY_INCIDENT_OPEN_AFTER": str(self.open_after),
                "ANOMALY_INCIDENT_OPEN_OF": str(self.open_of),
                "ANOMALY_INCIDENT_OPEN_SEVERITY": self.open_severity,
                "ANOMALY_INCIDENT_RESOLVE_AFTER": str(self.resolve_after),
                # Rows are 1 s apart; a gap rule of the demo's 30 minutes never fires here.
                "ANOMALY_INCIDENT_GAP_SECS": "1800"}

    def label(self) -> str:
        return (f"open {self.open_after} of {self.open_of} or one {self.open_severity}, "
                f"resolve after {self.resolve_after}")


DEFAULT_RULES = Rules()
# The grid the cross-validation chooses from (the defaults are in it).
GRID = [Rules(a, n, sev, m)
        for (a, n), sev, m in itertools.product([(1, 1), (2, 3), (3, 5), (5, 10), (10, 20)],
                                                ["high", "critical"], [5, 15, 30, 60, 120])
        if not ((a, n) == (1, 1) and sev == "critical")]


@dataclass
class Scored:
    """One file's scored rows: timestamps, true changepoints, the scored window of each row."""
    name: str
    folder: str
    index: list  # row timestamps (ISO, no zone), rows after the first 400
    true_cp: list  # 0/1 per row
    records: Path  # scored windows (JSON lines), one per row that has one
    alarms: list  # per-window is_anomaly per row


def score_file(bin_path: Path, f: bs.SkabFile, det: str, setting: bs.Setting, tmp: Path) -> Scored:
    """Fits and scores one file as the outlier benchmark does, keeping the whole scored records."""
    P = bs.prepare(bin_path, f, setting.window_secs, tmp)
    opts = bs.train_options(det, setting)
    data, info = train.fit(P.W.subset(P.train_idx), opts, source="skab")
    unique = np.unique(P.row_windows)
    Wu = P.W.subset(unique).select_channels(info["windows"].channels)
    model = tmp / "model.onnx"
    model.write_bytes(data)
    results = train.rust_score(bin_path, model, Wu, tmp)
    by_window = dict(zip(unique.tolist(), results))
    rows = [by_window[w] for w in P.row_windows.tolist()]
    records = tmp / f"{det}-scored.jsonl"
    with open(records, "w", encoding="utf-8") as fh:
        for r in rows:
            if r is not None:
                fh.write(json.dumps(r) + "\n")
    index, true_cp = scored_rows(f.path)
    return Scored(f.name, f.folder, index, true_cp, records,
                  [int(bool(r and r["is_anomaly"])) for r in rows])


def scored_rows(path: Path) -> tuple[list, list]:
    """The scored rows' times (the scorer's index) and true changepoints: rows after the first
    400."""
    ends, _, _ = bs.read_rows(path)
    return ([e.removesuffix("Z") for e in ends[bs.TRAIN_ROWS:]],
            read_changepoints(path)[bs.TRAIN_ROWS:])


def read_changepoints(path: Path) -> list:
    """The `changepoint` column, 0/1 per row; a file without it, or with a value that is not a
    number, is refused with its line."""
    import csv
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=";")
        if bs.CHANGEPOINT not in (reader.fieldnames or []):
            raise train.InputError(f"no `{bs.CHANGEPOINT}` column: the changepoint benchmark needs it")
        out = []
        for n, r in enumerate(reader, start=2):
            try:
                out.append(int(float(r[bs.CHANGEPOINT] or 0)))
            except (TypeError, ValueError):
                raise train.InputError(f"line {n}: bad `{bs.CHANGEPOINT}` value") from None
        return out


def incident_prediction(bin_path: Path, s: Scored, rules: Rules, tmp: Path) -> tuple[list, dict]:
    """0/1 per row: 1 from the window an incident opened at up to (not including) the window it
    resolved at; and the counts of the run."""
    out = tmp / "incidents.jsonl"
    env = {**os.environ, **rules.env()}
    p = subprocess.run([str(bin_path), "incidents", "--input", str(s.records), "--out", str(out)],
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise train.PipelineError(f"incidents failed: {p.stderr.strip()}")
    position = {t: i for i, t in enumerate(s.index)}
    pred = np.zeros(len(s.index), np.int64)
    opened = {}
    counts = {"opened": 0, "resolved": 0}
    for line in out.read_text().splitlines():
        m = json.loads(line)
        at = position[m["at"].removesuffix("Z")]
        iid = m["incident"]["incident_id"]
        if m["transition"] == "opened":
            opened[iid] = at
            counts["opened"] += 1
        elif m["transition"] == "resolved":
            pred[opened.pop(iid):at] = 1
            counts["resolved"] += 1
    for start in opened.values():  # still open at the end of the file
        pred[start:] = 1
    return pred.tolist(), counts


def run_scorer(python: str, series: dict, jobs: list) -> dict:
    """NAB (and missed/false changepoints) per job, by tsad in its own environment."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"window_width": WINDOW_WIDTH, "series": series, "jobs": jobs}, fh)
        path = fh.name
    try:
        p = subprocess.run([python, str(SCORER), path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if p.returncode != 0:
        raise train.PipelineError(f"the NAB scorer failed: {p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout)


def evaluate(bin_path, python, scored: list[Scored], tmp: Path) -> dict:
    """Every rule set of the grid on every file, scored per folder and on all files."""
    series = {s.name: {"index": s.index, "true": s.true_cp} for s in scored}
    folders = sorted({s.folder for s in scored})
    subsets = {"all": [s.name for s in scored],
               **{d: [s.name for s in scored if s.folder == d] for d in folders}}
    jobs, meta = [], {}
    preds = {}
    for rules in GRID:
        per = {}
        opened = 0
        for s in scored:
            per[s.name], c = incident_prediction(bin_path, s, rules, tmp)
            opened += c["opened"]
        preds[rules] = per
        meta[rules] = {"incidents": opened}
    preds["per-window alarms"] = {s.name: s.alarms for s in scored}
    keys = list(preds)
    for k, key in enumerate(keys):
        for subset, files in subsets.items():
            jobs.append({"id": f"{k}|{subset}", "files": files,
                         "predictions": {f: preds[key][f] for f in files}})
    results = run_scorer(python, series, jobs)
    table = {}
    for k, key in enumerate(keys):
        table[key] = {subset: results[f"{k}|{subset}"] for subset in subsets}
        if key in meta:
            table[key]["incidents"] = meta[key]["incidents"]
    return {"table": table, "folders": folders, "subsets": subsets}


def summarize(det, setting, ev) -> dict:
    table, folders = ev["table"], ev["folders"]
    rule_keys = [k for k in table if isinstance(k, Rules)]
    out = {"detector": det, "setting": asdict(setting), "window_width": WINDOW_WIDTH,
           "default_rules": {"rules": asdict(DEFAULT_RULES), **table[DEFAULT_RULES]},
           "per_window_alarms": table["per-window alarms"], "cross_validation": []}
    for chosen_on in folders:
        others = [d for d in folders if d != chosen_on]
        if not others:
            continue
        best = max(rule_keys, key=lambda r: (table[r][chosen_on]["Standard"], -GRID.index(r)))
        for held in others:
            out["cross_validation"].append({
                "chosen_on": chosen_on, "reported_on": held, "rules": asdict(best),
                "label": best.label(), "chosen": table[best][chosen_on], "held_out": table[best][held]})
    if out["cross_validation"]:
        worst = min(out["cross_validation"], key=lambda c: c["held_out"]["Standard"])
        out["expected"] = worst
    out["grid"] = [{"rules": asdict(r), **table[r]} for r in rule_keys]
    return out


def print_report(reports, n_files, secs):
    print(f"SKAB changepoint problem (NAB, tsad, {WINDOW_WIDTH} to the right of each changepoint): "
          f"{n_files} files, fit on each file's first {bs.TRAIN_ROWS} rows, incidents by "
          f"`sensor-anomaly incidents` ({secs:.0f} s)\n")
    head = f"{'detector':<12} {'predictions':<58} {'subset':<8} {'Standard':>8} {'LowFP':>7} {'LowFN':>7} {'missed':>6} {'FP':>5}"
    print(head)
    for r in reports:
        rows = [(f"incidents, defaults ({DEFAULT_RULES.label()})", r["default_rules"]),
                ("per-window alarms (SKAB notebooks' derivation)", r["per_window_alarms"])]
        for label, res in rows:
            for subset in ["all"] + sorted(k for k in res if k not in ("all", "incidents", "rules")):
                q = res[subset]
                print(f"{r['detector']:<12} {label:<58} {subset:<8} {q['Standard']:8.2f} {q['LowFP']:7.2f} "
                      f"{q['LowFN']:7.2f} {q['missed']:6d} {q['fp']:5d}")
        for c in r["cross_validation"]:
            q = c["held_out"]
            print(f"{r['detector']:<12} {'incidents, chosen on ' + c['chosen_on'] + ': ' + c['label']:<58} "
                  f"{c['reported_on']:<8} {q['Standard']:8.2f} {q['LowFP']:7.2f} {q['LowFN']:7.2f} "
                  f"{q['missed']:6d} {q['fp']:5d}")
    print("\nSKAB leaderboard (its full corpus, 34 files): " +
          "; ".join(f"{n} {s}/{fp}/{fn}" for n, s, fp, fn in LEADERBOARD))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benchmark-skab-nab.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--data", default=str(bs.DEFAULT_DATA))
    p.add_argument("--files", type=train._list_arg, help="only these, e.g. valve1/0,valve2/1")
    p.add_argument("--detectors", type=train._list_arg, default=["autoencoder"],
                   help="comma-separated (default: autoencoder, the shipped kind)")
    p.add_argument("--settings", default=str(bs.SETTINGS_FILE))
    p.add_argument("--scorer-python", default=str(train.REPO_ROOT / ".venv-nab" / "bin" / "python"),
                   help="a Python with tsad (scripts/benchmark-skab-nab.sh makes .venv-nab)")
    p.add_argument("--bin", default=train.DEFAULT_BIN)
    args = p.parse_args(argv)
    started = time.monotonic()
    try:
        settings = bs.load_settings(Path(args.settings))
        bad = [d for d in args.detectors if d not in settings]
        if bad:
            raise train.InputError(f"no settings for detector(s) {', '.join(bad)} in {args.settings}")
        files, notes = bs.discover(Path(args.data), args.files)
        for n in notes:
            print(f"[nab] skipped {n}", file=sys.stderr)
        bin_path = train.resolve_bin(args.bin)
        if not bin_path.is_file():
            raise train.InputError(f"binary not found: {bin_path} (cargo build --release, or --bin)")
        if not Path(args.scorer_python).is_file():
            raise train.InputError(f"no scorer Python at {args.scorer_python} "
                                   "(scripts/benchmark-skab-nab.sh installs tsad there)")
    except train.InputError as e:
        print(f"benchmark-skab-nab: error: {e}", file=sys.stderr)
        return 2
    reports = []
    with tempfile.TemporaryDirectory(prefix="skab-nab-") as td:
        tmp = Path(td)
        for det in args.detectors:
            setting = settings[det][0]
            scored = []
            for n, f in enumerate(files, 1):
                print(f"[nab] {det} {n}/{len(files)} {f.name}", file=sys.stderr, flush=True)
                ftmp = tmp / det / f.name.replace("/", "_")
                ftmp.mkdir(parents=True)
                try:
                    scored.append(score_file(bin_path, f, det, setting, ftmp))
                except (train.InputError, train.PipelineError) as e:
                    # As in the outlier benchmark: reported, and counted as raising nothing.
                    print(f"[nab] {f.name}: {det}: not fitted: {str(e).splitlines()[0]} "
                          "(counted as no alarms)", file=sys.stderr, flush=True)
                    rest = unfitted(f, ftmp)
                    if rest is not None:
                        scored.append(rest)
            print(f"[nab] {det}: {len(GRID)} rule sets through `incidents`, then the scorer",
                  file=sys.stderr, flush=True)
            reports.append(summarize(det, setting, evaluate(bin_path, args.scorer_python, scored, tmp)))
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print_report(reports, len(files), time.monotonic() - started)
    return 0


def unfitted(f: bs.SkabFile, tmp: Path) -> Scored | None:
    """A file that could not be fitted, as raising nothing; None when it has no row to score
    (no more than the first 400) or cannot even be read."""
    try:
        index, true_cp = scored_rows(f.path)
    except (train.InputError, OSError):
        return None
    if not index:
        return None
    records = tmp / "none.jsonl"
    records.write_text("")
    return Scored(f.name, f.folder, index, true_cp, records, [0] * len(index))


if __name__ == "__main__":
    sys.exit(main())
