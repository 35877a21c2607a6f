"""PNG plots of a budget study (matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuning.analysis.figures import plt, save
from tuning.budget_study.report import GOLD_LABELS


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
    curves = sorted(_curves(summary).items(), key=lambda item: item[1]["aulc"])
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(curves) + 1.5))
    values = np.array([entry["aulc"] for _, entry in curves])
    low = values - np.array([entry["aulc_ci"][0] for _, entry in curves])
    high = np.array([entry["aulc_ci"][1] for _, entry in curves]) - values
    axis.barh(range(len(curves)), values, xerr=[low, high], capsize=3)
    axis.set_yticks(range(len(curves)), [arm for arm, _ in curves])
    axis.set_xlim(max(0.0, values.min() - 0.15), min(1.0, values.max() + 0.05))
    axis.set_xlabel("area under the learning curve (mean test accuracy over the budgets), 95% CI")
    return save(figure, path)


def plot_class_f1(scores: dict[str, np.ndarray], label_names: list[str], budget: int, path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(scores), 1)
    for i, (arm, values) in enumerate(scores.items()):
        axis.bar(np.arange(len(label_names)) + i * width, values, width, label=arm)
    axis.set_xticks(np.arange(len(label_names)) + 0.4 - width / 2, label_names)
    axis.set_ylabel(f"test F1 at budget {budget} (mean over seeds)")
    axis.legend(fontsize="x-small", ncol=2)
    return save(figure, path)
