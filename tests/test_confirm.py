"""tuning/analysis/confirm.py's statistics on predictions worked out by hand: the paired bootstrap over seeds and
test examples (tuning/analysis/bootstrap.py), macro-F1 and per-class recall beside accuracy, and confirm.csv's rows."""

import math

import numpy as np
import pytest

from trainables import metrics as m
from tuning.analysis.confirm import Confirmed, macro_f1, per_class_recall, seed_rows, summarise, verdict

COUNTS = {m.LABELS_USED: 96, m.TEACHER_LABELS: 0, m.EXPERT_QUERIES: 0}


def confirmed(method: str, predictions, labels, names=("neg", "pos")) -> Confirmed:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    reports = [{**COUNTS, m.TEST_ACCURACY: float((p == labels).mean()), m.TEST_MACRO_F1: 0.0, m.VAL_ACCURACY: 0.5}
               for p in predictions]
    return Confirmed(method, [1000 + i for i in range(len(predictions))], reports, predictions, labels, names)


LABELS = [0, 0, 1, 1]
SUPERVISED = [[0, 0, 0, 1], [1, 0, 1, 1]]  # 3 of 4 right on each seed


def test_verdict_reads_the_interval_of_a_difference():
    assert verdict([0.01, 0.05]) == "better"
    assert verdict([-0.05, -0.01]) == "worse"
    assert verdict([-0.01, 0.02]) == "within noise" and verdict([0.0, 0.0]) == "within noise"


def test_per_class_recall_and_macro_f1_by_hand():
    run = confirmed("supervised", SUPERVISED, LABELS)
    # seed 0: recall neg 2/2, pos 1/2; seed 1: neg 1/2, pos 2/2 -> 0.75 each on average
    assert per_class_recall(run) == pytest.approx({"neg": 0.75, "pos": 0.75})
    # seed 0: F1 neg = 2 * (2/3 * 1) / (2/3 + 1) = 0.8, pos = 2 * (1 * 1/2) / (3/2) = 2/3; seed 1 mirrored
    assert macro_f1(run) == pytest.approx([(0.8 + 2 / 3) / 2] * 2)


def test_summary_points_and_a_difference_by_hand():
    runs = {"supervised": confirmed("supervised", SUPERVISED, LABELS),
            "kd": confirmed("kd", [LABELS, LABELS], LABELS)}
    rows = {row["method"]: row for row in summarise(runs, replicates=200)}
    assert rows["supervised"][m.TEST_ACCURACY]["mean"] == pytest.approx(0.75)
    assert rows["kd"][m.TEST_ACCURACY]["mean"] == pytest.approx(1.0)
    assert rows["kd"][m.TEST_ACCURACY]["ci"] == pytest.approx([1.0, 1.0])  # right on every example, every seed
    assert rows["kd"]["difference"]["mean"] == pytest.approx(0.25)
    assert rows["supervised"][m.TEST_MACRO_F1] == pytest.approx({"mean": (0.8 + 2 / 3) / 2, "sd": 0.0})
    assert "difference" not in rows["supervised"]
    low, high = rows["supervised"][m.TEST_ACCURACY]["ci"]
    assert 0 <= low <= 0.75 <= high <= 1


def test_identical_methods_differ_by_exactly_zero():
    runs = {"supervised": confirmed("supervised", SUPERVISED, LABELS), "kd": confirmed("kd", SUPERVISED, LABELS)}
    kd = summarise(runs, replicates=200)[1]
    assert kd["difference"] == {"mean": 0.0, "ci": [0.0, 0.0]} and kd["verdict"] == "within noise"


def test_the_intervals_count_the_test_set_not_only_the_seeds():
    """Three seeds that agree exactly: a t-interval over seeds has width 0 and called a 2-point
    difference "better". On 500 test examples the test set's own sampling error remains: at accuracy
    0.8 about 1.96 * sqrt(0.8 * 0.2 / 500) = 0.035, and a difference of +0.02 made of 30 examples won and
    20 lost has a standard error of sqrt(50) / 500 = 0.014: within noise."""
    labels = np.zeros(500, dtype=int)
    base = np.ones(500, dtype=int)
    base[:400] = 0  # supervised right on the first 400 (0.8)
    better = base.copy()
    better[400:430] = 0  # kd also right on 30 more ...
    better[:20] = 1  # ... and wrong on 20 supervised got right: 410 (0.82)
    runs = {"supervised": confirmed("supervised", [base] * 3, labels, ("a", "b")),
            "kd": confirmed("kd", [better] * 3, labels, ("a", "b"))}
    supervised, kd = summarise(runs)
    low, high = supervised[m.TEST_ACCURACY]["ci"]
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(0.8 * 0.2 / 500), rel=0.15)
    assert kd["difference"]["mean"] == pytest.approx(0.02)
    assert kd["verdict"] == "within noise"
    width = kd["difference"]["ci"][1] - kd["difference"]["ci"][0]
    assert width / 2 == pytest.approx(1.96 * math.sqrt(50) / 500, rel=0.15)


def test_methods_on_other_test_sets_are_not_paired():
    runs = {"supervised": confirmed("supervised", SUPERVISED, LABELS),
            "kd": confirmed("kd", [[0, 1, 1, 0, 1]] * 2, [0, 1, 1, 1, 1])}
    rows = summarise(runs, replicates=100)
    assert "difference" not in rows[1] and rows[1][m.TEST_ACCURACY]["mean"] == pytest.approx(0.8)


def test_confirm_csv_rows_hold_each_seeds_predictions_and_correctness():
    rows = seed_rows({"supervised": confirmed("supervised", SUPERVISED, LABELS)})
    assert [(r["method"], r["seed"]) for r in rows] == [("supervised", 1000), ("supervised", 1001)]
    assert [r["test_predictions"] for r in rows] == ["0001", "1011"]
    assert [r["test_correct"] for r in rows] == ["1101", "0111"]
    assert [r[m.TEST_ACCURACY] for r in rows] == [0.75, 0.75]
