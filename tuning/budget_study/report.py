"""The budget study's numbers: study.csv in, summary.json, report.md and plots out (no Ray, no torch).

Verdicts rest on paired per-seed differences of the area under the learning curve (stats.py: a
t-interval over seeds, an exact sign-flip test, Holm's correction over every comparison made). Beside
them, every figure carries a 95% paired bootstrap over seeds AND test examples
(tuning/analysis/bootstrap.py), which also covers the sampling of the test set. Choices look at
validation only; test accuracy is what is reported. Costs are priced on one axis in costs.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from trainables import metrics as m
from trainables.atomic import write_text
from trainables.study_settings import (
    BUDGET,
    GOLD_LABELS,
    STOP_PREDICTIONS,
    STOP_UNCERTAINTY,
    TEST_PREDICTIONS,
    VALIDATION_LABELS,
    decode_predictions,
    parse_arm,
)
from tuning.analysis.bootstrap import REPLICATES, estimate, interval, replicate_accuracies
from tuning.budget_study import costs
from tuning.budget_study.report_text import BOOTSTRAP, answer, document, goal_lines, leakage_warnings
from tuning.budget_study.stats import (
    SCALES,
    aulc,
    baseline_of,
    class_recall,
    comparison_pairs,
    first_staying_above,
    flag_reasons,
    holm,
    paired_t_interval,
    sign_flip_p,
    verdict,
)
from tuning.budget_study.stopping import STOPPING_SET, STUDY_CRITERIA, stopping_summary

# Re-exported: they lived here before stats.py and report_text.py.
__all__ = ["answer", "aulc", "baseline_of", "goal_lines", "leakage_warnings"]

STUDY_CSV = "study.csv"
QUERIES_CSV = "queries.csv"
SUMMARY_JSON = "summary.json"
REPORT_MD = "report.md"
EXPERT_READS, SELECTION_LABELS, EPOCHS_RUN = "expert_reads", "selection_labels", "epochs_run"
VALIDATION_CURVE = "validation_curve"  # JSON [[step, fixed-validation accuracy], ...] per epoch
CSV_COLUMNS = ["arm", BUDGET, "seed", GOLD_LABELS, m.EXPERT_QUERIES, m.VAL_ACCURACY, m.TEST_ACCURACY,
               m.TEST_MACRO_F1, m.VAL_MACRO_F1, EXPERT_READS, "selection", SELECTION_LABELS,
               m.EXPERT_LABEL_ACCURACY, "expert_label_accuracy_new", m.TEACHER_LABELS, VALIDATION_LABELS,
               m.TRAIN_SECONDS, m.EPOCH, EPOCHS_RUN, "steps", "best_step", VALIDATION_CURVE, TEST_PREDICTIONS,
               STOP_UNCERTAINTY, STOP_PREDICTIONS]
# What summarise reads of every row; the runner writes them all.
REQUIRED = ["arm", BUDGET, "seed", GOLD_LABELS, m.EXPERT_QUERIES, EXPERT_READS, SELECTION_LABELS,
            m.VAL_ACCURACY, m.TEST_ACCURACY, m.TEST_MACRO_F1, m.TRAIN_SECONDS, m.EPOCH, EPOCHS_RUN, "steps",
            TEST_PREDICTIONS]
EXPERT_COSTS = (m.EXPERT_CALLS, m.EXPERT_CACHE_HITS, m.EXPERT_SECONDS, m.EXPERT_TOKENS, m.EXPERT_PRICED_COST,
                m.EXPERT_PAID)
TARGETS = (0.90, 0.95)  # shares of full-data supervised test accuracy


def write_study_csv(rows: list[dict], path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame = frame[[c for c in CSV_COLUMNS if c in frame] + [c for c in frame if c not in CSV_COLUMNS]]
    frame = frame.sort_values(["arm", BUDGET, "seed"], kind="stable").reset_index(drop=True)
    write_text(path, frame.to_csv(index=False))
    return frame


# ---------------------------------------------------------------- reading study.csv

def single_point(arm: str) -> bool:
    """One point at the pool size (full:*, kd_all) instead of a curve over the budgets."""
    return parse_arm(str(arm)).single_point


def common_seeds(frame: pd.DataFrame, budgets: list[int]) -> list[int]:
    """Seeds for which every arm has every one of its points (each budget; a single-point arm its one
    point): only those are compared, so that every comparison stays paired by seed."""
    seeds = None
    for arm, rows in frame.groupby("arm"):
        wanted = 1 if single_point(arm) else len(budgets)
        counts = rows[rows[BUDGET].isin(budgets) | single_point(arm)].groupby("seed")[BUDGET].nunique()
        have = set(counts[counts == wanted].index)
        seeds = have if seeds is None else seeds & have
    return sorted(int(seed) for seed in seeds or [])


def predictions(frame: pd.DataFrame, arm: str, budgets: list[int], seeds: list[int]) -> np.ndarray:
    """int (budgets, seeds, test examples): the class arm's student predicted at that budget and seed."""
    rows = frame[frame["arm"] == arm].set_index([BUDGET, "seed"])
    return np.stack([np.stack([decode_predictions(rows.loc[(b, s), TEST_PREDICTIONS]) for s in seeds])
                     for b in budgets])


def parse_curve(text) -> list[tuple[int, float]]:
    """validation_curve's JSON text (or the list itself) as [(step, accuracy)]; [] when absent."""
    if isinstance(text, list):
        return [(int(s), float(a)) for s, a in text]
    if not isinstance(text, str) or not text.strip():
        return []
    return [(int(s), float(a)) for s, a in json.loads(text)]


def _replicates(predicted: dict[str, np.ndarray], test_labels: np.ndarray, replicates: int) -> dict[str, np.ndarray]:
    """arm -> (R, its budgets) bootstrap accuracies, all arms and the full-data references drawn in ONE
    call, so every replicate resamples the same seeds and test examples for all (paired by construction)."""
    blocks = [predicted[arm] == test_labels for arm in predicted]
    flat = replicate_accuracies(np.concatenate(blocks), replicates)
    return dict(zip(predicted, np.split(flat, np.cumsum([len(b) for b in blocks])[:-1], axis=1), strict=True))


def _label_names(meta: dict, test_labels: np.ndarray, predicted: dict[str, np.ndarray]) -> list[str]:
    if meta.get("label_names"):
        return [str(name) for name in meta["label_names"]]
    highest = max([int(test_labels.max())] + [int(p.max()) for p in predicted.values()])
    return [str(c) for c in range(highest + 1)]


# ---------------------------------------------------------------- the summary

def summarise(frame: pd.DataFrame, test_labels: np.ndarray, budgets: list[int], meta: dict,
              replicates: int = REPLICATES) -> dict:
    missing = [c for c in REQUIRED if c not in frame]
    if missing:
        raise ValueError(f"study.csv lacks the column(s) {', '.join(missing)}")
    seeds = common_seeds(frame, budgets)
    if not seeds:
        raise ValueError("no seed has every arm's points: nothing can be compared")
    # Means, seconds, label counts and costs over the compared seeds and budgets only.
    frame = frame[frame["seed"].isin(seeds) & (frame[BUDGET].isin(budgets) | frame["arm"].map(single_point))]
    prices = meta.get("prices") or costs.parse_prices(None)
    teacher_gold, charge = int(meta.get("teacher_gold_labels") or 0), bool(meta.get("charge_sunk", False))
    frame = frame.assign(priced_cost=costs.priced_cost(frame, prices, teacher_gold, charge))
    test_labels = np.asarray(test_labels)
    names = sorted(frame["arm"].unique())
    points = {arm: budgets if not single_point(arm) else [int(frame.loc[frame["arm"] == arm, BUDGET].iloc[0])]
              for arm in names}
    predicted = {arm: predictions(frame, arm, points[arm], seeds) for arm in names}
    accuracy = _replicates(predicted, test_labels, replicates)  # arm -> (R, budgets)
    seed_accuracy = {arm: (p == test_labels).mean(axis=-1) for arm, p in predicted.items()}  # (budgets, seeds)
    labels = _label_names(meta, test_labels, predicted)
    full_supervised = accuracy.get("full:supervised")
    arms = {}
    for arm in names:
        rows = frame[frame["arm"] == arm]
        if single_point(arm):
            arms[arm] = _reference(rows, accuracy[arm], seed_accuracy[arm], points[arm])
        else:
            arms[arm] = _curve(rows, accuracy[arm], seed_accuracy[arm], points[arm], full_supervised)
        arms[arm]["flags"] = _flags(rows, test_labels, meta.get("validation_majority_rate"), labels)
        recall = class_recall(list(predicted[arm][-1]), test_labels, len(labels))  # at its largest budget
        arms[arm]["class_recall"] = dict(zip(labels, recall.tolist(), strict=True))
    curve_arms = [a for a in names if not single_point(a)]
    for arm in curve_arms:
        base = baseline_of(arm, curve_arms)
        if base in curve_arms:  # the bootstrap view of the comparison, kept beside the verdicts
            diff = aulc(accuracy[arm], budgets) - aulc(accuracy[base], budgets)
            arms[arm]["aulc_diff_vs_random"] = {**estimate(diff), "baseline": base}
    return {**meta, "prices": prices, "charge_sunk": charge, "seeds": seeds, "budgets": budgets,
            "test_examples": int(len(test_labels)), "interval": f"{BOOTSTRAP}, {replicates} replicates",
            "arms": arms, "comparisons": _comparisons(curve_arms, seed_accuracy, accuracy, budgets),
            "validation_curves": validation_curves(frame), "precisions": precisions(frame),
            "costs": _costs(frame, prices, teacher_gold, charge, budgets),
            # Not "stopping": that key is the training rule (runner.describe_stopping), said in the set-up.
            "stopping_criteria": {"criteria": list(STUDY_CRITERIA), "stopping_set": STOPPING_SET,
                                  "arms": stopping_summary(frame, budgets, seeds, len(labels))}}


def _curve(rows: pd.DataFrame, acc: np.ndarray, seed_acc: np.ndarray, budgets: list[int],
           full_supervised: np.ndarray | None) -> dict:
    """A curve arm: each budget's figures, its AULC on both axes, and the labels it needs to reach
    90% / 95% of full-data supervised (with full_supervised's replicates, paired with acc's)."""
    summary = {"per_budget": {str(b): _point(rows[rows[BUDGET] == b], acc[:, j], seed_acc[j])
                              for j, b in enumerate(budgets)},
               "cpu_seconds": float(rows[m.TRAIN_SECONDS].sum())}
    for scale in SCALES:
        area = aulc(acc, budgets, scale)
        key = "aulc" if scale == "linear" else "aulc_log"
        summary[key], summary[f"{key}_ci"] = float(area[0]), list(interval(area[1:]))
    if full_supervised is not None:
        for share in TARGETS:
            summary[f"gold_labels_to_{round(share * 100)}pct"] = _reach(rows, acc, share * full_supervised[:, 0],
                                                                         budgets)
    return summary


def _reference(rows: pd.DataFrame, acc: np.ndarray, seed_acc: np.ndarray, budgets: list[int]) -> dict:
    """A single-point arm (full:*, kd_all): its one point, on the whole pool."""
    return {"test_accuracy": estimate(acc[:, 0]), "budget": budgets[0],
            "per_budget": {str(budgets[0]): _point(rows, acc[:, 0], seed_acc[0])},
            "cpu_seconds": float(rows[m.TRAIN_SECONDS].sum())}


def _point(at: pd.DataFrame, acc: np.ndarray, seed_acc: np.ndarray) -> dict:
    """One (arm, budget): figures as means over seeds (the median too for test accuracy)."""
    mean = {column: float(at[column].mean()) for column in
            (m.VAL_ACCURACY, m.TEST_MACRO_F1, GOLD_LABELS, SELECTION_LABELS, m.EXPERT_QUERIES, EXPERT_READS,
             "priced_cost", m.EPOCH, EPOCHS_RUN, "steps")}
    # A named expert's answers (@llm, @openai arms), summed over the trial up to this point; None elsewhere.
    answered = {column: _nanmean(at[column]) if column in at else None for column in EXPERT_COSTS}
    return {"test_accuracy": estimate(acc), "test_accuracy_median": float(np.median(seed_acc)), **mean,
            m.EXPERT_LABEL_ACCURACY: _nanmean(at[m.EXPERT_LABEL_ACCURACY]) if m.EXPERT_LABEL_ACCURACY in at else None,
            **answered}


def _reach(rows: pd.DataFrame, acc: np.ndarray, targets: np.ndarray, budgets: list[int]) -> dict:
    """The smallest budget from which the mean curve stays at or above the target at every larger budget
    (None: not reached), its gold and expert labels, and the interval of that budget over the bootstrap
    replicates (seeds and test examples, the reference's noise included); a replicate that never reaches it
    counts as beyond the largest budget, so an upper end of None reads "not reached within the study"."""
    found = [first_staying_above(acc[r], targets[r]) for r in range(len(acc))]
    reached = np.array([math.inf if j is None else budgets[j] for j in found[1:]])
    low, high = (float(np.quantile(reached, q, method=way)) for q, way in ((0.025, "lower"), (0.975, "higher")))
    budget = None if found[0] is None else budgets[found[0]]
    at = rows[rows[BUDGET] == budget]
    return {"budget": budget,
            GOLD_LABELS: float(at[GOLD_LABELS].mean()) if budget is not None else None,
            m.EXPERT_QUERIES: float(at[m.EXPERT_QUERIES].mean()) if budget is not None else None,
            "budget_ci": [None if math.isinf(v) else int(v) for v in (low, high)],
            "replicates_not_reaching": float(np.mean(np.isinf(reached)))}


def _nanmean(values) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def _flags(rows: pd.DataFrame, test_labels: np.ndarray, majority_rate: float | None, labels: list[str]) -> dict:
    """The arm's flagged points (stats.flag_reasons): how many of its points, which, and why."""
    flagged = []
    for _, row in rows.sort_values([BUDGET, "seed"]).iterrows():
        reasons = flag_reasons(decode_predictions(row[TEST_PREDICTIONS]), test_labels, float(row[m.VAL_ACCURACY]),
                               majority_rate, labels)
        if reasons:
            flagged.append({"budget": int(row[BUDGET]), "seed": int(row["seed"]), "reasons": reasons})
    return {"count": len(flagged), "of": len(rows), "points": flagged}


def _comparisons(curve_arms: list[str], seed_acc: dict, accuracy: dict, budgets: list[int]) -> list[dict]:
    """Every stated pair (stats.comparison_pairs) on both budget axes: the per-seed AULC differences,
    their t-interval and exact sign-flip p, Holm-adjusted over all of them, and the bootstrap interval."""
    tests = []
    for arm, base in comparison_pairs(curve_arms):
        for scale in SCALES:
            d = aulc(seed_acc[arm].T, budgets, scale) - aulc(seed_acc[base].T, budgets, scale)
            boot = aulc(accuracy[arm], budgets, scale) - aulc(accuracy[base], budgets, scale)
            t_ci = paired_t_interval(d)
            tests.append({"arm": arm, "baseline": base, "scale": scale, "mean": float(d.mean()),
                          "t_ci": None if t_ci is None else list(t_ci), "p": sign_flip_p(d),
                          "bootstrap_ci": estimate(boot)["ci"], "differences": [round(float(x), 6) for x in d]})
    for test, adjusted in zip(tests, holm([t["p"] for t in tests]), strict=True):
        test["p_holm"] = float(adjusted)
        test["verdict"] = verdict(test["mean"], adjusted)
    return tests


def precisions(frame: pd.DataFrame) -> dict:
    """How many of the compared points trained in each precision, and the seeds whose arms did not all train in
    one. "auto" is decided where each trial runs, so a study resumed on another kind of machine (no native
    bfloat16) can mix them: the report must say so. {} when study.csv does not record it (older studies)."""
    if m.PRECISION not in frame:
        return {}
    column = frame[m.PRECISION].fillna("not recorded").astype(str)
    mixed = sorted(int(seed) for seed, values in column.groupby(frame["seed"]) if values.nunique() > 1)
    return {"points": {name: int(count) for name, count in sorted(column.value_counts().items())},
            "mixed_seeds": mixed}


def validation_curves(frame: pd.DataFrame) -> dict:
    """supervised and full:supervised, per budget, means over seeds of the fixed-validation accuracy
    at the curve's best and last epoch and the epochs run: does supervised rise with the budget to meet
    full-data supervised, and has each curve flattened by its last epoch?"""
    out: dict = {}
    if VALIDATION_CURVE not in frame:
        return out
    for (arm, budget), at in frame[frame["arm"].isin(["supervised", "full:supervised"])].groupby(["arm", BUDGET]):
        curves = [c for c in map(parse_curve, at[VALIDATION_CURVE]) if c]
        if curves:
            out.setdefault(arm, {})[str(budget)] = {
                "best": float(np.mean([max(a for _, a in c) for c in curves])),
                "last": float(np.mean([c[-1][1] for c in curves])), "epochs": float(np.mean([len(c) for c in curves]))}
    return out


def _costs(frame: pd.DataFrame, prices: dict, teacher_gold: int, charge: bool, budgets: list[int]) -> dict:
    """Every (arm, budget) on the priced-cost axis, the Pareto frontier, and the best point at each
    expert price of the grid for spends equal to the study's budgets and the pool (the price of labelling
    all of it: where the teacher arms compete once their sunk labels are charged), in gold labels."""
    points = costs.cost_points(frame, prices, teacher_gold, charge)
    pools = set(frame.loc[frame["arm"].map(single_point), BUDGET].astype(int)) - set(budgets)
    return {"points": points, "frontier": costs.pareto_frontier(points),
            "expert_price_grid": list(costs.EXPERT_PRICE_GRID),
            "recommendations": costs.recommendations(frame, prices, teacher_gold, charge, [*budgets, *sorted(pools)])}


def write_report(summary: dict, folder: Path, plots: list[str]) -> None:
    """report.md in folder (report_text.py writes it); `plots`: the PNG names to show, beside it."""
    write_text(folder / REPORT_MD, document(summary, plots))
