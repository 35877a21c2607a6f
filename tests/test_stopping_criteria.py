"""trainables/stopping_criteria.py on sequences worked out by hand, the settings' parsing, and bad values.
tests/test_small_text.py checks every decision against small-text 1.4.1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.stopping_criteria import (
    Check,
    DeltaFScore,
    KappaAverage,
    MaxRounds,
    OverallUncertainty,
    check_of,
    cohen_kappa,
    delta_f,
    first_stop,
    parse_stop,
)


def checks(*predictions: list[int], classes: int = 2) -> list[Check]:
    return [Check(np.array(p), 0.5, classes) for p in predictions]


def test_cohen_kappa_by_hand():
    # a = 0 0 1 1, b = 0 1 1 1: p_o = 3/4; class shares a (1/2, 1/2), b (1/4, 3/4): p_e = 1/8 + 3/8 = 1/2;
    # kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2.
    assert cohen_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])) == pytest.approx(0.5)
    assert cohen_kappa(np.array([2, 2]), np.array([2, 2])) == 1.0  # identical: 1, not 0 / 0
    assert cohen_kappa(np.array([0, 0]), np.array([1, 1])) == 0.0  # p_o = 0, p_e = 0


def test_kappa_average_by_hand():
    # kappas between consecutive rounds: 1/2 (as above), 1, 1.
    rounds = checks([0, 0, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1])
    # window 2: after round 2 the mean of (1/2, 1) = 3/4 >= 0.6 stops; round 1 has only one kappa.
    assert KappaAverage(0.6, window=2).decisions(rounds) == [False, False, True, True]
    assert KappaAverage(0.8, window=2).decisions(rounds) == [False, False, False, True]  # mean(1, 1) = 1
    # window 3 (the default): after round 3, (1/2 + 1 + 1) / 3 = 0.83 < 0.99: it never stops on these rounds
    assert first_stop(KappaAverage(0.99), rounds) is None
    assert first_stop(KappaAverage(0.8), rounds) == 3


def test_delta_f_by_hand():
    # Two classes, the positive class 1: old 1 1 0 0, new 1 0 1 0: both 1 (row 0), changed 2 (rows 1, 2):
    # 1 - 2 x 1 / (2 x 1 + 2) = 0.5.
    assert delta_f(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]), 2) == pytest.approx(0.5)
    # Three classes: the mean over classes of 1 - F1 between the rounds. old 0 1 2 2, new 0 1 2 1:
    # class 0: both 1, changed 0 -> 0; class 1: both 1, changed 1 (row 3) -> 1 - 2/3; class 2: the same -> 1/3.
    assert delta_f(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]), 3) == pytest.approx(2 / 9)
    assert delta_f(np.array([0, 0]), np.array([0, 0]), 2) == 0.0  # no positive in either round: unchanged


def test_delta_f_score_by_hand():
    # deltas: 0.5 (as above), then 0 (no change), then 0
    rounds = checks([1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0], [1, 0, 1, 0])
    assert DeltaFScore(0.05, window=2).decisions(rounds) == [False, False, False, True]
    assert DeltaFScore(0.6, window=2).decisions(rounds) == [False, False, True, True]  # 0.5 < 0.6 too


def test_overall_uncertainty_by_hand():
    # rows [.5, .5] (entropy ln 2, normalised 1) and [1, 0] (0): mean 0.5
    check = check_of(np.array([[0.5, 0.5], [1.0, 0.0]]))
    assert check.uncertainty == pytest.approx(0.5) and check.predictions.tolist() == [0, 0]
    # Four classes: [.25] * 4 is ln 4 / ln 4 = 1; [.5, .5, 0, 0] is ln 2 / ln 4 = 0.5.
    assert check_of(np.array([[0.5, 0.5, 0.0, 0.0]])).uncertainty == pytest.approx(math.log(2) / math.log(4))
    assert OverallUncertainty(0.5).decisions([check]) == [False]  # strictly below, as small-text
    assert OverallUncertainty(0.51).decisions([check]) == [True]


def test_max_rounds_stops_after_that_many_query_rounds():
    # check 0 is the initial pool's student; check i follows query round i
    assert MaxRounds(2).decisions(checks([0], [0], [0], [0])) == [False, False, True, True]


@pytest.mark.parametrize("text, expected", [
    ("kappa:0.99", KappaAverage(0.99, 3)), ("kappa:0.9:5", KappaAverage(0.9, 5)),
    ("delta_f:0.05", DeltaFScore(0.05, 3)), (" uncertainty:0.1 ", OverallUncertainty(0.1)),
    ("max_rounds:4", MaxRounds(4)), ("", None),
])
def test_settings_parse_and_print_back(text, expected):
    assert parse_stop(text) == expected
    if expected is not None:
        assert parse_stop(expected.spec) == expected


@pytest.mark.parametrize("text, message", [
    ("kappa", "unknown stopping criterion"), ("kappa:0.9:3:1", "unknown stopping criterion"),
    ("patience:3", "unknown stopping criterion"), ("kappa:high", "not a number"),
    ("kappa:1.5", r"kappa stopping threshold must lie in \(-1.0, 1.0\]"),
    ("kappa:0.9:0", "window must be a whole number >= 1"), ("delta_f:0", "delta_f stopping threshold"),
    ("uncertainty:1", r"must lie in \[0.0, 1.0\)"), ("max_rounds:0", "max_rounds must be"),
    ("max_rounds:1.5", "not a number"),
])
def test_bad_settings_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        parse_stop(text)
    with pytest.raises(UsageError, match=message):
        TrialConfig(method="active_loop", stop=text)


def test_a_check_needs_two_classes():
    with pytest.raises(UsageError, match="classes >= 2"):
        check_of(np.ones((3, 1)))
