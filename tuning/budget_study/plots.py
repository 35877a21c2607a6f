"""PNG plots of a budget study (matplotlib's Agg backend). make_plots draws them all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tuning.analysis.figures import plt, save
from tuning.budget_study.report import BUDGET, GOLD_LABELS, VALIDATION_CURVE, parse_curve
from tuning.budget_study.stats import class_shares


def _curves(summary: dict) -> dict:
    return {arm: entry for arm, entry in summary["arms"].items() if "aulc" in entry}


def _references(axis, summary: dict) -> None:
    for arm, entry in summary["arms"].items():
        if "aulc" not in entry:
            axis.axhline(entry["test_accuracy"]["mean"], linestyle="--", linewidth=1, color="black",
                         alpha=0.6 if arm == "full:supervised" else 0.35)
            axis.annotate(f"{arm} ({entry['budget']} gold)", (0.01, entry["test_accuracy"]["mean"]),
                          xycoords=("axes fraction", "data"), fontsize="x-small", va="bottom")
    ensemble = summary.get("teacher_accuracy", {}).get("ensemble/test")
    if ensemble is not None:
        axis.axhline(ensemble, linestyle=":", color="grey")
        axis.annotate("teacher ensemble", (0.01, ensemble), xycoords=("axes fraction", "data"),
                      fontsize="x-small", va="bottom", color="grey")


def plot_curves(summary: dict, path: Path, x: str) -> Path:
    """Test accuracy against gold labels (x = "gold") or gold + expert labels (x = "all"), log x, with
    the 95% bootstrap band of every arm and the reference lines."""
    figure, axis = plt.subplots(figsize=(8, 5))
    for arm, entry in _curves(summary).items():
        points = [entry["per_budget"][str(b)] for b in summary["budgets"]]
        xs = [p[GOLD_LABELS] + (p["expert_queries"] if x == "all" else 0) for p in points]
        if x == "gold" and len(set(xs)) == 1:  # the Expert-Loop's gold labels stay at the initial pool
            xs = [xs[0] * (1 + 0.02 * i) for i in range(len(xs))]
        mean = [p["test_accuracy"]["mean"] for p in points]
        axis.plot(xs, mean, marker="o", label=arm)
        axis.fill_between(xs, [p["test_accuracy"]["ci"][0] for p in points],
                          [p["test_accuracy"]["ci"][1] for p in points], alpha=0.15)
    _references(axis, summary)
    axis.set_xscale("log")
    axis.set_xlabel("gold labels the student trained on" if x == "gold" else "gold + expert labels")
    axis.set_ylabel("test accuracy")
    axis.legend(fontsize="x-small", ncol=2)
    axis.set_title("Budget study: test accuracy (95% bootstrap over seeds and test examples)")
    return save(figure, path)


def plot_aulc(summary: dict, path: Path) -> Path:
    """Each arm's AULC with its 95% bootstrap interval, on the linear and on the log budget axis."""
    curves = sorted(_curves(summary).items(), key=lambda item: item[1]["aulc"])
    figure, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(curves) + 1.5), sharey=True)
    for axis, key, name in zip(axes, ("aulc", "aulc_log"), ("linear", "log"), strict=True):
        values = np.array([entry[key] for _, entry in curves])
        low = values - np.array([entry[f"{key}_ci"][0] for _, entry in curves])
        high = np.array([entry[f"{key}_ci"][1] for _, entry in curves]) - values
        axis.barh(range(len(curves)), values, xerr=[low, high], capsize=3)
        axis.set_xlim(max(0.0, values.min() - 0.15), min(1.0, values.max() + 0.05))
        axis.set_xlabel(f"AULC on a {name} budget axis (95% bootstrap CI: seeds, test examples)")
    axes[0].set_yticks(range(len(curves)), [arm for arm, _ in curves])
    return save(figure, path)


def plot_class_recall(summary: dict, path: Path) -> Path:
    """Per-class test recall of every arm at its largest budget (a class nobody predicts sits at 0)."""
    arms = summary["arms"]
    names = list(next(iter(arms.values()))["class_recall"])
    figure, axis = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(arms), 1)
    for i, (arm, entry) in enumerate(arms.items()):
        axis.bar(np.arange(len(names)) + i * width, [entry["class_recall"][n] for n in names], width, label=arm)
    axis.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    axis.set_ylabel(f"test recall at budget {summary['budgets'][-1]} (mean over seeds)")
    axis.legend(fontsize="x-small", ncol=2)
    return save(figure, path)


def plot_cost_frontier(summary: dict, path: Path) -> Path:
    """Mean test accuracy against mean priced cost of every (arm, budget), an arm's budgets joined, and
    the Pareto frontier as a step line: kd_all is points on it, not a flat line."""
    priced = summary["costs"]
    figure, axis = plt.subplots(figsize=(8, 5))
    for arm in dict.fromkeys(p["arm"] for p in priced["points"]):
        mine = sorted((p for p in priced["points"] if p["arm"] == arm), key=lambda p: p["budget"])
        axis.plot([p["cost"] for p in mine], [p["test_accuracy"] for p in mine], marker="o", label=arm)
    front = priced["frontier"]
    axis.step([p["cost"] for p in front], [p["test_accuracy"] for p in front], where="post", color="black",
              linewidth=1, label="Pareto frontier")
    axis.set_xscale("log")
    axis.set_xlabel(f"priced cost in gold labels ({', '.join(f'{k}={v:g}' for k, v in summary['prices'].items())}; "
                    f"sunk teacher labels {'charged' if summary.get('charge_sunk') else 'not charged'})")
    axis.set_ylabel("test accuracy (mean over seeds)")
    axis.legend(fontsize="x-small", ncol=2)
    return save(figure, path)


def plot_validation_curves(frame: pd.DataFrame, path: Path) -> Path | None:
    """Fixed-validation accuracy against optimiser steps, supervised at every budget (mean over the seeds
    still training at that step; thin lines: each seed) and full:supervised: do the curves flatten before
    early stopping, and does supervised rise with the budget to meet full-data supervised?"""
    rows = frame[frame["arm"].isin(["supervised", "full:supervised"])] if VALIDATION_CURVE in frame else frame[:0]
    if not any(parse_curve(c) for c in rows.get(VALIDATION_CURVE, [])):
        return None
    figure, axis = plt.subplots(figsize=(8, 5))
    groups = sorted(rows.groupby(["arm", BUDGET]), key=lambda item: (item[0][0] == "full:supervised", item[0][1]))
    for (arm, budget), at in groups:
        curves = [pd.Series(dict(c)) for c in map(parse_curve, at[VALIDATION_CURVE]) if c]
        color = "black" if arm == "full:supervised" else None
        mean = pd.concat(curves, axis=1).mean(axis=1).sort_index()
        line, = axis.plot(mean.index, mean.values, color=color, label=f"{arm} {budget}")
        for curve in curves:
            axis.plot(curve.index, curve.values, color=line.get_color(), alpha=0.2, linewidth=0.7)
    axis.set_xscale("log")
    axis.set_xlabel("optimiser steps")
    axis.set_ylabel("accuracy on the fixed validation split")
    axis.legend(fontsize="x-small", ncol=2)
    return save(figure, path)


def plot_class_balance(queries_csv: Path, pool_class_counts: list[int], label_names: list[str],
                       path: Path) -> Path | None:
    """The class shares of the rows each arm queried (summed over rounds, budgets and seeds): by their
    gold labels (what was picked) and by the expert's labels (what the student was told), against the
    pool's shares (black ticks). None when queries.csv is absent or empty."""
    if not Path(queries_csv).is_file():
        return None
    queries = pd.read_csv(queries_csv)
    if queries.empty:
        return None
    k = len(label_names)
    pool = np.asarray(pool_class_counts, dtype=float) / max(np.sum(pool_class_counts), 1)
    arms = sorted(queries["arm"].unique())
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    width = 0.8 / len(arms)
    for axis, column, title in zip(axes, ("gold_label", "expert_label"),
                                   ("gold labels of the queried rows", "expert labels of the queried rows"),
                                   strict=True):
        for i, arm in enumerate(arms):
            shares = class_shares(queries.loc[queries["arm"] == arm, column], k)
            axis.bar(np.arange(k) + i * width, shares, width, label=arm)
        if len(pool) == k:
            axis.hlines(pool, np.arange(k) - width / 2, np.arange(k) + 0.8 - width / 2, color="black", label="pool")
        axis.set_xticks(np.arange(k) + 0.4 - width / 2, label_names)
        axis.set_title(title, fontsize="small")
    axes[0].set_ylabel("share of the queried rows")
    axes[0].legend(fontsize="x-small", ncol=2)
    return save(figure, path)


def make_plots(folder: Path, summary: dict, frame: pd.DataFrame, queries_csv: Path) -> list[str]:
    """Every figure of the study into folder; the names of those drawn (a figure without data is left out)."""
    drawn = [plot_curves(summary, folder / "accuracy_vs_gold.png", "gold"),
             plot_curves(summary, folder / "accuracy_vs_all_labels.png", "all"),
             plot_aulc(summary, folder / "aulc.png"),
             plot_cost_frontier(summary, folder / "cost_frontier.png"),
             plot_class_recall(summary, folder / "class_recall.png"),
             plot_validation_curves(frame, folder / "validation_curves.png"),
             plot_class_balance(queries_csv, summary.get("pool_class_counts") or [],
                                list(next(iter(summary["arms"].values()))["class_recall"]),
                                folder / "query_class_balance.png")]
    return [path.name for path in drawn if path is not None]
