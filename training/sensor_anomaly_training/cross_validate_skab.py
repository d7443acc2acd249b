#!/usr/bin/env python3
"""Choose the SKAB benchmark's settings by cross-validation across folders.

Every setting that is chosen from data -- the window length, the threshold margin, the
drifting-channel rule (`--max-level-ratio`) and PCA's variance share -- is searched on a grid.
For each folder in turn, the setting with the best pooled F1 on that folder is chosen and then
reported on the other folders, which it never saw (choose on valve1, report valve2, and the
reverse).  Labels only score; fitting follows the benchmark's protocol exactly
(benchmark_skab.py).  For speed the graphs run in Python's ONNX Runtime, which the tests hold to
the Rust scorer; `scripts/benchmark-skab.sh` then re-scores the chosen settings with Rust.

    scripts/cross-validate-skab.sh                          # table, every folder in turn
    scripts/cross-validate-skab.sh --json
    scripts/cross-validate-skab.sh --write valve1           # choose on valve1, write
                                                            # scripts/skab-settings.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import benchmark_skab as bench
from . import train

GRID = {
    "window_secs": [20, 30, 45],
    "max_level_ratio": [None, 300.0, 100.0, 50.0, 30.0],
    "margin": [1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0],
    "pca_variance": [0.8, 0.9],
}


def fitted_grid(det: str):
    """The settings that need a fit of their own (the margin only moves the threshold)."""
    variances = GRID["pca_variance"] if det == "pca" else [0.9]
    for size, ratio, var in itertools.product(GRID["window_secs"], GRID["max_level_ratio"], variances):
        yield size, ratio, var


def evaluate(bin_path, files, dets, tmp: Path):
    """{det: {(size, ratio, var, margin): [per-file counts]}} over the whole grid."""
    prepared, failed = {}, {}
    for f in files:
        for size in GRID["window_secs"]:
            try:
                prepared[f.name, size] = bench.prepare(bin_path, f, size, tmp)
            except (train.InputError, train.PipelineError) as e:
                failed[f.name, size] = str(e).splitlines()[0]
    results = {}
    for det in dets:
        started = time.monotonic()
        table = {}
        for size, ratio, var in fitted_grid(det):
            per_file = []
            for f in files:
                P = prepared.get((f.name, size))
                row = {"file": f.name, "folder": f.folder}
                labels = P.labels if P is not None else bench._labels_or_empty(f)
                scores = thr = None
                if P is not None:
                    s = bench.Setting(window_secs=size, margin=1.0, max_level_ratio=ratio, pca_variance=var)
                    try:
                        scores, thr, _ = bench.fit_and_score(bin_path, P, bench.train_options(det, s),
                                                             tmp, scorer="ort")
                    except (train.InputError, train.PipelineError) as e:
                        row["error"] = str(e).splitlines()[0]
                else:
                    row["error"] = failed[f.name, size]
                per_file.append((row, labels, scores, thr))
            for margin in GRID["margin"]:
                rows = []
                for row, labels, scores, thr in per_file:
                    flags = scores >= thr * margin if scores is not None else np.zeros(len(labels), bool)
                    rows.append({**row, **bench.counts(labels, flags)})
                table[size, ratio, var, margin] = rows
        print(f"[cv] {det}: {len(table)} settings in {time.monotonic() - started:.0f} s",
              file=sys.stderr, flush=True)
        results[det] = table
    return results


def setting_of(key) -> bench.Setting:
    size, ratio, var, margin = key
    return bench.Setting(window_secs=size, margin=margin, max_level_ratio=ratio, pca_variance=var)


def choose(table: dict, folders: list[str]):
    """The grid key with the best pooled F1 on `folders` (ties: the first in grid order)."""
    best, best_f1 = None, -1.0
    for key, rows in table.items():
        f1 = bench.pool([r for r in rows if r["folder"] in folders])["f1"]
        if f1 > best_f1 + 1e-12:
            best, best_f1 = key, f1
    return best


def folds(table: dict, folders: list[str]) -> list[dict]:
    out = []
    for chosen_on in folders:
        key = choose(table, [chosen_on])
        rows = table[key]
        out.append({"chosen_on": [chosen_on], "setting": asdict(setting_of(key)),
                    "chosen": bench.pool([r for r in rows if r["folder"] == chosen_on]),
                    "held_out": {"folders": [d for d in folders if d != chosen_on],
                                 **bench.pool([r for r in rows if r["folder"] != chosen_on])},
                    "overall": bench.pool(rows)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="cross-validate-skab.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(bench.DEFAULT_DATA), help="a folder of SKAB-format CSV files")
    p.add_argument("--files", type=train._list_arg, help="only these, e.g. valve1/0,valve2/1")
    p.add_argument("--detectors", type=train._list_arg, default=list(bench.DETECTORS))
    p.add_argument("--json", action="store_true")
    p.add_argument("--write", metavar="FOLDER",
                   help=f"write the settings chosen on FOLDER to --settings ({bench.SETTINGS_FILE.name})")
    p.add_argument("--settings", default=str(bench.SETTINGS_FILE))
    p.add_argument("--bin", default=train.DEFAULT_BIN)
    args = p.parse_args(argv)
    try:
        bad = [d for d in args.detectors if d not in bench.DETECTORS]
        if bad:
            raise train.InputError(f"unknown detector(s) {', '.join(bad)} ({', '.join(bench.DETECTORS)})")
        files, _ = bench.discover(Path(args.data), args.files)
        folders = sorted({f.folder for f in files})
        if len(folders) < 2:
            raise train.InputError(f"cross-validation needs files in two or more folders, found {folders}")
        if args.write and args.write not in folders:
            raise train.InputError(f"--write {args.write}: no such folder among {', '.join(folders)}")
        bin_path = train.resolve_bin(args.bin)
    except train.InputError as e:
        print(f"cross-validate-skab: error: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="skab-cv-") as td:
        results = evaluate(bin_path, files, args.detectors, Path(td))
    report = [{"detector": d, "folds": folds(results[d], folders)} for d in args.detectors]
    if args.write:
        chosen = {}
        for r in report:
            fold = next(f for f in r["folds"] if f["chosen_on"] == [args.write])
            chosen[r["detector"]] = {"setting": fold["setting"], "chosen_on": fold["chosen_on"],
                                     "cross_validation": {k: fold[k] for k in ("chosen", "held_out", "overall")}}
        doc = {"written_by": "scripts/cross-validate-skab.sh --write " + args.write,
               "files": len(files), "grid": GRID, "detectors": chosen}
        Path(args.settings).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"[cv] wrote {args.settings}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Cross-validation across folders ({len(files)} files; F1 / FAR, all-alarm F1 in brackets)\n")
    for r in report:
        for fold in r["folds"]:
            s, c, h = fold["setting"], fold["chosen"], fold["held_out"]
            print(f"{r['detector']:<12} chosen on {fold['chosen_on'][0]:<8} {c['f1']:.3f}/{c['far']:.3f}  "
                  f"held out {','.join(h['folders'])}: {h['f1']:.3f}/{h['far']:.3f} [{h['f1_all_alarm']:.3f}]  "
                  f"all: {fold['overall']['f1']:.3f}  window {s['window_secs']} s, margin {s['margin']}, "
                  f"max level ratio {s['max_level_ratio']}" +
                  (f", variance {s['pca_variance']}" if r["detector"] == "pca" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
