"""The evaluation report `train.py` writes next to a model: Markdown plus PNG plots.

Every score in it comes from the Rust scorer (`sensor-anomaly score`, ONNX Runtime), the path
production uses; this module only counts and draws.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def quality(labels: np.ndarray, flagged: np.ndarray, scores: np.ndarray) -> dict:
    """Binary detection quality; alarm = flagged.  FAR = FP / healthy, MAR = FN / anomalous."""
    labels = np.asarray(labels).astype(bool)
    flagged = np.asarray(flagged).astype(bool)
    tp = int(np.sum(labels & flagged))
    fp = int(np.sum(~labels & flagged))
    fn = int(np.sum(labels & ~flagged))
    tn = int(np.sum(~labels & ~flagged))
    div = lambda a, b: a / b if b else 0.0  # noqa: E731
    precision, recall = div(tp, tp + fp), div(tp, tp + fn)
    out = {"windows": int(len(labels)), "anomalous": tp + fn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
           "precision": precision, "recall": recall,
           "f1": div(2 * precision * recall, precision + recall),
           "far": div(fp, fp + tn), "mar": div(fn, fn + tp), "pr_auc": None}
    if 0 < tp + fn < len(labels):
        from sklearn.metrics import average_precision_score

        out["pr_auc"] = float(average_precision_score(labels, np.asarray(scores, np.float64)))
    return out


def attribution(labels, flagged, fault_channels, top_channels) -> dict:
    """Among detected anomalies whose label names a channel: how often the top channel is it."""
    hits = total = 0
    for y, f, truth, top in zip(labels, flagged, fault_channels, top_channels):
        if y and f and truth:
            total += 1
            hits += truth == top
    return {"windows": total, "accuracy": hits / total if total else None}


def _segments(mask: np.ndarray):
    """(start, end) index pairs of runs of True."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[0::2], edges[1::2]))


def _plots(out: Path, threshold, devices, series, val_scores, pr, channel_share):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    shown = devices[:6]
    if shown:
        fig, axes = plt.subplots(len(shown), 1, figsize=(11, 2.2 * len(shown)), squeeze=False)
        for ax, device in zip(axes[:, 0], shown):
            t, s, y = series[device]
            x = np.arange(len(s))
            ax.plot(x, np.maximum(s, 1e-12), lw=0.8, color="tab:blue", label="score")
            ax.axhline(threshold, color="tab:red", lw=1, ls="--", label="threshold")
            if y is not None:
                for a, b in _segments(y == 1):
                    ax.axvspan(a - 0.5, b - 0.5, color="tab:orange", alpha=0.25, lw=0)
            ax.set_yscale("log")
            ax.set_ylabel(device, fontsize=8)
            ticks = np.linspace(0, len(t) - 1, num=min(5, len(t))).astype(int)
            ax.set_xticks(ticks, [t[i][:19].replace("T", " ") for i in ticks], fontsize=7)
        axes[0, 0].legend(loc="upper left", fontsize=7)
        axes[0, 0].set_title("Anomaly score over time (log scale); shaded: labelled anomalous", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "scores.png", dpi=110)
        plt.close(fig)
        files.append(("Score over time", "scores.png"))

    fig, ax = plt.subplots(figsize=(6, 3.2))
    v = np.maximum(np.asarray(val_scores, np.float64), 1e-12)
    ax.hist(np.log10(v), bins=60, color="tab:blue", alpha=0.8)
    ax.axvline(np.log10(threshold), color="tab:red", ls="--", label="threshold")
    ax.set_xlabel("log10 score (validation windows)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "validation-scores.png", dpi=110)
    plt.close(fig)
    files.append(("Validation score distribution", "validation-scores.png"))

    if pr is not None:
        precision, recall = pr
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(recall, precision, color="tab:blue")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_title("Precision-recall", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "precision-recall.png", dpi=110)
        plt.close(fig)
        files.append(("Precision-recall curve", "precision-recall.png"))

    if channel_share:
        names = list(channel_share)
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1))
        ax.barh(names, [channel_share[n] for n in names], color="tab:purple")
        ax.set_xlabel("share of the score in flagged windows")
        fig.tight_layout()
        fig.savefig(out / "channels.png", dpi=110)
        plt.close(fig)
        files.append(("Which channels the alarms blame", "channels.png"))
    return files


def _fmt(v):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def expected_far_lines(e) -> list[str]:
    """The report's section on how often the model will alarm on normal operation it has not
    seen (train.expected_false_alarms), or nothing when it was not estimated."""
    if not e:
        return []
    lines = ["## Expected false-alarm rate on normal operation it has not seen", ""]
    if e["far"] is None:
        return lines + ["Not estimated: no refit had enough windows "
                        f"({'; '.join(f.get('error', '') for f in e['folds'])}).", ""]
    how = ("each device's windows in time order, cut into blocks; refitted on the blocks before each "
           "block and counted on it (forward chaining: later operation, drift included)"
           if e["method"] == "forward chaining" else "refitted without each fold and counted on it (k-fold)")
    lines += [f"**{e['far']:.4f}** ({e['alarms']} alarms on {e['windows']} windows taken as normal): "
              f"{1000 * e['far']:.1f} alarms per 1,000 windows. Same options and threshold rule, {how}. "
              "Expect about this rate of alarms on healthy operation like the training period's; "
              "the threshold's own calibration cannot show it.", "",
              "| fold | fitted on | counted on | alarms | rate |", "|---|---|---|---|---|"]
    for f in e["folds"]:
        if "error" in f:
            lines.append(f"| {f['fold']} | {f['fit_windows']} | {f['windows']} | not fitted: {f['error']} | |")
        else:
            lines.append(f"| {f['fold']} | {f['fit_windows']} | {f['windows']} | {f['alarms']} | {f['far']:.4f} |")
    return lines + [""]


def write(out_dir, *, model_path, info, windows, results, evaluated_name: str) -> dict:
    """Writes report.md, report.json and the plots; returns the metrics."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threshold = float(info["threshold"])
    summary = info["summary"]
    scored = [i for i, r in enumerate(results) if r is not None]
    scores = np.array([results[i]["score"] for i in scored], np.float64)
    flagged = np.array([results[i]["is_anomaly"] for i in scored], bool)
    top = [results[i]["top_channel"] for i in scored]
    labels = None if windows.label is None else windows.label[scored]
    metrics = {"evaluated": evaluated_name, "windows": len(windows), "scored": len(scored),
               "unscorable": len(windows) - len(scored), "flagged": int(flagged.sum())}
    pr = None
    if labels is not None:
        metrics.update(quality(labels, flagged, scores))
        metrics["attribution"] = attribution(labels, flagged, [windows.fault_channel[i] for i in scored], top)
        if metrics["pr_auc"] is not None:
            from sklearn.metrics import precision_recall_curve

            p, r, _ = precision_recall_curve(labels, scores)
            pr = (p, r)
    else:
        metrics["far"] = float(flagged.mean()) if len(flagged) else 0.0
    share = {}
    if flagged.any():
        totals = {}
        for i, f in zip(scored, flagged):
            if f:
                for ch, v in results[i]["contributions"].items():
                    totals[ch] = totals.get(ch, 0.0) + v
        grand = sum(totals.values()) or 1.0
        share = {ch: totals[ch] / grand for ch in sorted(totals, key=totals.get, reverse=True)}
    metrics["channel_share_flagged"] = share

    series, order = {}, []
    for idx, i in enumerate(scored):
        d = windows.device[i]
        if d not in series:
            series[d] = ([], [], [])
            order.append(d)
        series[d][0].append(windows.window_end[i])
        series[d][1].append(scores[idx])
        series[d][2].append(labels[idx] if labels is not None else 0)
    for d in order:
        t, s, y = series[d]
        sort = np.argsort(t, kind="stable")
        series[d] = ([t[k] for k in sort], np.asarray(s)[sort],
                     np.asarray(y)[sort] if labels is not None else None)
    if labels is not None:  # show devices with labelled anomalies first
        order.sort(key=lambda d: -int(np.sum(series[d][2])))
    plots = _plots(out, threshold, order, series, info["validation_scores"], pr, share)

    lines = [f"# Model report: `{Path(model_path).name}`", "",
             f"- model_version: `{info['model_version']}`, detector: **{summary['detector']}**",
             f"- threshold: {threshold:.6g} (alarm when score >= threshold), chosen by "
             f"`{json.dumps(summary['threshold_calibration'], sort_keys=True)}`",
             f"- scores below come from the Rust scorer through ONNX Runtime (`sensor-anomaly score`), "
             f"on the {evaluated_name}", ""]
    lines += ["## Detection quality", "", "| metric | value |", "|---|---|"]
    if labels is not None:
        att = metrics["attribution"]
        for k in ("windows", "anomalous", "precision", "recall", "f1", "pr_auc", "far", "mar"):
            lines.append(f"| {k.replace('_', '-').upper() if k in ('far', 'mar', 'pr_auc') else k} | {_fmt(metrics[k])} |")
        lines.append(f"| top-channel accuracy | {_fmt(att['accuracy'])} "
                     f"({att['windows']} detected windows whose label names a channel) |")
    else:
        lines.append(f"| windows | {metrics['scored']} |")
        lines.append(f"| flagged (all healthy: false-alarm rate) | {metrics['flagged']} ({metrics['far']:.4f}) |")
        lines += ["", "No labels in the evaluated data: only the false-alarm rate can be measured. "
                  "Pass `--test FILE` with a label column for precision, recall and F1."]
        if evaluated_name != "test data":
            lines += ["", "The threshold was calibrated on these very windows, so this false-alarm "
                      "rate is in-sample: it shows the calibration, not how the model will do."]
    if metrics["unscorable"]:
        lines += ["", f"{metrics['unscorable']} window(s) had a null feature (e.g. a one-sample window "
                  "has no std) and were not scored, as the function dead-letters them."]
    lines += ["", "FAR = false alarms / healthy windows; MAR = missed / anomalous windows.", ""]
    lines += expected_far_lines(summary.get("expected_false_alarms"))
    if share:
        lines += ["## Which channels the alarms blame", "", "| channel | share of flagged score |", "|---|---|"]
        lines += [f"| {ch} | {v:.3f} |" for ch, v in share.items()]
        lines.append("")
    lines += ["## Plots", ""] + [f"### {title}\n\n![{title}]({name})\n" for title, name in plots]
    lines += ["## Training summary", "", "```json", json.dumps(summary, indent=2, sort_keys=True), "```", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "report.json").write_text(json.dumps({"model_version": info["model_version"], "threshold": threshold,
                                                 "metrics": metrics, "training_summary": summary},
                                                indent=2, sort_keys=True), encoding="utf-8")
    return metrics
