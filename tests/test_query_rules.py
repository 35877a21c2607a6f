"""The query strategies of issue 24 (trainables/query_rules.py, through query.select) on values worked out by
hand, and their bad inputs. tests/test_small_text.py checks the same rules against small-text."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainables.errors import UsageError
from trainables.query import select
from trainables.query_rules import (
    balanced_pick,
    bald_scores,
    contrastive_scores,
    coreset_order,
    gradient_embeddings,
    kmeans_pp_order,
)


def h(probs: list[float]) -> float:
    """Entropy in nats, by hand."""
    return -sum(p * math.log(p) for p in probs if p > 0)


# ---------------------------------------------------------------- BALD

def test_bald_by_hand_disagreement_not_uncertainty():
    # Two dropout passes over three rows:
    # row 0 flips between [1, 0] and [0, 1]: H(mean) = H(.5, .5) = ln 2, mean H = 0 -> ln 2 = 0.6931;
    # row 1 says [.5, .5] both times: ln 2 - ln 2 = 0 (unsure, but the weights agree: nothing to learn);
    # row 2 says [.9, .1] then [.5, .5]: H(.7, .3) - (H(.9, .1) + ln 2) / 2 = 0.6109 - 0.5091 = 0.1017.
    mc = np.array([[[1.0, 0.0], [0.5, 0.5], [0.9, 0.1]],
                   [[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]]])
    expected = [math.log(2), 0.0, h([0.7, 0.3]) - (h([0.9, 0.1]) + math.log(2)) / 2]
    assert bald_scores(mc) == pytest.approx(expected)
    assert expected[2] == pytest.approx(0.101749, abs=1e-6)
    mean = mc.mean(axis=0)
    assert select(mean, 2, "bald", mc_probs=mc).tolist() == [0, 2]
    assert select(mean, 1, "least_confidence").tolist() == [0]  # ties 0 and 1 at 0.5: the lower index
    assert select(mean, 2, "entropy").tolist() == [0, 1]  # entropy wants row 1, BALD does not


def test_bald_is_zero_when_every_pass_agrees():
    mc = np.repeat(np.random.default_rng(0).dirichlet(np.ones(4), size=(1, 6)), 5, axis=0)
    assert np.allclose(bald_scores(mc), 0.0)


# ---------------------------------------------------------------- BADGE

def test_gradient_embedding_by_hand():
    # p = [.7, .2, .1], predicted class 0, h = [1, 2]: (p - onehot) = [-.3, .2, .1], times h, class-major.
    got = gradient_embeddings(np.array([[0.7, 0.2, 0.1]]), np.array([[1.0, 2.0]]))
    assert got == pytest.approx(np.array([[-0.3, -0.6, 0.2, 0.4, 0.1, 0.2]]))
    # Multiple choice: one input per option and one shared weight row: sum_c (p_c - onehot_c) h_c
    # = -.3 [1, 0] + .2 [0, 1] + .1 [1, 1] = [-.2, .3].
    options = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    assert gradient_embeddings(np.array([[0.7, 0.2, 0.1]]), options) == pytest.approx(np.array([[-0.2, 0.3]]))


def test_badge_always_takes_the_rows_with_large_gradients_whatever_the_seed():
    # Rows 0-5 are predicted with certainty ([1, 0]): their gradient embedding is exactly 0. Rows 6 and 7 are
    # [.5, .5] with far-apart inputs: embeddings [-5, 0, 5, 0] and [0, -5, 0, 5]. k-means++ with 3 centres:
    # whichever row comes first, the others are drawn in proportion to D^2, which is 0 for every zero row once
    # one centre is a zero row, and scikit-learn's greedy trial keeps the draw that lowers the potential most:
    # for every seed the picks are rows 6 and 7 and one zero row.
    probs = np.array([[1.0, 0.0]] * 6 + [[0.5, 0.5]] * 2)
    inputs = np.array([[1.0, 1.0]] * 6 + [[10.0, 0.0], [0.0, 10.0]])
    for seed in range(10):
        chosen = select(probs, 3, "badge", seed=seed, embeddings=inputs)
        assert {6, 7} <= set(chosen.tolist()) and len(set(chosen.tolist())) == 3, seed


def test_kmeans_pp_fills_with_seeded_rows_once_every_row_is_a_centre():
    # Four identical points: k-means++ finds nothing to draw after the first and repeats it; the rest are the
    # other rows in a seeded order, so the rows stay distinct and the same for the same seed.
    points = np.zeros((4, 2))
    first = kmeans_pp_order(points, 4, seed=3)
    assert sorted(first.tolist()) == [0, 1, 2, 3] and np.array_equal(first, kmeans_pp_order(points, 4, seed=3))


# ---------------------------------------------------------------- core-set

def test_coreset_by_hand():
    # Labelled row at [1, 0]. Pool (unit vectors): a [0, 1] at sqrt 2 = 1.414, b [-1, 0] at 2, c [.8, .6] at
    # sqrt(.2^2 + .6^2) = 0.632. First pick b (farthest); then a's nearest centre is min(1.414, |a - b| = 1.414),
    # c's min(0.632, |c - b| = 1.897) = 0.632: a. Then c.
    pool = np.array([[0.0, 1.0], [-1.0, 0.0], [0.8, 0.6]])
    labelled = np.array([[1.0, 0.0]])
    assert coreset_order(pool, labelled, 3, seed=0).tolist() == [1, 0, 2]
    # Embeddings are L2-normalised first: scaling a row does not move it.
    assert coreset_order(pool * [[5.0], [0.1], [3.0]], labelled * 7, 3, seed=0).tolist() == [1, 0, 2]
    probs = np.full((3, 2), 0.5)
    assert select(probs, 2, "coreset", embeddings=pool, labelled_embeddings=labelled).tolist() == [1, 0]


def test_coreset_ties_go_to_the_lower_index_and_without_labelled_rows_the_first_pick_is_seeded():
    pool = np.array([[0.0, 1.0], [0.0, -1.0], [0.0, -1.0]])
    assert coreset_order(pool, np.array([[1.0, 0.0]]), 1, seed=0).tolist() == [0]  # all at sqrt 2: row 0
    alone = coreset_order(pool, np.empty((0, 2)), 2, seed=5)
    assert alone[0] == np.random.default_rng(5).integers(3)
    assert np.array_equal(alone, coreset_order(pool, np.empty((0, 2)), 2, seed=5))


# ---------------------------------------------------------------- contrastive

def test_contrastive_by_hand():
    # Labelled rows: L0 at [1, 0], predicted [.9, .1]; L1 at [0, 1], predicted [.1, .9].
    # Pool row A at [1, .1] (next to L0), predicted [.2, .8]: it contradicts its neighbour;
    # pool row B at [.1, 1] (next to L1), predicted [.1, .9]: it agrees with its neighbour.
    labelled, labelled_probs = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.9, 0.1], [0.1, 0.9]])
    pool, probs = np.array([[1.0, 0.1], [0.1, 1.0]]), np.array([[0.2, 0.8], [0.1, 0.9]])
    # One neighbour: KL(L0 || A) = .9 ln(.9/.2) + .1 ln(.1/.8) = 1.3537 - 0.2079 = 1.1457; KL(L1 || B) = 0.
    kl_l0_a = 0.9 * math.log(0.9 / 0.2) + 0.1 * math.log(0.1 / 0.8)
    assert contrastive_scores(probs, pool, labelled, labelled_probs, neighbours=1) == pytest.approx([kl_l0_a, 0.0])
    assert kl_l0_a == pytest.approx(1.145725, abs=1e-6)
    # Two neighbours (select's 10, capped at the 2 labelled rows): A: (1.1457 + KL(L1 || A) = .0367) / 2 = 0.5912;
    # B: (KL(L0 || B) = .9 ln 9 + .1 ln(1/9) = 1.7578 + 0) / 2 = 0.8789. Every row is everyone's neighbour: B wins.
    kl_l1_a = 0.1 * math.log(0.1 / 0.2) + 0.9 * math.log(0.9 / 0.8)
    kl_l0_b = 0.9 * math.log(9) + 0.1 * math.log(1 / 9)
    assert contrastive_scores(probs, pool, labelled, labelled_probs) == pytest.approx(
        [(kl_l0_a + kl_l1_a) / 2, kl_l0_b / 2])
    assert select(probs, 1, "contrastive", embeddings=pool, labelled_embeddings=labelled,
                  labelled_probs=labelled_probs).tolist() == [1]


def test_contrastive_is_infinite_where_the_row_rules_out_a_neighbours_class():
    scores = contrastive_scores(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]),
                                np.array([[0.5, 0.5]]))
    assert scores.tolist() == [math.inf]


# ---------------------------------------------------------------- +balanced

# Least confidence (1 - max p): r0 .60, r1 .55, r3 .52, r2 .50, r4 .40, r5 .20; predicted classes 0, 0, 0, 1, 2, 1.
BALANCE = np.array([[0.40, 0.35, 0.25], [0.45, 0.30, 0.25], [0.50, 0.30, 0.20],
                    [0.30, 0.48, 0.22], [0.20, 0.20, 0.60], [0.10, 0.80, 0.10]])


def test_balanced_by_hand():
    assert select(BALANCE, 3, "least_confidence").tolist() == [0, 1, 3]  # two of class 0
    # Candidates: the 3 x 3 = 9 (capped at 6) most wanted, by class: 0: r0 r1 r2; 1: r3 r5; 2: r4. One of each
    # class per round, in the order of each class's best row (0, 1, 2): r0, r3, r4; returned most wanted first.
    assert select(BALANCE, 3, "least_confidence+balanced").tolist() == [0, 3, 4]
    # Four: a second round starts with class 0's next, r1; five: class 1's next, r5 (class 2 has no more).
    assert select(BALANCE, 4, "least_confidence+balanced").tolist() == [0, 1, 3, 4]
    assert select(BALANCE, 5, "least_confidence+balanced").tolist() == [0, 1, 3, 4, 5]
    # One: candidates are the 3 most wanted (r0, r1, r3), and the first round's first class gives r0.
    assert select(BALANCE, 1, "least_confidence+balanced").tolist() == [0]


def test_balanced_pick_leaves_a_short_class_share_to_the_others():
    order = np.array([4, 3, 2, 1, 0])
    predicted = np.array([1, 1, 1, 1, 0])  # row 4, the most wanted, is the only class-0 row
    assert balanced_pick(order, predicted, 3).tolist() == [4, 3, 2]


def test_balanced_random_is_a_seeded_draw_stratified_by_prediction():
    probs = np.array([[0.9, 0.1]] * 20 + [[0.1, 0.9]] * 20)
    chosen = select(probs, 6, "random+balanced", seed=2)
    assert np.array_equal(chosen, select(probs, 6, "random+balanced", seed=2))
    assert np.bincount(probs[chosen].argmax(axis=1)).tolist() == [3, 3]


# ---------------------------------------------------------------- bad input

RNG = np.random.default_rng(1)
PROBS = RNG.dirichlet(np.ones(3), size=5)
EMBEDDINGS = RNG.normal(size=(5, 4))


@pytest.mark.parametrize("strategy, inputs, message", [
    ("bald", {}, "needs mc_probs"),
    ("bald", {"mc_probs": RNG.dirichlet(np.ones(3), size=(4, 6))}, "does not match probs shape"),
    ("bald", {"mc_probs": RNG.dirichlet(np.ones(3), size=(1, 5))}, "at least 2 dropout passes"),
    ("bald", {"mc_probs": np.full((2, 5, 3), 2.0)}, "mc_probs must lie in"),
    ("badge", {}, "the badge strategy needs embeddings"),
    ("badge", {"embeddings": EMBEDDINGS[:4]}, "embeddings must be"),
    ("badge", {"embeddings": np.full((5, 4), np.nan)}, "NaN"),
    ("badge", {"embeddings": np.zeros((5, 2, 4))}, "embeddings must be"),  # 2 options for 3 classes
    ("coreset", {"embeddings": EMBEDDINGS}, "needs labelled_embeddings"),
    ("coreset", {"embeddings": EMBEDDINGS, "labelled_embeddings": np.zeros((2, 3))}, "shaped like the pool"),
    ("contrastive", {"embeddings": EMBEDDINGS, "labelled_embeddings": np.zeros((2, 4))}, "needs labelled_probs"),
    ("contrastive", {"embeddings": EMBEDDINGS, "labelled_embeddings": np.zeros((0, 4)),
                     "labelled_probs": np.zeros((0, 3))}, "at least one labelled row"),
    ("contrastive", {"embeddings": EMBEDDINGS, "labelled_embeddings": np.zeros((2, 4)),
                     "labelled_probs": np.full((3, 3), 1 / 3)}, "does not match 2 labelled rows"),
    ("contrastive+balanced", {"embeddings": EMBEDDINGS, "labelled_embeddings": np.zeros((2, 4)),
                              "labelled_probs": np.full((2, 3), 2.0)}, "labelled_probs must lie in"),
])
def test_bad_inputs_raise_usage_errors(strategy, inputs, message):
    with pytest.raises(UsageError, match=message):
        select(PROBS, 2, strategy, **inputs)
