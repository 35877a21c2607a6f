"""Unit tests for trainables/query.py against values worked out by hand with `math`."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from trainables.errors import UsageError
from trainables.query import (
    BALANCED_DESCRIPTION,
    BASE_STRATEGIES,
    NEEDS,
    READS_EXPERT,
    SCORING_STRATEGIES,
    STRATEGIES,
    STRATEGY_DESCRIPTIONS,
    describe,
    needs,
    select,
    teacher_disagreement,
    uncertainty,
)

P = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])


def ref_entropy(row: list[float]) -> float:
    return -sum(p * math.log(p) for p in row if p > 0)


# --- scores ---


def test_least_confidence_by_hand():
    assert uncertainty(P, "least_confidence") == pytest.approx([0.5, 0.1, 0.66])


def test_margin_by_hand():
    # -(p1 - p2): -(0.5 - 0.3), -(0.9 - 0.05), -(0.34 - 0.33)
    assert uncertainty(P, "margin") == pytest.approx([-0.2, -0.85, -0.01])
    # The two largest are found wherever they sit in the row.
    assert uncertainty(np.array([[0.1, 0.2, 0.7]]), "margin") == pytest.approx([-0.5])


def test_entropy_by_hand_with_zero_probabilities():
    expected = [ref_entropy(row) for row in P.tolist()]
    assert uncertainty(P, "entropy") == pytest.approx(expected)
    # 0 * log 0 = 0: a one-hot row has entropy 0, [0.5, 0.5, 0] has log 2.
    assert uncertainty(np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]), "entropy") == pytest.approx(
        [0.0, math.log(2)]
    )


def test_strategies_can_disagree():
    # Row 0 [0.5, 0.5, 0]: margin 0 (least sure by margin); row 1 [0.4, 0.3, 0.3]: LC 0.6, entropy higher.
    probs = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3]])
    assert select(probs, 1, "margin").tolist() == [0]
    assert select(probs, 1, "least_confidence").tolist() == [1]
    assert select(probs, 1, "entropy").tolist() == [1]


# --- select ---


@pytest.mark.parametrize("strategy", ["least_confidence", "margin", "entropy"])
def test_select_takes_highest_scores_in_order(strategy):
    # On P all three rank row 2 (near uniform) first, then row 0, then row 1 (sure).
    assert select(P, 2, strategy).tolist() == [2, 0]
    assert select(P, 3, strategy).tolist() == [2, 0, 1]


def test_ties_go_to_the_lower_index():
    # Scores 0.5, 0.25, 0.5, 0.5 (exact in binary): the three tied rows come in index order.
    probs = np.array([[0.5, 0.5], [0.75, 0.25], [0.5, 0.5], [0.5, 0.5]])
    assert select(probs, 2, "least_confidence").tolist() == [0, 2]
    assert select(probs, 3, "margin").tolist() == [0, 2, 3]
    assert select(probs, 4, "entropy").tolist() == [0, 2, 3, 1]


@pytest.mark.parametrize("strategy", SCORING_STRATEGIES)
def test_permutations_of_one_distribution_tie_and_go_lowest_index_first(strategy):
    # The six orderings of [0.7, 0.2, 0.1] are equally uncertain by every rule, but their entropies, summed in
    # another order, differ by ~1e-16: without rounding, rows 1, 3, 4, 5 came before rows 0 and 2.
    permuted = np.array(list(itertools.permutations([0.7, 0.2, 0.1])))
    uniform = np.full((1, 3), 1 / 3)  # less sure than all of them by every rule: first
    probs = np.vstack([permuted, uniform])
    assert select(probs, 7, strategy).tolist() == [6, 0, 1, 2, 3, 4, 5]
    assert select(probs, 3, strategy).tolist() == [6, 0, 1]


def test_the_permuted_rows_really_differ_in_floating_point():
    # Guards the test above: it exercises rounding noise only while the raw entropies are not all equal.
    entropies = uncertainty(np.array(list(itertools.permutations([0.7, 0.2, 0.1]))), "entropy")
    assert len(set(entropies.tolist())) > 1
    assert entropies.max() - entropies.min() < 1e-15


def every_input(rng: np.random.Generator, pool: int, classes: int = 4, dim: int = 5, labelled: int = 6) -> dict:
    """select's keyword inputs for every strategy (query.NEEDS), drawn at random."""
    return {"teacher_probs": rng.dirichlet(np.ones(classes), size=(3, pool)),
            "mc_probs": rng.dirichlet(np.ones(classes), size=(4, pool)),
            "embeddings": rng.normal(size=(pool, dim)), "labelled_embeddings": rng.normal(size=(labelled, dim)),
            "labelled_probs": rng.dirichlet(np.ones(classes), size=labelled)}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_n_equal_to_pool_returns_every_index_distinct_int64(strategy):
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.ones(4), size=30)
    inputs = every_input(rng, 30)
    got = select(probs, 30, strategy, seed=1, **inputs)
    assert got.dtype == np.int64
    assert sorted(got.tolist()) == list(range(30))
    part = select(probs, 12, strategy, seed=1, **inputs)
    assert len(set(part.tolist())) == 12 and part.min() >= 0 and part.max() < 30
    assert np.array_equal(part, select(probs, 12, strategy, seed=1, **inputs))  # deterministic given the seed


def test_random_is_reproducible_by_seed_and_varies_with_it():
    probs = np.full((100, 2), 0.5)
    first = select(probs, 10, "random", seed=3)
    assert np.array_equal(first, select(probs, 10, "random", seed=3))
    assert not np.array_equal(first, select(probs, 10, "random", seed=4))
    expected = np.random.default_rng(3).choice(100, size=10, replace=False)
    assert first.tolist() == expected.tolist()


@pytest.mark.parametrize("n, message", [(0, "n must be > 0, got 0"), (-1, "n must be > 0, got -1"),
                                        (4, "cannot select n=4 examples from a pool of 3"),
                                        (2.0, "n must be an integer, got 2.0"),
                                        (True, "n must be an integer, got True")])
def test_bad_n_raises(n, message):
    with pytest.raises(UsageError) as raised:
        select(P, n, "least_confidence")
    assert str(raised.value) == message


def test_unknown_strategy_raises():
    with pytest.raises(UsageError, match="unknown query strategy"):
        select(P, 1, "greedy")
    with pytest.raises(UsageError, match="unknown query strategy"):
        select(P, 1, "margin+balanced+balanced")
    with pytest.raises(UsageError, match="unknown uncertainty strategy"):
        uncertainty(P, "random")


@pytest.mark.parametrize(
    "probs",
    [
        np.array([0.5, 0.5]),  # 1-D
        np.array([[0.5, np.nan]]),
        np.array([[0.5, np.inf]]),
        np.array([[1.5, -0.5]]),  # logits, not probabilities
    ],
)
def test_bad_probs_raise(probs):
    with pytest.raises(UsageError, match="probs"):
        uncertainty(probs, "least_confidence")


def test_margin_needs_two_classes():
    with pytest.raises(UsageError, match="2 classes"):
        uncertainty(np.ones((3, 1)), "margin")


# --- teacher disagreement and the robust strategy ---


def test_teacher_disagreement_by_hand():
    teachers = np.array(
        [
            [[1.0, 0.0], [0.3, 0.7], [0.5, 0.5]],
            [[0.0, 1.0], [0.3, 0.7], [1.0, 0.0]],
        ]
    )
    # Row 0: opposite certainties -> H([0.5, 0.5]) - 0 = log 2. Row 1: agreement -> 0.
    # Row 2: H([0.75, 0.25]) - (log 2 + 0) / 2.
    row2 = ref_entropy([0.75, 0.25]) - math.log(2) / 2
    assert teacher_disagreement(teachers) == pytest.approx([math.log(2), 0.0, row2])
    assert teacher_disagreement(teachers[:1]) == pytest.approx([0.0, 0.0, 0.0])


# Student least-confidence scores 0.5, 0.4, 0.3, 0.2, 0.1: plain LC ranks 0, 1, 2, 3, 4.
STUDENT = np.array([[0.5, 0.5], [0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]])
AGREE = [0.9, 0.1]
# Teachers fight hardest over row 0 (log 2), a little over row 3, and agree elsewhere.
TEACHERS = np.array(
    [
        [[1.0, 0.0], AGREE, AGREE, [0.5, 0.5], AGREE],
        [[0.0, 1.0], AGREE, AGREE, [1.0, 0.0], AGREE],
    ]
)


def test_robust_skips_the_disputed_example_least_confidence_picks_first():
    assert select(STUDENT, 2, "least_confidence").tolist() == [0, 1]
    # skip_fraction 0.2 of 5 -> skip 1 example: row 0, the most disputed.
    got = select(STUDENT, 2, "robust_least_confidence", teacher_probs=TEACHERS, skip_fraction=0.2)
    assert got.tolist() == [1, 2]


def test_robust_fills_up_with_least_disputed_skipped_examples():
    # skip_fraction 0.4 -> skip rows 0 and 3; n=4 leaves 3 kept (1, 2, 4) + the less disputed skipped (3).
    got = select(STUDENT, 4, "robust_least_confidence", teacher_probs=TEACHERS, skip_fraction=0.4)
    assert got.tolist() == [1, 2, 4, 3]
    got = select(STUDENT, 5, "robust_least_confidence", teacher_probs=TEACHERS, skip_fraction=0.4)
    assert got.tolist() == [1, 2, 4, 3, 0]


def test_robust_never_skips_examples_the_teachers_agree_on():
    # skip_fraction 0.8 asks for 4 skips but only rows 0 and 3 show any disagreement.
    got = select(STUDENT, 3, "robust_least_confidence", teacher_probs=TEACHERS, skip_fraction=0.8)
    assert got.tolist() == [1, 2, 4]


def test_robust_with_one_teacher_equals_least_confidence():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=40)
    one_teacher = rng.dirichlet(np.ones(3), size=(1, 40))
    for n in (1, 7, 40):
        expected = select(probs, n, "least_confidence")
        got = select(probs, n, "robust_least_confidence", teacher_probs=one_teacher, skip_fraction=0.5)
        assert np.array_equal(got, expected)
        # A 2-D teacher array counts as one teacher too.
        got_2d = select(probs, n, "robust_least_confidence", teacher_probs=one_teacher[0], skip_fraction=0.5)
        assert np.array_equal(got_2d, expected)


def test_robust_bad_arguments_raise():
    with pytest.raises(UsageError, match="teacher_probs"):
        select(STUDENT, 2, "robust_least_confidence")
    with pytest.raises(UsageError, match="does not match"):
        select(STUDENT, 2, "robust_least_confidence", teacher_probs=TEACHERS[:, :4])
    with pytest.raises(UsageError, match="skip_fraction"):
        select(STUDENT, 2, "robust_least_confidence", teacher_probs=TEACHERS, skip_fraction=1.5)


def test_every_strategy_is_described_and_every_base_has_a_balanced_form():
    assert set(STRATEGY_DESCRIPTIONS) == set(BASE_STRATEGIES)
    assert set(STRATEGIES) == set(BASE_STRATEGIES) | {name + "+balanced" for name in BASE_STRATEGIES}
    assert all(describe(name).endswith(".") for name in STRATEGIES)
    assert describe("bald+balanced").startswith(STRATEGY_DESCRIPTIONS["bald"])


def test_the_readme_lists_every_strategy_as_the_code_describes_it():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for name in BASE_STRATEGIES:
        assert f"- `{name}`: {STRATEGY_DESCRIPTIONS[name]}" in readme, name
    assert f"- `<strategy>+balanced` (e.g. `margin+balanced`): {BALANCED_DESCRIPTION}" in readme


def test_needs_and_reads_expert_are_coherent_with_the_names():
    assert set(NEEDS) <= set(BASE_STRATEGIES)
    assert needs("margin") == {"probs"} and needs("coreset+balanced") == needs("coreset")
    assert needs("random") == frozenset() and needs("random+balanced") == {"probs"}  # quotas read predictions
    assert set(READS_EXPERT) == {"robust_least_confidence", "robust_least_confidence+balanced"}
