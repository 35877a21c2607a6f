"""PNG plots of an analysis (matplotlib's Agg backend: no display needed, safe on a cluster head)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from trainables import metrics as m
from tuning.analysis.figures import plt, save
from tuning.analysis.results import ERRORED, TrialRecord, completed, importance_evaluator

BASELINE_STRATEGY = "random"  # active learning must beat random queries to be worth its cost


def scored(trials: list[TrialRecord]) -> list[TrialRecord]:
    return [t for t in trials if t.status != ERRORED and not math.isnan(t.val_accuracy)]


# ---------------------------------------------------------------- Optuna's plots of the stored study

@contextmanager
def optuna_figure() -> Iterator[None]:
    """Optuna's matplotlib plots switch the whole process to the ggplot style and warn that they are
    experimental: both stay inside this block."""
    from optuna.exceptions import ExperimentalWarning  # noqa: PLC0415 (optuna only where its plots are drawn)

    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        # A setting with one value among the completed trials (one trial, or a choice fixed by chance):
        # matplotlib widens that axis itself, and says so.
        warnings.filterwarnings("ignore", "Attempting to set identical low and high xlims")
        yield


def plot_slice(study, title: str, path: Path) -> Path | None:
    """Optuna's slice plot: each completed trial's val_accuracy against each searched setting, coloured by
    trial number. Trials ASHA stopped are PRUNED in the study and left out (their score is from a shorter
    run). None when no trial completed or nothing was searched."""
    if not any(trial.params for trial in completed(study)):
        return None
    with optuna_figure():
        return save(slice_figure(study, title), path, tight=False)


def slice_figure(study, title: str):
    """The figure of plot_slice, drawn inside optuna_figure()."""
    from optuna.visualization.matplotlib import plot_slice as optuna_slice  # noqa: PLC0415 (as optuna_figure's)

    axes = np.atleast_1d(optuna_slice(study, target_name=m.VAL_ACCURACY))
    for axis in axes:
        readable_log_ticks(axis)
        axis.set_title("")
    figure = axes[0].figure
    figure.suptitle(f"{title}: {m.VAL_ACCURACY} of the {len(completed(study))} completed trial(s) per setting")
    return figure


def plot_importances(study, title: str, path: Path) -> Path | None:
    """Optuna's importance plot, with the fANOVA evaluator the report's table uses. None when fANOVA
    finds no variance to split (every trial scored the same)."""
    from optuna.visualization.matplotlib import plot_param_importances  # noqa: PLC0415 (as optuna_figure's)

    with optuna_figure():
        try:
            axis = plot_param_importances(study, evaluator=importance_evaluator(), target_name=m.VAL_ACCURACY)
        except RuntimeError:  # raised while computing, before any figure is made
            return None
        axis.set_title(f"{title}: fANOVA importance for {m.VAL_ACCURACY}", loc="left")  # replaces Optuna's
        return save(axis.figure, path, tight=False)


def readable_log_ticks(axis) -> None:
    """On a log axis spanning less than a few decades, matplotlib labels the minor ticks too (2x10^-3,
    3x10^-3, ...), which run into each other on Optuna's narrow subplots: label a few chosen ticks only,
    written short and turned, so that neighbours never overlap."""
    if axis.get_xscale() != "log":
        return
    low, high = axis.get_xlim()
    decades = math.log10(high / low)
    # Enough ticks to read a value off, few enough not to touch: under a decade 1, 2, 3, 5, 7 x 10^k (matplotlib
    # falls back to evenly spaced ticks when fewer than two of them are in view); beyond three, decades.
    subs = (1.0, 2.0, 3.0, 5.0, 7.0) if decades < 1 else (1.0, 2.0, 5.0) if decades < 3 else (1.0,)
    axis.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: short_power(value)))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.tick_params(axis="x", which="major", labelrotation=45)


def short_power(value: float) -> str:
    """2e-3 rather than 2e-03 or 0.002: the narrowest label that still reads as a power of ten (2.5e-3
    where the evenly spaced fallback ticks fall between)."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


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
