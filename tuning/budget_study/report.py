"""The budget study's numbers: study.csv in, summary.json, report.md and plots out (no Ray, no torch).

Every interval here is a 95% paired bootstrap over seeds AND test examples (tuning/analysis/bootstrap.py), so it
covers both the seed-to-seed variation and the sampling of the test set. Choices look at validation
only; test accuracy is what is reported."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from trainables import metrics as m
from trainables.atomic import write_text
from trainables.study_settings import BUDGET, GOLD_LABELS, TEST_PREDICTIONS, VALIDATION_LABELS, decode_predictions
from tuning.analysis.bootstrap import REPLICATES, estimate, interval, replicate_accuracies

STUDY_CSV = "study.csv"
SUMMARY_JSON = "summary.json"
REPORT_MD = "report.md"
CSV_COLUMNS = ["arm", BUDGET, "seed", GOLD_LABELS, m.EXPERT_QUERIES, m.VAL_ACCURACY, m.TEST_ACCURACY,
               m.TEST_MACRO_F1, m.VAL_MACRO_F1, m.EXPERT_LABEL_ACCURACY, "expert_label_accuracy_new",
               m.TEACHER_LABELS, VALIDATION_LABELS, m.TRAIN_SECONDS, m.EPOCH, "steps", TEST_PREDICTIONS]
TARGETS = (0.90, 0.95)  # shares of full-data supervised test accuracy
GOAL_SHARE, GOAL_GOLD = 0.95, 0.20  # the goal the report is read against


def write_study_csv(rows: list[dict], path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame = frame[[c for c in CSV_COLUMNS if c in frame] + [c for c in frame if c not in CSV_COLUMNS]]
    frame = frame.sort_values(["arm", BUDGET, "seed"], kind="stable").reset_index(drop=True)
    write_text(path, frame.to_csv(index=False))
    return frame


# ---------------------------------------------------------------- the statistics

def common_seeds(frame: pd.DataFrame, budgets: list[int]) -> list[int]:
    """Seeds for which every arm has every one of its points (each budget; a full:* reference its one
    point): only those are compared, so that every comparison stays paired by seed."""
    seeds = None
    for arm, rows in frame.groupby("arm"):
        wanted = 1 if str(arm).startswith("full:") else len(budgets)
        counts = rows[rows[BUDGET].isin(budgets) | str(arm).startswith("full:")].groupby("seed")[BUDGET].nunique()
        have = set(counts[counts == wanted].index)
        seeds = have if seeds is None else seeds & have
    return sorted(int(seed) for seed in seeds or [])


def correctness(frame: pd.DataFrame, arm: str, budgets: list[int], seeds: list[int],
                test_labels: np.ndarray) -> np.ndarray:
    """bool (budgets, seeds, test examples): did arm's student at that budget and seed get it right."""
    rows = frame[frame["arm"] == arm].set_index([BUDGET, "seed"])
    return np.stack([np.stack([decode_predictions(rows.loc[(b, s), TEST_PREDICTIONS]) == test_labels
                               for s in seeds]) for b in budgets])


def aulc(accuracy: np.ndarray, budgets: list[int]) -> np.ndarray:
    """Area under the learning curve: trapezoid of accuracy over the budgets (increasing), divided by
    (largest - smallest budget), so it reads as an average accuracy. accuracy: (..., budgets)."""
    budgets = np.asarray(budgets, dtype=float)
    if len(budgets) == 1:
        return accuracy[..., 0]
    widths = np.diff(budgets)
    return ((accuracy[..., 1:] + accuracy[..., :-1]) / 2 * widths).sum(axis=-1) / (budgets[-1] - budgets[0])


def baseline_of(arm: str, arms: list[str]) -> str | None:
    """The random-query arm of the same expert. Gold-answered random queries with a fresh student per
    budget are uniform gold draws, which is what `supervised` is: it stands in when oracle:random is absent."""
    kind, _, strategy = arm.partition(":")
    if kind not in ("oracle", "expert") or strategy == "random":
        return None
    random_arm = f"{kind}:random"
    return "supervised" if kind == "oracle" and random_arm not in arms and "supervised" in arms else random_arm


def summarise(frame: pd.DataFrame, test_labels: np.ndarray, budgets: list[int], meta: dict,
              replicates: int = REPLICATES) -> dict:
    seeds = common_seeds(frame, budgets)
    if not seeds:
        raise ValueError("no seed has every arm's points: nothing can be compared")
    frame = frame[frame["seed"].isin(seeds)]  # means, seconds and label counts over the compared seeds only
    curve_arms = [a for a in sorted(frame["arm"].unique()) if not a.startswith("full:")]
    full_arms = [a for a in sorted(frame["arm"].unique()) if a.startswith("full:")]
    stack = np.stack([correctness(frame, a, budgets, seeds, test_labels) for a in curve_arms])
    acc = replicate_accuracies(stack, replicates)  # (R, arms, budgets)
    full = {}
    for arm in full_arms:
        pool = int(frame.loc[frame["arm"] == arm, BUDGET].iloc[0])
        full[arm] = replicate_accuracies(correctness(frame, arm, [pool], seeds, test_labels), replicates)[:, 0]
    arms = {}
    areas = aulc(acc, budgets)  # (R, arms)
    for i, arm in enumerate(curve_arms):
        arms[arm] = _arm_summary(frame[frame["arm"] == arm], acc[:, i], areas[:, i], budgets, full)
        base = baseline_of(arm, curve_arms)
        if base in curve_arms:
            diff = areas[:, i] - areas[:, curve_arms.index(base)]
            arms[arm]["aulc_diff_vs_random"] = {**estimate(diff), "baseline": base}
    for arm, values in full.items():
        arms[arm] = {"test_accuracy": estimate(values), "budget": int(frame.loc[frame["arm"] == arm, BUDGET].iloc[0])}
    return {**meta, "seeds": seeds, "budgets": budgets, "test_examples": int(len(test_labels)),
            "interval": f"95% percentile bootstrap over seeds and test examples (paired), {replicates} replicates",
            "arms": arms}


def _arm_summary(rows: pd.DataFrame, acc: np.ndarray, area: np.ndarray, budgets: list[int], full: dict) -> dict:
    per_budget = {}
    for j, budget in enumerate(budgets):
        at = rows[rows[BUDGET] == budget]
        per_budget[str(budget)] = {
            "test_accuracy": estimate(acc[:, j]),
            "val_accuracy": float(at[m.VAL_ACCURACY].mean()),
            "test_macro_f1": float(at[m.TEST_MACRO_F1].mean()),
            GOLD_LABELS: int(at[GOLD_LABELS].max()),
            m.EXPERT_QUERIES: int(at[m.EXPERT_QUERIES].max()),
            m.EXPERT_LABEL_ACCURACY: _nanmean(at[m.EXPERT_LABEL_ACCURACY]),
        }
    summary = {"aulc": float(area[0]), "aulc_ci": list(interval(area[1:])), "per_budget": per_budget,
               "cpu_seconds": float(rows[m.TRAIN_SECONDS].sum())}
    reference = full.get("full:supervised")
    if reference is not None:
        for share in TARGETS:
            summary[f"gold_labels_to_{round(share * 100)}pct"] = _labels_to_reach(rows, acc[0], budgets,
                                                                                   share * reference[0])
    return summary


def _labels_to_reach(rows: pd.DataFrame, mean_acc: np.ndarray, budgets: list[int], target: float) -> dict | None:
    """The smallest measured budget whose mean test accuracy reaches target: its gold labels and its
    expert labels (None when no budget of the study reaches it; no interpolation between budgets)."""
    for j, budget in enumerate(budgets):
        if mean_acc[j] >= target:
            at = rows[rows[BUDGET] == budget]
            return {"budget": budget, GOLD_LABELS: int(at[GOLD_LABELS].max()),
                    m.EXPERT_QUERIES: int(at[m.EXPERT_QUERIES].max())}
    return None


def _nanmean(values) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def per_class_f1(frame: pd.DataFrame, arm: str, budget: int, seeds: list[int], test_labels: np.ndarray,
                 num_labels: int) -> np.ndarray:
    """Mean over seeds of each class's F1 on test (sklearn's f1_score, average=None)."""
    from sklearn.metrics import f1_score  # noqa: PLC0415 (scikit-learn: only for the per-class table)

    rows = frame[(frame["arm"] == arm) & (frame[BUDGET] == budget)].set_index("seed")
    scores = [f1_score(test_labels, decode_predictions(rows.loc[s, TEST_PREDICTIONS]),
                       labels=list(range(num_labels)), average=None, zero_division=0) for s in seeds]
    return np.mean(scores, axis=0)


# ---------------------------------------------------------------- the report

def leakage_warnings(summary: dict) -> list[str]:
    """Experts whose accuracy on the rows they labelled beats their test accuracy beyond noise (two
    standard errors of the difference of two proportions) have probably seen those rows."""
    test = summary.get("teacher_accuracy", {}).get("ensemble/test")
    if test is None:
        return []
    warnings = []
    n_test = summary["test_examples"]
    for arm, entry in summary["arms"].items():
        for budget, point in entry.get("per_budget", {}).items():
            queried, n = point.get(m.EXPERT_LABEL_ACCURACY), point.get(m.EXPERT_QUERIES, 0)
            if queried is None or not n or math.isnan(queried):
                continue
            # By hand, not scipy.stats: a screening rule (two standard errors, floored for queries the experts
            # all got right), not a test with a p-value; scipy.stats has no two-proportion z-test.
            noise = 2 * math.sqrt(test * (1 - test) / n_test + max(queried * (1 - queried), 1e-4) / n)
            if queried - test > noise:
                warnings.append(f"{arm} at budget {budget}: the experts were right on {queried:.3f} of the rows "
                                f"they labelled but {test:.3f} on test (more than {noise:.3f} apart): they have "
                                "probably seen those rows (an oracle in disguise)")
    return warnings


def _draw(summary: dict) -> str:
    return "stratified: label-informed" if summary.get("stratified_initial") else "uniform"


def _fmt(point: dict) -> str:
    return f"{point['mean']:.3f} [{point['ci'][0]:.3f}, {point['ci'][1]:.3f}]"


def answer(summary: dict) -> list[str]:
    """The result in plain words, worked out from the numbers (whatever they say)."""
    arms = summary["arms"]
    curves = {a: e for a, e in arms.items() if "aulc" in e}
    lines = []
    best = max(curves, key=lambda a: curves[a]["aulc"])
    lines.append(f"Over budgets {summary['budgets'][0]}..{summary['budgets'][-1]}, the highest area under the "
                 f"learning curve is {best}'s ({curves[best]['aulc']:.3f}, 95% CI "
                 f"[{curves[best]['aulc_ci'][0]:.3f}, {curves[best]['aulc_ci'][1]:.3f}]).")
    for arm, entry in curves.items():
        diff = entry.get("aulc_diff_vs_random")
        if diff is None:
            continue
        low, high = diff["ci"]
        verdict = "beats" if low > 0 else ("loses to" if high < 0 else "cannot be told apart from")
        lines.append(f"{arm} {verdict} {diff['baseline']} (AULC difference {diff['mean']:+.3f}, "
                     f"95% CI [{low:+.3f}, {high:+.3f}]).")
    lines.extend(goal_lines(summary))
    return lines


def goal_lines(summary: dict) -> list[str]:
    arms, full = summary["arms"], summary["arms"].get("full:supervised")
    if full is None:
        return ["No full-data supervised reference was run, so the goal cannot be checked."]
    pool = full["budget"]
    target = GOAL_SHARE * full["test_accuracy"]["mean"]
    lines = [f"Goal: an Expert-Loop arm at >= {GOAL_SHARE:.0%} of full-data supervised test accuracy "
             f"({full['test_accuracy']['mean']:.3f} on all {pool} pool labels, so >= {target:.3f}) with <= "
             f"{GOAL_GOLD:.0%} of the gold labels (<= {GOAL_GOLD * pool:.0f}), and an AULC above random queries "
             "with an interval above 0."]
    met = []
    for arm, entry in arms.items():
        if not arm.startswith("expert:"):
            continue
        reach = entry.get(f"gold_labels_to_{round(GOAL_SHARE * 100)}pct")
        diff = entry.get("aulc_diff_vs_random")
        cheap = reach is not None and reach[GOLD_LABELS] <= GOAL_GOLD * pool
        beats = diff is not None and diff["ci"][0] > 0
        if cheap and beats:
            met.append(arm)
    lines.append(f"It holds for {', '.join(met)}." if met else
                 "It does not hold for any Expert-Loop arm (see the tables: which part failed, the accuracy "
                 "or the margin over random queries).")
    return lines


def write_report(summary: dict, folder: Path, plots: list[str]) -> None:
    arms, budgets = summary["arms"], summary["budgets"]
    curves = {a: e for a, e in arms.items() if "aulc" in e}
    out = ["# Budget study", "", "## Answer", "", *[f"- {line}" for line in answer(summary)], ""]
    warnings = leakage_warnings(summary)
    if warnings:
        out += ["## Leakage warning", "", *[f"- {w}" for w in warnings], ""]
    out += ["## Set-up", "", f"- data: {summary.get('data')}", f"- teacher_split: {summary['teacher_split']} "
            f"(teachers fine-tuned on {summary.get('teacher_gold_labels')} gold labels the student never sees; "
            f"student pool {summary.get('pool_size')})",
            f"- seeds: {summary['seeds']}; budgets: {budgets}; initial gold pool of the query arms: "
            f"{summary.get('initial')} ({_draw(summary)})",
            f"- recipe: {summary.get('recipe')}", f"- min_steps: {summary.get('min_steps')} "
            f"(epochs per point = max(recipe epochs, ceil(min_steps x batch / n))); "
            f"{'warm starts' if summary.get('warm_start') else 'every point a fresh student (retraining)'}",
            f"- intervals: {summary['interval']}", f"- validation gold labels: {summary.get('validation_labels')} "
            "(they chose the recipe, and are counted here for every arm)",
            f"- teachers: {json.dumps(summary.get('teacher_accuracy', {}))}",
            f"- the ensemble on the student's pool (hidden labels, for the record): "
            f"{summary.get('ensemble_pool_accuracy')}", ""]
    out += ["## Test accuracy per budget (mean over seeds, 95% CI)", "",
            "| arm | " + " | ".join(str(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for arm, entry in curves.items():
        out.append(f"| {arm} | " + " | ".join(_fmt(entry["per_budget"][str(b)]["test_accuracy"]) for b in budgets)
                   + " |")
    for arm, entry in arms.items():
        if "aulc" not in entry:
            out.append(f"\nReference {arm} (all {entry['budget']} pool labels): {_fmt(entry['test_accuracy'])}")
    out += ["", "## Test macro-F1 per budget (mean over seeds)", "",
            "| arm | " + " | ".join(str(b) for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for arm, entry in curves.items():
        out.append(f"| {arm} | " + " | ".join(f"{entry['per_budget'][str(b)]['test_macro_f1']:.3f}"
                                             for b in budgets) + " |")
    out += ["", "## Area under the learning curve", "", "| arm | AULC (95% CI) | vs random queries (95% CI) | "
            "gold labels to 90% / 95% of full supervised |", "|---|---|---|---|"]
    for arm, entry in sorted(curves.items(), key=lambda item: -item[1]["aulc"]):
        diff = entry.get("aulc_diff_vs_random")
        shown = f"{diff['mean']:+.3f} [{diff['ci'][0]:+.3f}, {diff['ci'][1]:+.3f}]" if diff else "-"
        reach = [entry.get(f"gold_labels_to_{p}pct") for p in (90, 95)]
        reach_text = " / ".join("not reached" if r is None else f"{r[GOLD_LABELS]} (+{r[m.EXPERT_QUERIES]} expert)"
                                for r in reach)
        out.append(f"| {arm} | {entry['aulc']:.3f} [{entry['aulc_ci'][0]:.3f}, {entry['aulc_ci'][1]:.3f}] | "
                   f"{shown} | {reach_text} |")
    out += ["", f"## Cost of each arm at the largest budget ({budgets[-1]})", "",
            "| arm | student gold | validation gold | teacher gold | expert calls | expert label accuracy | "
            "CPU seconds (all points, all seeds) |", "|---|---|---|---|---|---|---|"]
    for arm, entry in curves.items():
        point = entry["per_budget"][str(budgets[-1])]
        accuracy = point[m.EXPERT_LABEL_ACCURACY]
        teacher_gold = summary.get("teacher_gold_labels") if point[m.EXPERT_QUERIES] else 0
        out.append(f"| {arm} | {point[GOLD_LABELS]} | {summary.get('validation_labels')} | {teacher_gold} | "
                   f"{point[m.EXPERT_QUERIES]} | {'-' if accuracy is None else f'{accuracy:.3f}'} | "
                   f"{entry['cpu_seconds']:.0f} |")
    out += ["", "## Plots", "", *[f"![{name}]({name})" for name in plots], ""]
    write_text(folder / REPORT_MD, "\n".join(out))
