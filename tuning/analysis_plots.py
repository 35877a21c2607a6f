"""PNG plots of an analysis (matplotlib's Agg backend: no display needed, safe on a cluster head)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a window

import matplotlib.pyplot as plt  # noqa: E402

from trainables import metrics as m  # noqa: E402
from tuning.analysis import COMPLETED, ERRORED, Experiment, TrialRecord, searched, write_atomic  # noqa: E402

BASELINE_STRATEGY = "random"  # active learning must beat random queries to be worth its cost


def save(figure, path: Path) -> Path:
    figure.tight_layout()
    write_atomic(path, lambda temporary: figure.savefig(temporary, format="png", dpi=110))
    plt.close(figure)
    return path


def scored(trials: list[TrialRecord]) -> list[TrialRecord]:
    return [t for t in trials if t.status != ERRORED and not math.isnan(t.val_accuracy)]


def plot_hyperparameters(experiment: Experiment, path: Path) -> Path | None:
    """Last val_accuracy against each searched setting; hollow markers for trials ASHA stopped
    (their score comes from a shorter run)."""
    params = list(searched(experiment.space))
    trials = scored(experiment.trials)
    if not params or not trials:
        return None
    columns = min(3, len(params))
    rows = math.ceil(len(params) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for axis, name in zip(axes.flat, params, strict=False):
        _scatter_param(axis, experiment.space[name], name, trials)
    axes.flat[0].legend(fontsize="small")
    for axis in list(axes.flat)[len(params):]:
        axis.set_visible(False)
    figure.suptitle(f"{experiment.label} ({experiment.method}): val_accuracy (last report) per setting")
    return save(figure, path)


def _scatter_param(axis, entry: dict, name: str, trials: list[TrialRecord]) -> None:
    values = [t.config.get(name) for t in trials]
    if entry["type"] == "choice":
        labels = [str(v) for v in entry["values"]]
        positions = [labels.index(str(v)) if str(v) in labels else math.nan for v in values]
        axis.set_xticks(range(len(labels)), labels, rotation=30 if max(map(len, labels)) > 6 else 0)
    else:
        positions = values
        if entry["type"] == "loguniform":
            axis.set_xscale("log")
    for status, marker in ((COMPLETED, "o"), (None, "x")):
        chosen = [(x, t.val_accuracy) for x, t in zip(positions, trials, strict=True)
                  if (t.status == COMPLETED) == (status == COMPLETED)]
        if chosen:
            axis.scatter(*zip(*chosen, strict=True), marker=marker, label=status or "stopped/unfinished")
    axis.set_xlabel(name)
    axis.set_ylabel(m.VAL_ACCURACY)


def plot_learning_curves(trials: list[TrialRecord], path: Path) -> Path | None:
    """Expert-Loop trials, one line each, coloured by query strategy (random dashed: the baseline).
    Left: test accuracy against examples labelled, gold (labels_used) plus expert (expert_queries);
    with teacher experts the gold count stays at the initial pool. Right: how often the experts'
    labels of each round's queries were right."""
    trials = [t for t in scored(trials) if not t.history.empty and m.ROUND in t.history]
    if not trials:
        return None
    strategies = sorted({t.config.get("strategy", "?") for t in trials})
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(strategies)}
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    shown: set[str] = set()
    for trial in trials:
        strategy = trial.config.get("strategy", "?")
        style = {"color": colours[strategy], "linestyle": "--" if strategy == BASELINE_STRATEGY else "-",
                 "marker": "o", "label": None if strategy in shown else strategy}
        shown.add(strategy)
        h = trial.history
        left.plot(h[m.LABELS_USED] + h[m.EXPERT_QUERIES], h[m.TEST_ACCURACY], **style)
        if "expert_label_accuracy_round" in h:
            right.plot(h[m.ROUND], h["expert_label_accuracy_round"], **style)
    left.set_xlabel("examples labelled (gold labels_used + expert_queries)")
    left.set_ylabel(m.TEST_ACCURACY)
    left.set_title("Expert-Loop learning curves")
    right.set_xlabel("round")
    right.set_ylabel("expert label accuracy of the round's queries")
    right.set_title("expert labels per round")
    for axis in (left, right):
        axis.legend(fontsize="small")
    return save(figure, path)


def plot_comparison(bars: list[tuple[str, float, list[float] | None]], title: str, path: Path) -> Path | None:
    """(method, test accuracy, its 95% interval [low, high] or None) per bar."""
    if not bars:
        return None
    figure, axis = plt.subplots(figsize=(1.8 * len(bars) + 2, 3.8))
    names = [b[0] for b in bars]
    # error bars as distances below and above the bar (a bootstrap interval need not be symmetric, and a
    # percentile interval need not even contain the estimate on tiny data: then that side is drawn as 0)
    errors = [[max(0.0, b[1] - b[2][0]) if b[2] else 0.0 for b in bars],
              [max(0.0, b[2][1] - b[1]) if b[2] else 0.0 for b in bars]]
    axis.bar(names, [b[1] for b in bars], yerr=errors if any(map(any, errors)) else None, capsize=6,
             color=[plt.get_cmap("tab10")(i) for i in range(len(bars))])
    axis.set_ylabel(m.TEST_ACCURACY)
    axis.set_ylim(0, 1.05)
    axis.set_title(title)
    return save(figure, path)
