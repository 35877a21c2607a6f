"""PNG plots of a budget study (matplotlib's Agg backend). make_plots draws them all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

from trainables.errors import UsageError
from trainables.study_settings import parse_arm
from tuning.analysis.figures import plt, save
from tuning.budget_study.report import BUDGET, GOLD_LABELS, VALIDATION_CURVE, parse_curve
from tuning.budget_study.stats import class_shares

# Qualitative colours that stay apart (matplotlib's tab10, then Dark2): the default colour cycle has 10, and a
# study has 12 curves or more, so two arms would share a colour and a reader could not tell them apart.
PALETTE = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Dark2").colors)
# Who labels the chosen rows -> (line style, marker): the teachers, gold labels, a named expert (llm, openai).
LABELLER_LOOK = {"teachers": ("-", "o"), "gold": ("--", "s"), "named": (":", "^")}


def arm_styles(arms) -> dict[str, dict]:
    """One look per arm, the same in every figure. The colour names how rows are chosen (the strategy;
    supervised takes random's colour, since random queries take supervised's rows); the line and marker name
    who labels them. So expert:margin and oracle:margin share a colour and differ in line, and no two arms of
    a study with up to 18 strategies look alike."""
    looks, colours = {}, {}
    for arm in arms:
        try:
            parsed = parse_arm(arm)
        except UsageError:  # an arm this version no longer knows (an old study's): a colour of its own, plain line
            looks[arm] = {"color": colours.setdefault(arm, PALETTE[len(colours) % len(PALETTE)]), "linestyle": "-",
                          "marker": "o"}
            continue
        chosen_by = {"supervised": "random", "full": "full", "kd_all": "kd_all"}.get(parsed.kind, parsed.strategy)
        colour = "black" if chosen_by == "full" else colours.setdefault(chosen_by, PALETTE[len(colours) % len(PALETTE)])
        labeller = "teachers" if parsed.expert == "teachers" else "gold" if parsed.expert in ("", "oracle") else "named"
        linestyle, marker = LABELLER_LOOK[labeller]
        if parsed.kind == "supervised":
            marker = "D"  # oracle:random (gold, random rows) is supervised itself; if asked for, it keeps squares
        looks[arm] = {"color": colour, "linestyle": linestyle, "marker": marker}
    return looks


def _curves(summary: dict) -> dict:
    return {arm: entry for arm, entry in summary["arms"].items() if "aulc" in entry}


def reference_label(arm: str, entry: dict) -> str:
    """A single-point arm's labels as they were: kd_all's student saw the initial gold labels and the teachers'
    labels for the rest of the pool, not as many gold labels as the pool holds."""
    point = entry["per_budget"][str(entry["budget"])]
    gold, expert = point[GOLD_LABELS], point["expert_queries"]
    return f"{arm} ({gold:.0f} gold + {expert:.0f} expert labels)" if expert else f"{arm} ({gold:.0f} gold labels)"


def _references(axis, summary: dict) -> None:
    """Single-point arms and the teacher ensemble as horizontal lines, labelled at the left and right edges
    (they can lie close together: kd_all sits near the ensemble whose labels it learns)."""
    for arm, entry in summary["arms"].items():
        if "aulc" not in entry:
            axis.axhline(entry["test_accuracy"]["mean"], linestyle="--", linewidth=1, color="black",
                         alpha=0.6 if arm == "full:supervised" else 0.35)
            axis.annotate(reference_label(arm, entry), (0.01, entry["test_accuracy"]["mean"]),
                          xycoords=("axes fraction", "data"), fontsize="x-small", va="bottom")
    ensemble = summary.get("teacher_accuracy", {}).get("ensemble/test")
    if ensemble is not None:
        axis.axhline(ensemble, linestyle=":", color="grey")
        axis.annotate("teacher ensemble (their test accuracy)", (0.99, ensemble), xycoords=("axes fraction", "data"),
                      fontsize="x-small", va="top", ha="right", color="grey")


def _label_ticks(axis, ticks) -> None:
    """Ticks on a log axis at these numbers (the budgets), written plainly: 50, 100, 200, not 5 x 10^1."""
    axis.set_xticks(sorted(set(ticks)), [f"{t:g}" for t in sorted(set(ticks))])
    axis.xaxis.set_minor_formatter(NullFormatter())


def _legend_outside(axis) -> None:
    axis.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def plot_curves(summary: dict, path: Path, x: str) -> Path:
    """Test accuracy against gold labels (x = "gold") or gold + expert labels (x = "all"), log x, with
    the 95% bootstrap band of every arm and the reference lines."""
    figure, axis = plt.subplots(figsize=(10, 5))
    styles = arm_styles(summary["arms"])
    for arm, entry in _curves(summary).items():
        points = [entry["per_budget"][str(b)] for b in summary["budgets"]]
        xs = [p[GOLD_LABELS] + (p["expert_queries"] if x == "all" else 0) for p in points]
        if x == "gold" and len(set(xs)) == 1:  # the Expert-Loop's gold labels stay at the initial pool
            xs = [xs[0] * (1 + 0.02 * i) for i in range(len(xs))]
        mean = [p["test_accuracy"]["mean"] for p in points]
        axis.plot(xs, mean, label=arm, **styles[arm])
        axis.fill_between(xs, [p["test_accuracy"]["ci"][0] for p in points],
                          [p["test_accuracy"]["ci"][1] for p in points], alpha=0.08, color=styles[arm]["color"])
    _references(axis, summary)
    axis.set_xscale("log")
    pool = [summary["pool_size"]] if x == "all" and "pool_size" in summary else []  # where the full-data arms stand
    _label_ticks(axis, list(summary["budgets"]) + pool)
    axis.set_xlabel("gold labels the student trained on (the Expert-Loop's stay at the initial pool: spread apart "
                    "to be seen)" if x == "gold" else "gold + expert labels the student trained on")
    axis.set_ylabel("test accuracy (mean over seeds)")
    _legend_outside(axis)
    axis.set_title("Test accuracy per budget, 95% bootstrap over seeds and test examples", fontsize="medium")
    return save(figure, path)


def plot_aulc(summary: dict, path: Path) -> Path:
    """Each arm's AULC with its 95% bootstrap interval, on the linear and on the log budget axis: points, not
    bars, since the axis does not start at 0 (bars would make small differences look large)."""
    curves = sorted(_curves(summary).items(), key=lambda item: item[1]["aulc"])
    styles = arm_styles(summary["arms"])
    figure, axes = plt.subplots(1, 2, figsize=(11, 0.4 * len(curves) + 1.8), sharey=True)
    for axis, key, name in zip(axes, ("aulc", "aulc_log"), ("linear", "log"), strict=True):
        for row, (arm, entry) in enumerate(curves):
            low, high = entry[f"{key}_ci"]
            axis.errorbar(entry[key], row, xerr=[[entry[key] - low], [high - entry[key]]], capsize=3,
                          color=styles[arm]["color"], marker=styles[arm]["marker"])
        axis.grid(axis="x", alpha=0.3)
        axis.set_xlabel(f"AULC, {name} budget axis")
    axes[0].set_yticks(range(len(curves)), [arm for arm, _ in curves])
    figure.suptitle("Area under the learning curve (mean test accuracy over the budgets), 95% bootstrap over seeds "
                    "and test examples", fontsize="medium")
    return save(figure, path)


def heatmap(axis, values: np.ndarray, rows: list[str], columns: list[str], vmax: float) -> None:
    """values (rows x columns) as coloured cells, each written in: readable with a dozen arms and classes,
    where grouped bars are not."""
    image = axis.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, aspect="auto")
    for (row, column), value in np.ndenumerate(values):
        axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=6,
                  color="white" if value > 0.6 * vmax else "black")
    axis.set_yticks(range(len(rows)), rows, fontsize="small")
    axis.set_xticks(range(len(columns)), columns, rotation=40, ha="right", fontsize="small")
    axis.figure.colorbar(image, ax=axis, fraction=0.03, pad=0.02)


def plot_class_recall(summary: dict, path: Path) -> Path:
    """Per-class test recall of every arm at its largest budget (a class nobody predicts reads 0.00)."""
    arms = summary["arms"]
    names = list(next(iter(arms.values()))["class_recall"])
    values = np.array([[entry["class_recall"][n] for n in names] for entry in arms.values()])
    figure, axis = plt.subplots(figsize=(0.6 * len(names) + 4, 0.35 * len(arms) + 2.2))
    heatmap(axis, values, list(arms), names, vmax=1.0)
    axis.set_title(f"Test recall per class at budget {summary['budgets'][-1]} (single-point arms at the pool), "
                   "mean over seeds", fontsize="medium")
    return save(figure, path)


def plot_cost_frontier(summary: dict, path: Path) -> Path:
    """Mean test accuracy against mean priced cost of every (arm, budget), an arm's budgets joined, and
    the Pareto frontier as a step line: kd_all is points on it, not a flat line."""
    priced = summary["costs"]
    arms = list(dict.fromkeys(p["arm"] for p in priced["points"]))
    styles = arm_styles(arms)
    figure, axis = plt.subplots(figsize=(10, 5))
    for arm in arms:
        mine = sorted((p for p in priced["points"] if p["arm"] == arm), key=lambda p: p["budget"])
        axis.plot([p["cost"] for p in mine], [p["test_accuracy"] for p in mine], label=arm, **styles[arm])
    front = priced["frontier"]
    axis.step([p["cost"] for p in front], [p["test_accuracy"] for p in front], where="post", color="black",
              linewidth=1.5, linestyle=(0, (1, 1)), label="Pareto frontier")
    axis.set_xscale("log")
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_xlabel(f"priced cost in gold labels ({', '.join(f'{k}={v:g}' for k, v in summary['prices'].items())}; "
                    f"sunk teacher labels {'charged' if summary.get('charge_sunk') else 'not charged'})")
    axis.set_ylabel("test accuracy (mean over seeds)")
    _legend_outside(axis)
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


def class_balance_panels(queries: pd.DataFrame, pool_class_counts: list[int], k: int) -> tuple[list[str], list]:
    """Row names ("pool" first when its counts fit k classes, then the arms sorted) and two (rows x k) arrays of
    class shares: by the queried rows' gold labels and by their expert labels."""
    arms = sorted(queries["arm"].unique())
    pool = np.asarray(pool_class_counts, dtype=float)
    pool_rows = [pool / max(pool.sum(), 1)] if len(pool) == k else []
    panels = [np.array(pool_rows + [class_shares(queries.loc[queries["arm"] == arm, column], k) for arm in arms])
              for column in ("gold_label", "expert_label")]
    return ["pool"] * len(pool_rows) + arms, panels


def plot_class_balance(queries_csv: Path, pool_class_counts: list[int], label_names: list[str],
                       path: Path) -> Path | None:
    """The class shares of the rows each arm queried (summed over rounds, budgets and seeds): by their
    gold labels (what was picked) and by the expert's labels (what the student was told), under the pool's
    shares (the first row). None when queries.csv is absent or empty."""
    if not Path(queries_csv).is_file():
        return None
    queries = pd.read_csv(queries_csv)
    if queries.empty:
        return None
    names, panels = class_balance_panels(queries, pool_class_counts, len(label_names))
    vmax = max(float(panel.max()) for panel in panels) or 1.0
    figure, axes = plt.subplots(1, 2, figsize=(1.1 * len(label_names) + 5, 0.35 * len(names) + 2.4), sharey=True)
    for axis, panel, title in zip(axes, panels, ("gold labels of the queried rows",
                                                 "expert labels of the queried rows"), strict=True):
        heatmap(axis, panel, names, label_names, vmax=vmax)
        axis.set_title(title, fontsize="small")
    figure.suptitle("Share of each class among the rows each arm queried (all rounds, budgets and seeds)",
                    fontsize="medium")
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
