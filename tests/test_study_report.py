"""The budget study's report half (issue 22): flags, costs, the Pareto frontier, the recommendation per
expert price, Holm, the t-interval, the sign-flip test, the log-axis AULC and the stays-above rule, each
against values worked out by hand in the comments; then a small made-up study through summarise,
write_report and make_plots."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from trainables.errors import UsageError
from tuning.budget_study import costs, stats

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
    arms = ["expert:margin", "expert:random", "kd_all", "oracle:margin", "supervised"]
    assert stats.comparison_pairs(arms) == [("expert:margin", "expert:random"), ("oracle:margin", "supervised"),
                                            ("expert:random", "supervised"), ("kd_all", "supervised")]
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


def test_class_recall_and_query_shares_by_hand():
    # right_on(8): wrong on examples 8 and 9 (both neg): neg 3/5, pos 3/3, amb 2/2; all-neg: 1, 0, 0
    recall = stats.class_recall([right_on(8), np.zeros(10, dtype=int)], LABELS, 3)
    assert recall == pytest.approx([(0.6 + 1) / 2, 0.5, 0.5])
    # counts 1+3+0, 2+0+0, 0+1+0 = 4, 2, 1 of 7 (an empty cell: an arm that queried nothing that round)
    assert stats.class_shares(["1 2 0", "3 0 1", ""], 3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])


# ---------------------------------------------------------------- costs, by hand

def test_parse_prices():
    assert costs.parse_prices("gold=1,expert=0.1,read=0.01") == {"gold": 1.0, "expert": 0.1, "read": 0.01}
    assert costs.parse_prices(None) == costs.parse_prices("") == {"gold": 1.0, "expert": 1.0, "read": 1.0}
    assert costs.parse_prices(" expert = 0.2 ") == {"gold": 1.0, "expert": 0.2, "read": 0.2}  # read follows


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
