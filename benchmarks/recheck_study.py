"""Recompute a budget study's summary.json from its study.csv, independently of the report code.

    python benchmarks/recheck_study.py STUDY_FOLDER [--test-labels FILE]

Written from README.md's "The budget study" and the meaning of the numbers, importing nothing from tuning/ or
trainables/, so that a bug in the report code (tuning/budget_study/) shows up as a difference here instead of
being repeated. It checks per arm and budget the mean and median test accuracy and the mean label counts and
priced cost over the compared seeds; each curve's AULC on a linear and a log budget axis; every paired
comparison (per-seed differences, mean, 95% t-interval, exact sign-flip p, Holm-adjusted p, verdict); the
priced cost points and the Pareto frontier; and the flagged points.

The test labels are not in study.csv. Without --test-labels (one integer class per line, in the order of
the test split) the test accuracy is taken from study.csv's test_accuracy column and the "never predicts a
class making up >= 10% of test" flags are checked only as far as the flags themselves reveal the class
shares; the output says so. With them, the accuracy column is itself checked against the predictions. Such a
file can be written from the study's data settings (study.json "data") with the project's own loader:
np.savetxt(FILE, trainables.data.load_task_data(...).test.labels, fmt="%d"); the recheck never imports it.

Exit status: 0 every check passes, 1 a check fails, 2 bad input (one line on stderr)."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

TOLERANCE = 1e-9  # arithmetic: sums and means of a few hundred numbers agree far closer than this
ROUNDED = 5e-7 + TOLERANCE  # summary.json stores the per-seed differences rounded to 6 decimals
ALPHA = 0.05  # family-wise error rate of the verdicts (README: Holm-corrected)
FLAG_SHARE = 0.10  # a class this common in test that a student never predicts flags the point
MAX_EXACT_SEEDS = 16  # beyond, the report samples sign patterns: its p is not exact and is not checked
NEVER = re.compile(r"never predicts (.+) \((\d+)% of test\)")


class BadInput(Exception):
    """Missing or unreadable input: exit 2 with one line."""


# ---------------------------------------------------------------- reading

def load(folder: Path) -> tuple[pd.DataFrame, dict]:
    if not folder.is_dir():
        raise BadInput(f"no study folder {folder}")
    for name in ("study.csv", "summary.json"):
        if not (folder / name).is_file():
            raise BadInput(f"{folder} has no {name}")
    try:
        # Predictions below 10 classes are one digit each ("0120..."): read as text, or a leading 0 is lost.
        frame = pd.read_csv(folder / "study.csv", dtype={"test_predictions": str})
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise BadInput(f"cannot read {folder}: {error}") from None
    needed = {"arm", "budget", "seed", "gold_labels", "expert_queries", "expert_reads", "val_accuracy",
              "test_accuracy", "test_predictions"}
    if missing := needed - set(frame.columns):
        raise BadInput(f"study.csv lacks {', '.join(sorted(missing))}")
    if missing := {"seeds", "budgets", "arms", "comparisons", "costs"} - set(summary):
        raise BadInput(f"summary.json lacks {', '.join(sorted(missing))}")
    return frame, summary


def decode(text: str) -> np.ndarray:
    """The classes of a test_predictions cell: comma-separated from 10 classes up, else one digit each."""
    text = str(text)
    parts = text.split(",") if "," in text else list(text)
    return np.array([int(p) for p in parts], dtype=np.int64)


def single_point(arm: str) -> bool:
    """full:* and kd_all are one point at the pool size, not a curve over the budgets."""
    return arm == "kd_all" or arm.startswith("full:")


def compared_seeds(frame: pd.DataFrame, budgets: list[int]) -> list[int]:
    """Seeds for which every arm has all its points: the only ones a paired comparison can use."""
    keep = None
    for arm, rows in frame.groupby("arm"):
        if not single_point(arm):
            rows = rows[rows["budget"].isin(budgets)]
        wanted = 1 if single_point(arm) else len(budgets)
        have = {int(s) for s, r in rows.groupby("seed") if r["budget"].nunique() == wanted}
        keep = have if keep is None else keep & have
    return sorted(keep or [])


# ---------------------------------------------------------------- statistics, from their definitions

def aulc(curve: np.ndarray, budgets: list[int], log: bool) -> float:
    """Trapezoid of accuracy over the budget axis divided by the axis' length: an average accuracy."""
    x = np.log(np.asarray(budgets, float)) if log else np.asarray(budgets, float)
    if len(x) == 1:
        return float(curve[0])
    area = sum((x[i + 1] - x[i]) * (curve[i] + curve[i + 1]) / 2 for i in range(len(x) - 1))
    return float(area / (x[-1] - x[0]))


def t_interval(d: np.ndarray) -> list[float] | None:
    if len(d) < 2:
        return None
    half = stats.t.ppf(0.975, len(d) - 1) * np.std(d, ddof=1) / np.sqrt(len(d))
    return [float(d.mean() - half), float(d.mean() + half)]


def sign_flip_p(d: np.ndarray) -> float:
    """Share of the 2^n sign patterns whose |mean| is at least the observed |mean| (a relative tolerance
    keeps patterns equal in exact arithmetic but a rounding apart counted as equal)."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    means = np.abs(signs @ d) / len(d)
    observed = abs(d.mean())
    return int(np.sum(means >= observed - 1e-12 * max(np.abs(d).sum(), 1e-300))) / len(signs)


def holm(p: list[float]) -> list[float]:
    """Step-down: the k-th smallest (k from 0) times (m - k), capped at 1, never below an earlier one."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        adjusted[i] = running
    return adjusted


def verdict(mean: float, p_holm: float) -> str:
    if p_holm > ALPHA:
        return "cannot be told apart from"
    return "beats" if mean > 0 else "loses to"


def expected_pairs(curve_arms: list[str]) -> set[tuple[str, str]]:
    """README: each expert:<strategy> against expert:random of the same expert, each oracle:<strategy>
    against oracle:random (supervised when absent: the same rows and labels), expert:random against supervised."""
    pairs = set()
    for arm in curve_arms:
        kind, _, rest = arm.partition(":")
        strategy, at, who = rest.partition("@")
        if kind in ("expert", "oracle") and strategy != "random":
            base = f"{kind}:random{at}{who}"
            if kind == "oracle" and base not in curve_arms:
                base = "supervised"
            if base in curve_arms:
                pairs.add((arm, base))
        if kind == "expert" and strategy == "random" and "supervised" in curve_arms:
            pairs.add((arm, "supervised"))
    return pairs


# ---------------------------------------------------------------- costs

def priced_costs(frame: pd.DataFrame, summary: dict) -> np.ndarray:
    """Per row: gold x gold price + expert labels x their expert's price + reads x read price, plus the
    teachers' own gold labels (a sunk cost) only when charge_sunk, and only for arms labelled by the teachers.
    An @llm / @openai arm's labels cost `llm` / `openai` (a study priced before those existed: `expert`)."""
    prices = summary["prices"]
    sunk = int(summary.get("teacher_gold_labels") or 0) * prices["gold"] if summary.get("charge_sunk") else 0.0
    out = []
    for arm, gold, queries, reads in frame[["arm", "gold_labels", "expert_queries", "expert_reads"]].itertuples(
            index=False):
        kind, _, rest = arm.partition(":")
        who = rest.partition("@")[2]
        label_price = prices.get(who, prices["expert"]) if who else prices["expert"]
        teachers = arm in ("kd_all", "full:kd") or (kind == "expert" and not who)
        out.append(gold * prices["gold"] + queries * label_price + reads * prices.get("read", prices["expert"])
                   + (sunk if teachers else 0.0))
    return np.array(out, dtype=float)


def simplicity(arm: str) -> int:
    """costs.py: of identical points the simplest arm is named (supervised, then a random one, then others)."""
    return 0 if arm in ("supervised", "full:supervised") else 1 if ":random" in arm else 2


def frontier(points: list[dict]) -> list[tuple[str, int]]:
    """Points no other point dominates (as cheap or cheaper AND as accurate or more, better on one);
    of identical points one, the simplest arm (then the first by arm and budget). Cheapest first."""
    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-12  # means of the same numbers summed in another order

    kept = []
    for p in points:
        dominated = any(
            (q["cost"] <= p["cost"] or close(q["cost"], p["cost"]))
            and (q["acc"] >= p["acc"] or close(q["acc"], p["acc"]))
            and not (close(q["cost"], p["cost"]) and close(q["acc"], p["acc"]))
            for q in points)
        first = min((q for q in points if close(q["cost"], p["cost"]) and close(q["acc"], p["acc"])),
                    key=lambda q: (simplicity(q["arm"]), q["arm"], q["budget"]))
        if not dominated and first is p:
            kept.append(p)
    return [(p["arm"], p["budget"]) for p in sorted(kept, key=lambda p: p["cost"])]


# ---------------------------------------------------------------- the checks

class Table:
    def __init__(self):
        self.rows: list[tuple[str, int, str, bool]] = []
        self.notes: list[str] = []

    def numbers(self, quantity: str, pairs: list[tuple[float | None, float | None]], tolerance: float) -> None:
        """pairs of (recomputed, summary.json); None on both sides agrees, on one side fails."""
        worst, ok = 0.0, True
        for mine, theirs in pairs:
            if mine is None or theirs is None:
                ok &= mine is None and theirs is None
                continue
            gap = abs(float(mine) - float(theirs))
            ok &= not np.isnan(gap)  # a missing value (NaN) never agrees; max() would silently skip it
            worst = worst if np.isnan(gap) else max(worst, gap)
        self.rows.append((quantity, len(pairs), f"{worst:.3g}", ok and worst <= tolerance))

    def same(self, quantity: str, pairs: list[tuple[object, object]]) -> None:
        wrong = sum(mine != theirs for mine, theirs in pairs)
        self.rows.append((quantity, len(pairs), f"{wrong} differ", wrong == 0))

    def print(self) -> bool:
        print(f"{'quantity':<52} {'compared':>8} {'max |diff|':>11}  result")
        for quantity, count, diff, ok in self.rows:
            print(f"{quantity:<52} {count:>8} {diff:>11}  {'PASS' if ok else 'FAIL'}")
        for note in self.notes:
            print(f"note: {note}")
        return all(ok for *_, ok in self.rows)


def check_points(table: Table, frame: pd.DataFrame, summary: dict) -> None:
    """Per arm and budget: means over the compared seeds (the median too for test accuracy)."""
    entries = {(arm, int(b)): e for arm, a in summary["arms"].items() for b, e in a.get("per_budget", {}).items()}
    groups = {(arm, int(b)): rows for (arm, b), rows in frame.groupby(["arm", "budget"])}
    table.same("points (arm x budget) in summary.json", [(set(groups), set(entries))])
    both = [(rows, entries[key]) for key, rows in groups.items() if key in entries]
    table.numbers("mean test accuracy per arm x budget",
                  [(rows["test_accuracy"].mean(), e["test_accuracy"]["mean"]) for rows, e in both], TOLERANCE)
    table.numbers("median test accuracy per arm x budget",
                  [(np.median(rows["test_accuracy"]), e["test_accuracy_median"]) for rows, e in both], TOLERANCE)
    for column in ("gold_labels", "expert_queries", "expert_reads", "priced_cost"):
        table.numbers(f"mean {column} per arm x budget", [(rows[column].mean(), e[column]) for rows, e in both],
                      TOLERANCE)


def check_curves(table: Table, frame: pd.DataFrame, summary: dict) -> dict[str, np.ndarray]:
    """AULC of each curve arm's mean curve on both axes. Returns arm -> (seeds, budgets) test accuracies,
    NaN where a point is missing (so a comparison on it fails instead of pairing the wrong seeds)."""
    budgets, by_arm = summary["budgets"], {}
    for arm, rows in frame[~frame["arm"].map(single_point)].groupby("arm"):
        grid = rows.pivot_table(index="seed", columns="budget", values="test_accuracy", aggfunc="mean")
        by_arm[arm] = grid.reindex(index=summary["seeds"], columns=budgets).to_numpy(float)
    for log, key in ((False, "aulc"), (True, "aulc_log")):
        table.numbers(f"{key} per curve arm", [(aulc(s.mean(axis=0), budgets, log),
                                                 summary["arms"].get(arm, {}).get(key)) for arm, s in by_arm.items()],
                      TOLERANCE)
    return by_arm


def check_comparisons(table: Table, by_arm: dict[str, np.ndarray], summary: dict) -> None:
    budgets, given = summary["budgets"], summary["comparisons"]
    wanted = {(a, b, scale) for a, b in expected_pairs(list(by_arm)) for scale in ("linear", "log")}
    table.same("comparisons made (arm, baseline, axis)", [(wanted, {(t["arm"], t["baseline"], t["scale"])
                                                                     for t in given})])
    given = [t for t in given if (t["arm"], t["baseline"], t["scale"]) in wanted]
    diffs = [np.array([aulc(a, budgets, t["scale"] == "log") - aulc(b, budgets, t["scale"] == "log")
                       for a, b in zip(by_arm[t["arm"]], by_arm[t["baseline"]], strict=True)]) for t in given]
    table.numbers("per-seed AULC differences (stored to 6 decimals)",
                  [(x, y) for d, t in zip(diffs, given, strict=True)
                   for x, y in zip(d, t["differences"], strict=True)], ROUNDED)
    table.numbers("mean AULC difference", [(d.mean(), t["mean"]) for d, t in zip(diffs, given, strict=True)],
                  TOLERANCE)
    intervals = [(t_interval(d), t["t_ci"]) for d, t in zip(diffs, given, strict=True)]
    table.numbers("95% t-interval ends", [(m[i] if m else None, g[i] if g else None)
                                          for m, g in intervals for i in (0, 1)], TOLERANCE)
    if diffs and len(diffs[0]) > MAX_EXACT_SEEDS:
        table.notes.append(f"more than {MAX_EXACT_SEEDS} seeds: the report samples sign patterns; p not checked")
        return
    p = [sign_flip_p(d) for d in diffs]
    table.numbers("sign-flip p (exact, all 2^n patterns)", list(zip(p, [t["p"] for t in given], strict=True)), 0.0)
    adjusted = holm(p)
    table.numbers("Holm-adjusted p", list(zip(adjusted, [t["p_holm"] for t in given], strict=True)), 0.0)
    table.same("verdicts", [(verdict(d.mean(), q), t["verdict"]) for d, q, t in zip(diffs, adjusted, given,
                                                                                     strict=True)])


def check_costs(table: Table, frame: pd.DataFrame, summary: dict) -> None:
    mine = [{"arm": arm, "budget": int(budget), "cost": float(rows["priced_cost"].mean()),
             "acc": float(rows["test_accuracy"].mean())} for (arm, budget), rows in frame.groupby(["arm", "budget"])]
    theirs = {(p["arm"], p["budget"]): p for p in summary["costs"]["points"]}
    table.same("cost points listed", [({(p["arm"], p["budget"]) for p in mine}, set(theirs))])
    known = [(p, theirs[(p["arm"], p["budget"])]) for p in mine if (p["arm"], p["budget"]) in theirs]
    table.numbers("cost point: priced cost", [(p["cost"], t["cost"]) for p, t in known], TOLERANCE)
    table.numbers("cost point: test accuracy", [(p["acc"], t["test_accuracy"]) for p, t in known], TOLERANCE)
    table.same("Pareto frontier (members, cheapest first)",
               [(frontier(mine), [(p["arm"], p["budget"]) for p in summary["costs"]["frontier"]])])


def reason(text: str) -> tuple:
    """A flag's reason as ("majority",), ("never", class name, stated percent), or ("unreadable", text)."""
    if text.startswith("validation accuracy"):
        return ("majority",)
    match = NEVER.fullmatch(text)
    return ("never", match.group(1), int(match.group(2))) if match else ("unreadable", text)


def check_flags(table: Table, frame: pd.DataFrame, summary: dict, labels: np.ndarray | None) -> None:
    points = {(r.arm, int(r.budget), int(r.seed)): r for r in frame.itertuples()}
    decoded = {k: set(decode(r.test_predictions).tolist()) for k, r in points.items()}
    # A study without label names calls the classes by their numbers (up to the largest class seen).
    seen = max([max(c) for c in decoded.values()] + ([int(labels.max())] if labels is not None else []))
    names = [str(n) for n in summary.get("label_names") or range(seen + 1)]
    majority = summary.get("validation_majority_rate")
    stated: dict[tuple[str, int, int], list[tuple]] = {}
    counts = []
    for arm, entry in summary["arms"].items():
        flags = entry.get("flags", {})
        counts.append(((flags.get("count"), flags.get("of")),
                       (len(flags.get("points", [])), int((frame["arm"] == arm).sum()))))
        for point in flags.get("points", []):
            stated[(arm, point["budget"], point["seed"])] = [reason(r) for r in point["reasons"]]
    table.same("flag counts per arm (count, of)", counts)
    said = {key: {r[:2] for r in reasons} for key, reasons in stated.items()}  # percent dropped
    table.same("flag: validation accuracy at/below majority rate",
               [(majority is not None and r.val_accuracy <= majority + 1e-9, ("majority",) in said.get(k, set()))
                for k, r in points.items()])
    never = [r for reasons in stated.values() for r in reasons if r[0] != "majority"]
    if labels is not None:
        shares = np.bincount(labels, minlength=len(names)) / len(labels)
        common = [names[c] for c in range(len(names)) if shares[c] >= FLAG_SHARE]
        table.numbers("flag: stated test share of a never-predicted class (%)",
                      [(shares[names.index(r[1])] * 100 if r[1] in names else None, r[2])
                       for r in never if r[0] == "never"], 0.5 + TOLERANCE)  # printed to whole percents
    else:  # a class some flag names is >= 10% of test: that is a property of the test set, true for every point
        common = sorted({r[1] for r in never if r[0] == "never" and r[1] in names})
        table.notes.append("no --test-labels: 'never predicts' is checked only for the classes some flag names "
                           f"({', '.join(common) or 'none'}); another class >= 10% of test that no flag names is not")
    table.same("flag: never predicts a class >= 10% of test",
               [(names.index(n) not in decoded[k], ("never", n) in said.get(k, set())) for k in points for n in common])
    table.same("flag reasons readable, about a class >= 10% of test",
               [(True, r[0] == "never" and r[1] in common) for r in never])


def check_labels(table: Table, frame: pd.DataFrame, summary: dict, labels: np.ndarray | None) -> None:
    """Every prediction string decodes to one class per test example; with the labels, the accuracy column
    is what the predictions score (the summary's accuracies come from the predictions, the recheck's from it)."""
    decoded = [decode(t) for t in frame["test_predictions"]]
    table.same("decoded predictions: one per test example",
               [(len(d), summary.get("test_examples", len(d))) for d in decoded])
    if labels is None:
        table.notes.append("test accuracy taken from study.csv's test_accuracy column (no --test-labels)")
        return
    table.numbers("test_accuracy column vs predictions and labels",
                  [(float((d == labels).mean()) if len(d) == len(labels) else None, a)
                   for d, a in zip(decoded, frame["test_accuracy"], strict=True)], TOLERANCE)


def recheck(folder: Path, labels_file: Path | None) -> bool:
    frame, summary = load(folder)
    labels = None
    if labels_file is not None:
        try:
            labels = np.loadtxt(labels_file, dtype=np.int64, ndmin=1)
        except (ValueError, OSError) as error:
            raise BadInput(f"cannot read test labels {labels_file}: {error}") from None
        if len(labels) != summary.get("test_examples", len(labels)):
            raise BadInput(f"{labels_file} holds {len(labels)} labels, the study {summary['test_examples']}")
    budgets, table = [int(b) for b in summary["budgets"]], Table()
    table.same("one row per arm x budget x seed", [(int(frame.duplicated(["arm", "budget", "seed"]).sum()), 0)])
    table.same("compared seeds (every arm has every point)", [(compared_seeds(frame, budgets), summary["seeds"])])
    # Everything else over the seeds summary.json says were compared, curves at the study's budgets only.
    frame = frame[frame["seed"].isin(summary["seeds"])
                  & (frame["budget"].isin(budgets) | frame["arm"].map(single_point))].copy()
    frame["priced_cost"] = priced_costs(frame, summary)
    check_labels(table, frame, summary, labels)
    check_points(table, frame, summary)
    check_comparisons(table, check_curves(table, frame, summary), summary)
    check_costs(table, frame, summary)
    check_flags(table, frame, summary, labels)
    return table.print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a study's folder (study.csv, summary.json)")
    parser.add_argument("--test-labels", type=Path, help="the test split's classes, one integer per line")
    args = parser.parse_args(argv)
    try:
        return 0 if recheck(args.folder, args.test_labels) else 1
    except BadInput as error:
        print(f"recheck_study: {error}", file=sys.stderr)
        return 2
    except KeyError as error:  # summary.json without a field the report writes: not a study summary to check
        print(f"recheck_study: {args.folder / 'summary.json'} has no field {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
