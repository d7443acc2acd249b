#!/usr/bin/env python3
"""The NAB score of changepoint predictions, by SKAB's scorer (tsad's `evaluating`, called with
the arguments of SKAB's notebooks). Runs in the environment scripts/benchmark-skab-nab.sh makes
(tsad with the pandas and numpy it pins); the benchmark
(training/sensor_anomaly_training/benchmark_skab_nab.py) calls it.

Input (a JSON file): {"window_width": "60s", "series": {name: {"index": [ISO times],
"true": [0/1 changepoints]}}, "jobs": [{"id", "files": [names], "predictions": {name: [0/1
per row: anomalous or not]}}]}. Output (stdout, JSON): {id: {"Standard", "LowFP", "LowFN",
"missed", "fp", "changepoints", "predicted_changepoints"}}.
"""
import json
import sys

import pandas as pd
from tsad.utils.evaluating.evaluating import evaluating


def changepoints(prediction: pd.Series) -> pd.Series:
    """As SKAB's notebooks: where the 0/1 prediction changes, the first row counting as itself."""
    cp = prediction.diff().abs()
    cp.iloc[0] = prediction.iloc[0]
    return cp


def main(path: str) -> int:
    spec = json.load(open(path, encoding="utf-8"))
    width = spec["window_width"]
    series = {name: (pd.to_datetime(s["index"]), s["true"]) for name, s in spec["series"].items()}
    out = {}
    for job in spec["jobs"]:
        true, predicted = [], []
        for name in job["files"]:
            index, labels = series[name]
            true.append(pd.Series(labels, index=index, dtype="int64"))
            predicted.append(changepoints(pd.Series(job["predictions"][name], index=index, dtype="int64")))
        args = dict(window_width=width, anomaly_window_destination="righter", verbose=False)
        nab = evaluating(true, predicted, metric="nab", **args)
        _, missing, fp, all_true = evaluating(true, predicted, metric="average_time", **args)
        out[job["id"]] = {**{k: float(v) for k, v in nab.items()}, "missed": int(missing),
                          "fp": int(fp), "changepoints": int(all_true),
                          "predicted_changepoints": int(sum(int(p.sum()) for p in predicted))}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
