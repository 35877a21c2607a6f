"""The budget study's report half (issue 22): flags, costs, the Pareto frontier, the recommendation per
expert price, Holm, the t-interval, the sign-flip test, the log-axis AULC and the stays-above rule, each
against values worked out by hand in the comments; then a small made-up study through summarise,
write_report and make_plots."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from trainables.errors import UsageError
from tuning.budget_study import code_version, costs, plots, runner, stats
from tuning.budget_study.plots import make_plots
from tuning.budget_study.report import precisions, summarise, validation_curves, write_report
from tuning.budget_study.report_text import (
    expert_lines,
    family_line,
    precision_line,
    precision_warning,
    progress_lines,
    setup_lines,
)
from tuning.budget_study.runner import describe_stopping
from tuning.budget_study.stopping import stopping_summary

# ---------------------------------------------------------------- statistics, by hand


def test_aulc_on_a_log_axis_weighs_every_tenfold_step_equally():
    # budgets 10, 100, 1000 are one step apart in log10 (any base: the length divides out):
    # log: ((0.5 + 0.7) / 2 + (0.7 + 0.8) / 2) / 2 = (0.6 + 0.75) / 2 = 0.675
    # linear: (0.6 x 90 + 0.75 x 900) / 990 = (54 + 675) / 990 = 0.736363...
    accuracy = np.array([0.5, 0.7, 0.8])
    assert stats.aulc(accuracy, [10, 100, 1000], "log") == pytest.approx(0.675)
    assert stats.aulc(accuracy, [10, 100, 1000], "linear") == pytest.approx(729 / 990)
    with pytest.raises(ValueError, match="scale"):
        stats.aulc(accuracy, [10, 100, 1000], "sqrt")


@pytest.mark.parametrize("curve, index", [
    ([0.70, 0.80, 0.76, 0.82], 3),  # 0.80 touches the mark but 0.76 falls back: reached only at the 4th budget
    ([0.80, 0.90], 0),  # above from the start
    ([0.70, 0.78], 1),  # at the mark counts
    ([0.80, 0.70], None),  # the last budget is below: never reached to stay
])
def test_a_mark_is_reached_where_the_curve_stays_at_or_above_it(curve, index):
    assert stats.first_staying_above(np.array(curve), 0.78) == index


def test_paired_t_interval_by_hand():
    # d = 0.02, 0.04, 0.00, 0.06: mean 0.03; squared deviations 1, 1, 9, 9 (x 1e-4), sum 2e-3, / 3 =
    # 6.667e-4, sd 0.025820, se = sd / 2 = 0.012910; t(0.975, 3) = 3.182446 -> half width 0.041085
    low, high = stats.paired_t_interval([0.02, 0.04, 0.00, 0.06])
    assert (low, high) == pytest.approx((0.03 - 0.041085, 0.03 + 0.041085), abs=1e-6)
    assert stats.paired_t_interval([0.1]) is None  # one seed: no spread to measure


def test_sign_flip_p_is_exact():
    # d = 0.02, 0.04, 0.00, 0.06: 16 sign patterns (the zero's sign changes nothing). |sum| >= 0.12 only
    # for +2+4+6 and -2-4-6 (x2 for the zero's sign): 4 of 16 = 0.25.
    assert stats.sign_flip_p([0.02, 0.04, 0.00, 0.06]) == pytest.approx(0.25)
    # ten seeds all the same sign: only all-plus and all-minus are as extreme: 2 / 2^10
    assert stats.sign_flip_p(np.full(10, 0.01)) == pytest.approx(2 / 1024)
    # five seeds cannot go below 2 / 32 = 0.0625, however large the differences (issue 22)
    assert stats.sign_flip_p([0.3, 0.2, 0.4, 0.5, 0.1]) == pytest.approx(0.0625)
    assert stats.sign_flip_p([0.3]) == 1.0  # one seed: +0.3 and -0.3 are equally extreme


def test_holm_by_hand():
    # p = 0.01, 0.04, 0.03, 0.005; sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04;
    # running maximum 0.02, 0.03, 0.06, 0.06; back in the given order: 0.03, 0.06, 0.06, 0.02
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1: 0.5 x 2 = 1.0, then 0.6 x 1 = 0.6 lifted to the running maximum 1.0
    assert stats.holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]).tolist() == []


def test_verdicts_follow_the_adjusted_p_and_the_sign():
    assert stats.verdict(+0.02, 0.04) == "beats"
    assert stats.verdict(-0.02, 0.04) == "loses to"
    assert stats.verdict(+0.20, 0.06) == "cannot be told apart from"


def test_the_comparisons_made():
    arms = ["expert:margin", "expert:random", "oracle:margin", "supervised"]  # the curve arms (kd_all is a point)
    assert stats.comparison_pairs(arms) == [("expert:margin", "expert:random"), ("oracle:margin", "supervised"),
                                            ("expert:random", "supervised")]
    assert stats.comparison_pairs(["expert:margin", "supervised"]) == []  # no expert:random: nothing to pair


LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1, 0, 0])  # 10 test labels: class 0 50%, 1 30%, 2 20%
NAMES = ["neg", "pos", "amb"]


def right_on(k: int) -> np.ndarray:
    """Right on the first k test examples, the rest one class off: every class is still predicted for k >= 3."""
    return np.where(np.arange(10) < k, LABELS, (LABELS + 1) % 3)


def test_flags_by_hand():
    collapsed = np.zeros(10, dtype=int)  # only neg: never pos (30%) nor amb (20%)
    assert stats.flag_reasons(collapsed, LABELS, 0.62, 0.55, NAMES) == [
        "never predicts pos (30% of test)", "never predicts amb (20% of test)"]
    assert stats.flag_reasons(right_on(6), LABELS, 0.55, 0.55, NAMES) == [
        "validation accuracy 0.550 <= majority rate 0.550"]
    assert stats.flag_reasons(right_on(6), LABELS, 0.56, 0.55, NAMES) == []
    rare = np.array([0] * 19 + [2])  # class 2 is 5% of these labels: never predicting it is no flag
    assert stats.flag_reasons(np.zeros(20, dtype=int), rare, 0.9, 0.5, NAMES) == []
    tenth = np.array([0] * 9 + [1])  # exactly 10% counts
    assert stats.flag_reasons(np.zeros(10, dtype=int), tenth, 0.9, 0.5, NAMES) == ["never predicts pos (10% of test)"]


def test_class_recall_and_query_shares_by_hand():
    # right_on(8): wrong on examples 8 and 9 (both neg): neg 3/5, pos 3/3, amb 2/2; all-neg: 1, 0, 0
    recall = stats.class_recall([right_on(8), np.zeros(10, dtype=int)], LABELS, 3)
    assert recall == pytest.approx([(0.6 + 1) / 2, 0.5, 0.5])
    # labels 0, 0, 2, 0, 1, 0, 1: counts 4, 2, 1 of 7; no queried row: no share
    assert stats.class_shares([0, 0, 2, 0, 1, 0, 1], 3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert stats.class_shares([], 2).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- costs, by hand

def test_parse_prices():
    # read, llm and openai follow the expert's price unless given
    assert costs.parse_prices("gold=1,expert=0.1,read=0.01") == {"gold": 1.0, "expert": 0.1, "read": 0.01,
                                                                 "llm": 0.1, "openai": 0.1}
    assert costs.parse_prices(None) == costs.parse_prices("") == dict.fromkeys(costs.PRICE_NAMES, 1.0)
    assert costs.parse_prices(" expert = 0.2 ") == {"gold": 1.0, **dict.fromkeys(("expert", "read", "llm", "openai"),
                                                                                0.2)}


@pytest.mark.parametrize("text, message", [
    ("silver=1", "NAME=PRICE pairs with NAME one of gold, expert, read"), ("expert", "NAME=PRICE"),
    ("expert=-1", "finite number >= 0"), ("expert=abc", "must be a number"), ("read=nan", "finite number"),
    ("gold=0", "above 0"), ("expert=1,expert=2", "twice"),
])
def test_bad_prices_are_a_usage_error(text, message):
    with pytest.raises(UsageError, match=message):
        costs.parse_prices(text)


def test_parsing_prices_imports_no_torch_ray_or_pandas():
    """study.py checks --prices before Ray starts: the module must stay light."""
    code = ("import sys; from tuning.budget_study.costs import parse_prices; parse_prices('expert=1'); "
            "print(sorted(m for m in ('torch', 'ray', 'pandas', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_priced_cost_by_hand():
    frame = pd.DataFrame({
        "arm": ["expert:robust_least_confidence", "supervised", "kd_all", "full:kd", "oracle:margin"],
        "gold_labels": [50, 400, 400, 1136, 400], "expert_queries": [350, 0, 736, 1136, 0],
        "expert_reads": [3000, 0, 0, 0, 0]})
    prices = {"gold": 1.0, "expert": 0.1, "read": 0.01}
    # 50 + 35 + 30 = 115; 400; 400 + 73.6 = 473.6; 1136 + 113.6 = 1249.6; 400
    assert costs.priced_cost(frame, prices, 1136, False) == pytest.approx([115, 400, 473.6, 1249.6, 400])
    # the teachers' 1136 gold labels charged to the arms that use them only
    assert costs.priced_cost(frame, prices, 1136, True) == pytest.approx([1251, 400, 1609.6, 2385.6, 400])


def test_pareto_frontier_by_hand():
    points = [{"arm": a, "budget": 1, "cost": c, "test_accuracy": t}
              for a, c, t in (("A", 10, 0.6), ("B", 20, 0.7), ("C", 15, 0.55), ("D", 30, 0.7), ("E", 40, 0.8))]
    # C costs more than A and is worse; D costs more than B for the same accuracy
    assert [p["arm"] for p in costs.pareto_frontier(points)] == ["A", "B", "E"]


def test_grid_prices_keep_a_reads_ratio_to_an_expert_label():
    assert costs.grid_prices({"gold": 1.0, "expert": 0.1, "read": 0.01}, 0.3) == pytest.approx(
        {"gold": 1.0, "expert": 0.3, "read": 0.03})
    assert costs.grid_prices({"gold": 1.0, "expert": 0.0, "read": 0.02}, 0.3)["read"] == 0.02


def test_recommendations_group_the_grid_into_runs():
    a = {"arm": "kd_all", "budget": 100, "cost": 0.0, "test_accuracy": 0.8}
    b = {"arm": "supervised", "budget": 50, "cost": 0.0, "test_accuracy": 0.7}
    recs = [{"spend": 50.0, "choices": [{"expert_price": 0.0, "best": a}, {"expert_price": 0.1, "best": b},
                                        {"expert_price": 0.3, "best": None}, {"expert_price": 1.0, "best": None}]}]
    assert costs.recommendation_sentences(recs) == [
        "With the price of 50 gold labels to spend: if an expert label is free, use kd_all at budget 100 (test "
        "accuracy 0.800); at 0.1, use supervised at budget 50 (test accuracy 0.700); from 0.3 to 1 (the dearest "
        "price tried), no measured point costs that little."]
    assert costs.recommendation_table(recs) == (
        ["spend (gold labels)", "expert = 0", "expert = 0.1", "expert = 0.3", "expert = 1"],
        [["50", "kd_all @ 100", "supervised @ 50", "-", "-"]])


# ---------------------------------------------------------------- a made-up study through the report

SEEDS = [0, 1, 2, 3]
# right answers of 10 per seed (k); expert:margin's seed 3 at budget 20 collapses to predicting neg only
CORRECT = {("supervised", 10): [6, 6, 7, 6], ("supervised", 20): [7, 8, 8, 9],
           ("expert:random", 10): [5, 6, 7, 6], ("expert:random", 20): [6, 7, 7, 8],
           ("expert:margin", 10): [5, 6, 7, 6], ("expert:margin", 20): [9, 9, 8, None],
           ("full:supervised", 40): [8, 8, 8, 8]}


def study_row(arm: str, budget: int, seed: int) -> dict:
    k = CORRECT[(arm, budget)][seed]
    predicted = np.zeros(10, dtype=int) if k is None else right_on(k)
    expert = arm.startswith("expert:")
    gold = 4 if expert else budget  # the query arms start from 4 gold labels
    curve = json.dumps([[5, 0.5], [10, 0.6 + 0.01 * budget / 10], [15, 0.58]]) if "supervised" in arm else ""
    return {"arm": arm, "budget": budget, "seed": seed, "gold_labels": gold, "expert_queries": budget - gold,
            "expert_reads": 0, "selection": "share", "selection_labels": gold / 10,
            # supervised at 10, seed 0, sits at the validation majority rate 0.5; so does the collapsed point
            "val_accuracy": 0.5 if (arm, budget, seed) == ("supervised", 10, 0) or k is None else 0.7,
            "test_accuracy": float((predicted == LABELS).mean()), "test_macro_f1": 0.5,
            "expert_label_accuracy": 0.8 if expert and budget > gold else None, "train_seconds": 2.0,
            "epoch": 3, "epochs_run": 6, "steps": 30, "best_step": 15, "validation_curve": curve,
            "test_predictions": "".join(str(p) for p in predicted),
            # the stopping check on the validation inputs: every round alike, so kappa and delta_f see no change
            "stop_predictions": "0120120120", "stop_uncertainty": 0.5}


@pytest.fixture(scope="module")
def made_up():
    frame = pd.DataFrame([study_row(arm, budget, seed) for (arm, budget) in CORRECT for seed in SEEDS])
    meta = {"validation_majority_rate": 0.5, "pool_class_counts": [20, 12, 8], "label_names": NAMES,
            "prices": {"gold": 1.0, "expert": 0.1, "read": 0.01}, "charge_sunk": False, "teacher_gold_labels": 40,
            "selection": "share", "validation_labels": 30}
    return frame, summarise(frame, LABELS, [10, 20], meta, replicates=200)


def test_flags_medians_and_recall_in_the_summary(made_up):
    _, summary = made_up
    arms = summary["arms"]
    assert arms["expert:margin"]["flags"] == {"count": 1, "of": 8, "points": [{"budget": 20, "seed": 3, "reasons": [
        "never predicts pos (30% of test)", "never predicts amb (20% of test)",
        "validation accuracy 0.500 <= majority rate 0.500"]}]}
    assert arms["supervised"]["flags"]["count"] == 1 and arms["supervised"]["flags"]["points"][0]["seed"] == 0
    assert arms["full:supervised"]["flags"] == {"count": 0, "of": 4, "points": []}
    # expert:margin at 20: 0.9, 0.9, 0.8, 0.5 -> mean 0.775, median 0.85
    point = arms["expert:margin"]["per_budget"]["20"]
    assert point["test_accuracy"]["mean"] == pytest.approx(0.775)
    assert point["test_accuracy_median"] == pytest.approx(0.85)
    # recall at budget 20: right_on(9) neg 4/5 (x2), right_on(8) neg 3/5, all-neg 1 -> neg 0.8; pos, amb 3/4
    assert arms["expert:margin"]["class_recall"] == pytest.approx({"neg": 0.8, "pos": 0.75, "amb": 0.75})


def test_paired_comparisons_in_the_summary(made_up):
    _, summary = made_up
    tests = {(t["arm"], t["scale"]): t for t in summary["comparisons"]}
    assert set(tests) == {(a, s) for a in ("expert:margin", "expert:random") for s in ("linear", "log")}
    # two budgets: either axis' AULC is the mean of the two points; budget 10 is equal, so the per-seed
    # difference is (margin - random at 20) / 2 = (0.9-0.6, 0.9-0.7, 0.8-0.7, 0.5-0.8) / 2
    margin = tests[("expert:margin", "linear")]
    assert margin["differences"] == pytest.approx([0.15, 0.10, 0.05, -0.15])
    # mean 0.0375; squared deviations 0.01265625 + 0.00390625 + 0.00015625 + 0.03515625 = 0.051875, / 3,
    # sd 0.131498, se 0.065749, x t(0.975, 3) 3.182446 = 0.209244
    assert margin["mean"] == pytest.approx(0.0375)
    assert margin["t_ci"] == pytest.approx([0.0375 - 0.209244, 0.0375 + 0.209244], abs=1e-5)
    # |±15 ±10 ±5 ±15| >= 15: pairs (a, d) summing to ±30 give 4 patterns each; to 0 (2 ways), b + c = ±15: 2 each
    # -> 12 of 16 = 0.75
    assert margin["p"] == pytest.approx(0.75)
    # expert:random vs supervised: (random - supervised) at 10 is (-1, 0, 0, 0) / 10, at 20 (-1, -1, -1, -1) / 10:
    # per seed -0.1, -0.05, -0.05, -0.05; its p: |sum| >= 0.25 only for all same sign: 2/16 = 0.125
    assert tests[("expert:random", "log")]["differences"] == pytest.approx([-0.1, -0.05, -0.05, -0.05])
    assert tests[("expert:random", "log")]["p"] == pytest.approx(0.125)
    # Holm over 4 tests: p sorted 0.125, 0.125, 0.75, 0.75 -> 0.5, 0.375 (lifted to 0.5), 1.0, 0.75 (to 1.0)
    assert tests[("expert:random", "linear")]["p_holm"] == pytest.approx(0.5)
    assert margin["p_holm"] == pytest.approx(1.0)
    assert {t["verdict"] for t in tests.values()} == {"cannot be told apart from"}
    low, high = margin["bootstrap_ci"]
    assert low <= margin["mean"] <= high


def test_labels_to_reach_a_share_of_full_supervised(made_up):
    _, summary = made_up
    # full:supervised 0.8: 90% of it is 0.72. supervised 0.625, 0.8 -> from budget 20; 95% = 0.76 also at 20
    reach = summary["arms"]["supervised"]["gold_labels_to_90pct"]
    assert (reach["budget"], reach["gold_labels"], reach["expert_queries"]) == (20, 20, 0)
    assert set(reach["budget_ci"]) <= {10, 20, None}
    # expert:random 0.6, 0.7: never at 0.72
    assert summary["arms"]["expert:random"]["gold_labels_to_90pct"]["budget"] is None


def test_costs_frontier_and_recommendation_in_the_summary(made_up):
    _, summary = made_up
    priced = summary["costs"]
    # costs (gold 1, expert 0.1): supervised 10, 20; expert arms 4 + 0.6 = 4.6 and 4 + 1.6 = 5.6; full 40.
    # accuracy: supervised 0.625, 0.8; random 0.6, 0.7; margin 0.6, 0.775; full 0.8. Frontier: random@10
    # (of the two identical 4.6 / 0.6 points the random one, the simpler), margin@20, supervised@20
    # (full:supervised is as accurate and dearer).
    assert [(p["arm"], p["budget"], round(p["cost"], 9)) for p in priced["frontier"]] == [
        ("expert:random", 10, 4.6), ("expert:margin", 20, 5.6), ("supervised", 20, 20.0)]
    sentences = costs.recommendation_sentences(priced["recommendations"])
    # spend 10: margin@20 costs 4 + 16E <= 10 up to E = 0.375 (grid 0..0.3); above, supervised@10 (0.625)
    # beats margin@10 and random@10 (0.6). Spend 20: supervised@20 (0.8) at every price. Spend 40 (the pool):
    # full:supervised is no better (0.8) and dearer, so supervised@20 again.
    assert sentences[2] == ("With the price of 40 gold labels to spend: at every expert price from 0 to 3 gold "
                            "labels, use supervised at budget 20 (test accuracy 0.800).")
    assert sentences[:2] == [
        "With the price of 10 gold labels to spend: if an expert label costs 0.3 gold labels or less, use "
        "expert:margin at budget 20 (test accuracy 0.775); from 1 to 3 (the dearest price tried), use "
        "supervised at budget 10 (test accuracy 0.625).",
        "With the price of 20 gold labels to spend: at every expert price from 0 to 3 gold labels, use "
        "supervised at budget 20 (test accuracy 0.800)."]


def test_validation_curves_by_hand():
    frame = pd.DataFrame({"arm": ["supervised", "supervised", "expert:margin"], "budget": [10, 10, 10],
                          "validation_curve": ["[[5, 0.5], [10, 0.6], [15, 0.58]]", "[[5, 0.6], [10, 0.7]]", ""]})
    # best (0.6 + 0.7) / 2 = 0.65, last (0.58 + 0.7) / 2 = 0.64, epochs (3 + 2) / 2
    assert validation_curves(frame) == {"supervised": {"10": pytest.approx({"best": 0.65, "last": 0.64,
                                                                            "epochs": 2.5})}}


def test_the_report_says_it_plainly(made_up, tmp_path):
    frame, summary = made_up
    write_report(summary, tmp_path, ["cost_frontier.png"])
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Budget study\n\n## Answer")
    assert "2 of 28 points are flagged" in report
    assert ("budget 20 seed 3: never predicts pos (30% of test), never predicts amb (20% of test), validation "
            "accuracy 0.500 <= majority rate 0.500") in report
    # 4 seeds: no p below 2/16 = 0.125 > 0.05 / 4
    assert "no verdict other than 'cannot be told apart' is possible" in report
    assert ("expert:margin cannot be told apart from expert:random (AULC difference, linear: +0.03"  # 0.0375
            in report)
    assert "the highest area under the learning curve (mean test accuracy over the budgets) is supervised's" in report
    assert "model selection: a stratified 10% of each point's own gold labels" in report
    assert ("prices gold=1, expert=0.1, read=0.01 in gold labels; the teachers' 40 gold labels shown, not charged"
            in report)
    assert "use expert:margin at budget 20 (test accuracy 0.775)" in report
    # cost table at the largest budget: arm, its expert, gold, of which selection, sunk, expert labels, reads,
    # priced cost, expert label accuracy, a named expert's calls (none here)
    assert "| supervised | - | 20 | 2 | 0 | 0 | 0 | 20 | - | - |" in report
    assert "| expert:margin | teachers | " in report
    assert "0.775 [" in report and "median 0.850" in report


def test_each_expert_arm_beside_its_labels_and_its_expert(made_up):
    _, summary = made_up
    # budget 20: 4 gold + 16 expert labels, right on 0.8 (study_row); means random (6+7+7+8)/40 = 0.7,
    # margin (9+9+8+5)/40 = 0.775 (the collapsed seed predicts neg only: 5 of 10)
    line = ("At the largest budget (20), each Expert-Loop arm's mean test accuracy (and the share of its expert "
            "labels that were right, of how many): ")
    said = expert_lines(summary)[0]
    assert said.startswith(line) and said.endswith(".")
    assert sorted(said[len(line):-1].split("; ")) == ["expert:margin 0.775 (0.800 of 16)",
                                                      "expert:random 0.700 (0.800 of 16)"]
    with_teachers = {**summary, "teacher_accuracy": {"ensemble/test": 0.75}}
    assert expert_lines(with_teachers)[0].endswith(
        "The teacher ensemble, the expert of the teachers' arms, is right on 0.750 of test; their students end at "
        "0.700 to 0.775 (-0.050 to +0.025 from it).")
    no_expert_arm = {**summary, "arms": {k: v for k, v in summary["arms"].items() if not k.startswith("expert:")}}
    assert expert_lines(no_expert_arm) == []


def test_stopping_criteria_after_the_fact_by_hand():
    """One query arm, budgets 10..40 (the query arms start from 4 gold labels), two seeds, two classes.
    seed 0: stopping-set predictions 0011, 0111, 0111, 0111; mean normalised entropy .3, .2, .04, .03; test
        accuracy .5, .6, .7, .75. kappas .5, 1, 1 (mean .83 < .99: never); delta-F of class 1: 1 - 2x2/(2x2 + 1)
        = .2, 0, 0 (not all < .05: never); uncertainty < .05 first at budget 30 (lost .75 - .7 = .05); max_rounds:2
        stops at the third budget, 30, too.
    seed 1: 0101 every round, entropy .5, accuracy .6, .6, .7, .8. kappa and delta_f stop after the 4th budget, the
        curve's end (nothing lost, not early); uncertainty never; max_rounds:2 at 30, losing .8 - .7 = .1."""
    def point(budget, seed, predictions, uncertainty, accuracy):
        return {"arm": "expert:margin", "budget": budget, "seed": seed, "gold_labels": 4,
                "expert_queries": budget - 4, "test_accuracy": accuracy, "stop_predictions": predictions,
                "stop_uncertainty": uncertainty}
    frame = pd.DataFrame(
        [point(b, 0, p, u, a) for b, p, u, a in zip((10, 20, 30, 40), ("0011", "0111", "0111", "0111"),
                                                    (0.3, 0.2, 0.04, 0.03), (0.5, 0.6, 0.7, 0.75), strict=True)]
        + [point(b, 1, "0101", 0.5, a) for b, a in zip((10, 20, 30, 40), (0.6, 0.6, 0.7, 0.8), strict=True)]
        + [{**point(10, 0, "0000", 0.1, 0.5), "arm": "supervised"}])  # not a query arm: not judged
    summary = stopping_summary(frame, [10, 20, 30, 40], [0, 1], 2)
    assert list(summary) == ["expert:margin"]
    got = summary["expert:margin"]
    assert [s["budget"] for s in got["kappa:0.99"]["seeds"]] == [40, 40]
    assert [s["said_stop"] for s in got["kappa:0.99"]["seeds"]] == [False, True]
    assert got["kappa:0.99"]["stopped_early"] == 0 and got["delta_f:0.05"]["mean_budget"] == 40
    uncertainty = got["uncertainty:0.05"]
    assert [s["budget"] for s in uncertainty["seeds"]] == [30, 40] and uncertainty["stopped_early"] == 1
    assert uncertainty["mean_accuracy_lost"] == pytest.approx(0.025) and uncertainty["mean_labels"] == 35
    assert uncertainty["seeds"][0]["expert_queries"] == 26 and uncertainty["seeds"][0]["gold_labels"] == 4
    blind = got["max_rounds:2"]
    assert blind["stopped_early"] == 2 and blind["mean_accuracy_lost"] == pytest.approx(0.075)
    assert stopping_summary(frame.drop(columns="stop_predictions"), [10, 20, 30, 40], [0, 1], 2) == {}


def test_the_training_rule_and_the_stopping_criteria_keep_their_own_keys(tmp_path):
    """The criteria's summary was written under "stopping", the key of the training rule, so the report's
    set-up printed the criteria's whole table where it should say how every point was trained."""
    frame = pd.DataFrame([study_row(arm, budget, seed) for (arm, budget) in CORRECT for seed in SEEDS])
    rule = describe_stopping({"stopping": {"max_steps": 1000, "patience_steps": 150, "max_epochs": 40},
                              "selection": "last", "selection_share": 0.1})
    assert rule == ("trained to the cap 1000 steps (in whole epochs, at most 40), the last epoch kept "
                    "(no labels spent on selection)")
    meta = {"validation_majority_rate": 0.5, "pool_class_counts": [20, 12, 8], "label_names": NAMES,
            "stopping": rule, "selection": "last", "validation_labels": 30}
    summary = summarise(frame, LABELS, [10, 20], meta, replicates=20)
    assert summary["stopping"] == rule and "arms" in summary["stopping_criteria"]
    write_report(summary, tmp_path, [])
    setup = (tmp_path / "report.md").read_text().split("## Set-up")[1].split("##")[0]
    assert f"- training, one rule for every arm: {rule}; every point a fresh student" in setup
    assert "criteria" not in setup


def test_the_report_has_the_stopping_section(made_up, tmp_path):
    _, summary = made_up
    assert summary["stopping_criteria"]["criteria"] == ["kappa:0.99", "delta_f:0.05", "uncertainty:0.05",
                                                        "max_rounds:2"]
    assert set(summary["stopping_criteria"]["arms"]) == {"expert:margin", "expert:random"}
    write_report(summary, tmp_path, [])
    report = (tmp_path / "report.md").read_text()
    assert "## Stopping criteria, judged after the fact on each query arm's curve" in report
    assert "the validation split's inputs (the student's predictions and their entropy; no label read)" in report
    # identical checks every round: kappa 1 and delta-F 0, but with 2 budgets a window of 3 never fills
    assert "| expert:margin | kappa:0.99 | 0 of 4 | 20 | 20 (4 gold + 16 expert) | +0.000 |" in report


def test_plots_are_drawn_from_the_summary_frame_and_queries(made_up, tmp_path):
    frame, summary = made_up
    queries = tmp_path / "queries.csv"
    pd.DataFrame({"arm": ["expert:margin", "expert:margin", "expert:random"], "seed": [0, 0, 0],
                  "budget": [20, 20, 20], "round": [1, 1, 1], "row": [1, 2, 3], "gold_label": [0, 1, 0],
                  "expert_label": [0, 0, 2], "expert_entropy": [0.3, 0.4, 0.2]}).to_csv(queries, index=False)
    names = make_plots(tmp_path, summary, frame, queries)
    assert names == ["accuracy_vs_gold.png", "accuracy_vs_all_labels.png", "aulc.png", "cost_frontier.png",
                     "class_recall.png", "validation_curves.png", "query_class_balance.png"]
    assert all((tmp_path / name).stat().st_size > 1000 for name in names)
    # no queries.csv (a study without query arms): that figure is left out, not drawn empty
    assert "query_class_balance.png" not in make_plots(tmp_path, summary, frame, tmp_path / "absent.csv")


def test_the_report_says_what_the_family_of_tests_can_show_at_all():
    # 3 seeds: the smallest sign-flip p is 2/8 = 0.25 > 0.05/22 = 0.00227: no verdict is possible
    assert "no p can be below 2/2^3 = 0.2500, above Holm's first threshold 5%/22" in family_line(3, 22)
    # 10 seeds: 2/1024 = 0.00195 <= 0.00227 < 4/1024 = 0.00391: only a comparison whose ten seeds agree
    ten = family_line(10, 22)
    assert "the smallest p, 2/2^10 = 0.0020 (every seed's difference of one sign), is the only one below " \
           "Holm's first threshold 5%/22 = 0.0023" in ten and "no p can be below" not in ten
    # 10 seeds, 2 comparisons: 0.025 leaves room for p = 4/1024 and more, nothing to add
    assert family_line(10, 2).endswith("the t-intervals are per comparison, not corrected.")


def test_the_report_counts_the_precisions_the_points_trained_in():
    frame = pd.DataFrame({"arm": ["supervised", "expert:margin", "supervised", "expert:margin"], "seed": [0, 0, 1, 1],
                          "precision": ["bf16", "bf16", "bf16", "fp32"]})
    found = precisions(frame)
    assert found == {"points": {"bf16": 3, "fp32": 1}, "mixed_seeds": [1]}  # seed 1: one arm each
    assert precision_line({"precisions": found}) == "bf16 on 3 points, fp32 on 1 points"
    [warning] = precision_warning({"precisions": found})
    assert "seeds 1 mixed them across their arms, so their paired differences also hold a precision difference" \
        in warning
    by_seed = precisions(frame.assign(precision=["bf16", "bf16", "fp32", "fp32"]))  # seed 1 resumed elsewhere
    assert by_seed["mixed_seeds"] == [] and "each paired difference compares like with like" in \
        precision_warning({"precisions": by_seed})[0]
    one = precisions(frame.assign(precision="bf16"))
    assert precision_line({"precisions": one}) == "bf16 on all 4 points"
    assert precision_warning({"precisions": one}) == []
    assert precisions(frame.drop(columns="precision")) == {} and precision_line({}) is None  # an older study.csv


@pytest.mark.parametrize("recorded, forced, here_bf16, warned", [
    ("bf16", "auto", False, True),  # resumed on a machine without native bfloat16
    ("bf16", "auto", True, False),
    ("bf16", "true", False, False),  # forced: every trial trains in bf16 wherever it runs
    (None, "auto", False, False),  # a study.csv of before the column
])
def test_a_resume_that_would_mix_precisions_says_so_first(recorded, forced, here_bf16, warned, tmp_path, capsys,
                                                         monkeypatch):
    rows = {"arm": ["supervised"], "seed": [0]} | ({"precision": [recorded]} if recorded else {})
    pd.DataFrame(rows).to_csv(tmp_path / "study.csv", index=False)
    reason = "auto: this CPU has no native bfloat16" if not here_bf16 else "auto: native bfloat16, measured 2x faster"
    monkeypatch.setattr(runner.precision, "choice", lambda: runner.precision.Choice(here_bf16, here_bf16, None, reason))
    runner.warn_of_mixed_precision(tmp_path, {"template": {"recipe": {"bf16": forced}}})
    out = capsys.readouterr().out
    assert (out == "warning: students would train in fp32 here (auto: this CPU has no native bfloat16), but this "
                   "study's points so far trained in bf16: continuing here mixes precisions (the report will say so). "
                   "For one precision throughout, resume on a machine like the one it started on.\n") if warned \
        else out == ""


def test_queries_csv_gives_an_oracle_arm_its_gold_labels_whatever_an_older_study_logged(tmp_path):
    logged = {"row": [5, 9], "gold_label": [1, 2], "expert_label": [0, 0], "expert_entropy": [0.7, 0.9]}  # teachers'
    rows = [{"arm": arm, "seed": 0, "budget": 20, "round": 1, runner.QUERY_LOG: json.dumps(logged)}
            for arm in ("oracle:margin", "expert:margin")]
    runner.write_queries_csv(rows, tmp_path / "queries.csv")
    queries = pd.read_csv(tmp_path / "queries.csv").set_index("arm")
    assert queries.loc["oracle:margin", "expert_label"].tolist() == [1, 2]
    assert queries.loc["oracle:margin", "expert_entropy"].tolist() == [0.0, 0.0]
    assert queries.loc["expert:margin", "expert_label"].tolist() == [0, 0]  # the teachers' labels, as logged


DEFAULT_ARMS = ["supervised", "kd_all", "oracle:margin", "full:supervised"] + [
    f"expert:{s}" for s in ("least_confidence", "margin", "entropy", "random", "robust_least_confidence", "badge",
                            "bald", "coreset", "contrastive", "margin+balanced")]


def test_every_arm_of_the_full_study_has_its_own_look_and_pairs_share_a_colour():
    looks = plots.arm_styles(DEFAULT_ARMS + ["expert:margin@llm"])
    as_tuples = {arm: (look["color"], look["linestyle"], look["marker"]) for arm, look in looks.items()}
    assert len(set(as_tuples.values())) == len(as_tuples)  # 15 arms, 15 looks: the default cycle has 10 colours
    # the colour names how rows are chosen, the line who labels them
    assert looks["expert:margin"]["color"] == looks["oracle:margin"]["color"] == looks["expert:margin@llm"]["color"]
    assert [looks[a]["linestyle"] for a in ("expert:margin", "oracle:margin", "expert:margin@llm")] == ["-", "--", ":"]
    assert looks["supervised"]["color"] == looks["expert:random"]["color"]  # random queries take its rows
    assert (looks["supervised"]["linestyle"], looks["supervised"]["marker"]) == ("--", "D")
    assert looks["full:supervised"]["color"] == "black"
    # the ten strategies and kd_all: eleven colours, none repeated
    strategy_colours = [looks[a]["color"] for a in DEFAULT_ARMS if a.startswith("expert:")] + [looks["kd_all"]["color"]]
    assert len(set(map(tuple, strategy_colours))) == 11
    old = plots.arm_styles(["supervised", "expert:gone_strategy"])  # an old study's arm: drawn, not refused
    assert old["expert:gone_strategy"]["color"] != old["supervised"]["color"]


def test_a_reference_line_says_which_labels_the_point_used():
    def entry(gold, expert):
        return {"budget": 2003, "per_budget": {"2003": {"gold_labels": gold, "expert_queries": expert}}}

    # kd_all: the initial 50 gold labels, the teachers on the other 1,953 pool rows (not "2003 gold")
    assert plots.reference_label("kd_all", entry(50.0, 1953.0)) == "kd_all (50 gold + 1953 expert labels)"
    assert plots.reference_label("full:supervised", entry(2003.0, 0.0)) == "full:supervised (2003 gold labels)"


def test_class_balance_panels_by_hand():
    queries = pd.DataFrame({"arm": ["expert:random", "expert:margin", "expert:margin", "expert:margin"],
                            "gold_label": [0, 1, 1, 2], "expert_label": [0, 1, 0, 0]})
    names, (gold, expert) = plots.class_balance_panels(queries, [20, 12, 8], 3)
    assert names == ["pool", "expert:margin", "expert:random"]
    # pool 20/40, 12/40, 8/40; margin's gold labels 1, 1, 2 -> 0, 2/3, 1/3, its expert's 1, 0, 0 -> 2/3, 1/3, 0
    assert gold == pytest.approx(np.array([[0.5, 0.3, 0.2], [0, 2 / 3, 1 / 3], [1, 0, 0]]))
    assert expert == pytest.approx(np.array([[0.5, 0.3, 0.2], [2 / 3, 1 / 3, 0], [1, 0, 0]]))
    names, (gold, _) = plots.class_balance_panels(queries, [], 3)  # no pool counts: no pool row
    assert names == ["expert:margin", "expert:random"] and gold.shape == (2, 3)


def test_one_seed_and_no_stated_settings_still_give_a_report(made_up, tmp_path):
    """An interrupted study with one finished seed: no t-interval (shown '-'), p = 1, no verdict possible;
    settings the meta does not state are said to be unstated, prices are the defaults (all 1)."""
    frame, _ = made_up
    summary = summarise(frame[frame["seed"] == 0], LABELS, [10, 20], {}, replicates=50)
    assert {t["t_ci"] is None and t["p"] == 1.0 for t in summary["comparisons"]} == {True}
    write_report(summary, tmp_path, [])
    report = (tmp_path / "report.md").read_text()
    assert "| expert:margin | expert:random | linear | +0.150 | - | 1.0000 | 1.0000 |" in report  # (0.9 - 0.6) / 2
    assert "model selection: not stated" in report and "prices gold=1, expert=1, read=1" in report


def test_identical_arms_differ_by_exactly_zero_in_every_interval(made_up):
    """The bootstrap draws every arm and the full-data reference in one call: the same seeds and test
    examples in each replicate, so two arms with the same predictions differ by 0 in all of them."""
    frame, _ = made_up
    twin = frame[frame["arm"] == "expert:random"].assign(arm="expert:margin")
    summary = summarise(pd.concat([frame[frame["arm"] != "expert:margin"], twin]), LABELS, [10, 20], {},
                        replicates=200)
    margin = next(t for t in summary["comparisons"] if t["arm"] == "expert:margin")
    assert margin["bootstrap_ci"] == [0.0, 0.0] and margin["t_ci"] == [0.0, 0.0] and margin["p"] == 1.0


# ---------------------------------------------------------------- one code throughout, or the report says not

def test_a_code_fingerprint_names_the_training_files_that_changed(tmp_path):
    (tmp_path / "trainables" / "sub").mkdir(parents=True)
    (tmp_path / "trainables" / "loop.py").write_text("a = 1\n")
    (tmp_path / "trainables" / "sub" / "arms.py").write_text("b = 2\n")
    (tmp_path / "trainables" / "notes.txt").write_text("not code")
    before = code_version.fingerprint(tmp_path)
    assert set(before) == {"trainables/loop.py", "trainables/sub/arms.py"}
    assert before["trainables/loop.py"] == hashlib.sha256(b"a = 1\n").hexdigest()
    (tmp_path / "trainables" / "loop.py").write_text("a = 2\n")  # edited
    (tmp_path / "trainables" / "sub" / "arms.py").unlink()  # removed
    (tmp_path / "trainables" / "query.py").write_text("")  # added
    assert code_version.changed(before, code_version.fingerprint(tmp_path)) == [
        "trainables/loop.py", "trainables/query.py", "trainables/sub/arms.py"]
    assert code_version.changed(before, before) == []


def test_a_resumed_study_records_and_reports_the_training_code_that_changed(monkeypatch, made_up):
    monkeypatch.setattr(code_version, "fingerprint", lambda: {"trainables/loop.py": "new", "trainables/x.py": "h"})
    record = {"code": {"trainables/loop.py": "old", "trainables/x.py": "h"}, "code_changes": ["trainables/y.py"]}
    assert runner._note_code_changes(record)
    assert record["code_changes"] == ["trainables/loop.py", "trainables/y.py"]  # earlier changes are kept
    unchanged = {"code": {"trainables/loop.py": "new", "trainables/x.py": "h"}}
    assert not runner._note_code_changes(unchanged) and unchanged["code_changes"] == []
    made_before_fingerprints = {}
    assert not runner._note_code_changes(made_before_fingerprints) and "code_changes" not in made_before_fingerprints
    _, summary = made_up
    setup = setup_lines({**summary, "code_changes": ["trainables/loop.py"]})
    assert any("training code changed" in line and "trainables/loop.py" in line for line in setup)
    assert not any("training code" in line for line in setup_lines(summary))


def test_a_finished_study_resumed_to_rewrite_its_report_claims_no_code_change(monkeypatch):
    """Resuming a study whose trials all ended trains nothing: the code of that run must not be listed as having
    trained its points (it was, when the full study's report was to be rewritten by newer code)."""
    plan = {"arms": ["supervised", "expert:margin", "kd_all"], "seeds": [0, 1]}  # 3 arms x 2 seeds = 6 trials
    assert runner.all_trials_ended({"plan": plan, "runs": [{"trials_ended": 2}, {"trials_ended": 6}]})
    assert not runner.all_trials_ended({"plan": plan, "runs": [{"trials_ended": 6}, {"trials_ended": 5}]})
    assert not runner.all_trials_ended({"plan": plan, "runs": []})  # interrupted before its first run ended
    assert not runner.all_trials_ended({"plan": plan})  # made before runs were logged: assume unfinished


def test_a_study_over_several_runs_adds_their_wall_times(tmp_path, made_up):
    """A study continued over several sessions has no single wall time: each run (start or --resume) is logged."""
    (tmp_path / runner.STUDY_FILE).write_text(json.dumps({"plan": {}}))
    runner.log_run(tmp_path, 0.0, 3600.04, 2)
    runner.log_run(tmp_path, 7200.0, 1800.0, 5)
    runs = json.loads((tmp_path / runner.STUDY_FILE).read_text())["runs"]
    assert [(r["seconds"], r["trials_ended"]) for r in runs] == [(3600.0, 2), (1800.0, 5)]
    assert json.loads((tmp_path / runner.STUDY_FILE).read_text())["plan"] == {}  # the rest of the record is kept
    _, summary = made_up
    setup = setup_lines({**summary, "runs": runs})
    assert any(line.startswith("wall time: 1.50 h over 2 run(s)") for line in setup)  # (3600 + 1800) / 3600


def test_a_report_of_a_study_still_running_says_so_first():
    line, = progress_lines({"trials_ended": 26, "trials_planned": 140, "seeds": [0, 1]})
    assert line == ("**In progress: 26 of 140 trials have ended.** What follows compares the seeds every arm has "
                    "finished (0, 1): an interim look, not the study's answer.")
    assert progress_lines({"trials_ended": 140, "trials_planned": 140, "seeds": [0]}) == []
    assert progress_lines({"seeds": [0]}) == []  # a summary written before the count: nothing claimed
