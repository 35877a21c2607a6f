"""Our query strategies and stopping criteria against small-text 1.4.1 (Schröder et al.; the `dev` extra pins
it): the same inputs (fixed probabilities, dropout passes, embeddings, gradient embeddings, seed) give the same
chosen rows, and the same sequences of predictions give the same stop/continue decisions.

small-text picks its top n with np.argpartition, which returns them in no defined order: where it does, the
sets of rows are compared (the random inputs below have no ties). Where ours differs on purpose, the test
says why. Its RandomSampling draws from numpy's global state, unseeded, so it has no row-for-row peer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import small_text.query_strategies as st
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize
from small_text.integrations.pytorch.query_strategies import BADGE
from small_text.query_strategies.bayesian import _bald
from small_text.stopping_criteria import DeltaFScore, KappaAverage, MaxIterations, OverallUncertainty
from small_text.utils.clustering import init_kmeans_plusplus_safe

from trainables import stopping_criteria as ours
from trainables.query import select
from trainables.query_rules import bald_scores, coreset_order, gradient_embeddings, kmeans_pp_order

POOL, LABELLED, CLASSES, DIM = 60, 15, 4, 6


class FixedClassifier:
    """small-text's classifier interface, answering with fixed probabilities."""

    def __init__(self, probs: np.ndarray, mc_probs: np.ndarray | None = None):
        self.probs, self.mc_probs = probs, mc_probs

    def predict_proba(self, _dataset, dropout_sampling: int = 1):
        # small-text's dropout sampling is (rows, passes, classes); ours (passes, rows, classes)
        return self.probs if dropout_sampling == 1 else self.mc_probs.transpose(1, 0, 2)


def inputs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"probs": rng.dirichlet(np.ones(CLASSES) * 0.7, size=POOL),
            "mc_probs": rng.dirichlet(np.ones(CLASSES) * 0.7, size=(8, POOL)),
            "embeddings": rng.normal(size=(POOL, DIM)), "labelled_embeddings": rng.normal(size=(LABELLED, DIM)),
            "labelled_probs": rng.dirichlet(np.ones(CLASSES) * 0.7, size=LABELLED)}


def small_text_query(strategy, clf, n: int) -> set[int]:
    return set(strategy.query(clf, None, np.arange(POOL), np.array([], dtype=int), np.array([]), n=n).tolist())


# ---------------------------------------------------------------- strategies

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [1, 7, 30])
@pytest.mark.parametrize("ours_name, theirs", [("least_confidence", st.LeastConfidence),
                                               ("entropy", st.PredictionEntropy), ("margin", st.BreakingTies)])
def test_uncertainty_strategies_choose_the_same_rows(seed, n, ours_name, theirs):
    given = inputs(seed)
    expected = small_text_query(theirs(), FixedClassifier(given["probs"]), n)
    assert set(select(given["probs"], n, ours_name).tolist()) == expected


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [1, 7, 30])
def test_bald_chooses_the_same_rows(seed, n):
    given = inputs(seed)
    clf = FixedClassifier(given["probs"], given["mc_probs"])
    expected = small_text_query(st.BALD(dropout_samples=8), clf, n)
    assert set(select(given["probs"], n, "bald", mc_probs=given["mc_probs"]).tolist()) == expected


def test_bald_scores_are_small_texts_in_nats():
    # small-text takes log2 and adds 1e-8 inside every log: its scores are ours / ln 2 up to that epsilon.
    mc = inputs(0)["mc_probs"]
    assert bald_scores(mc) / math.log(2) == pytest.approx(_bald(mc.transpose(1, 0, 2)), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [1, 5, 20])
def test_badge_selection_given_the_gradient_embeddings_is_small_texts(seed, n):
    """The selection step of small-text's BADGE.sample is init_kmeans_plusplus_safe on the gradient embeddings.
    Two differences on purpose: small-text passes x_squared_norms=np.linalg.norm(...), the norms where
    scikit-learn expects SQUARED norms (its distances are then wrong), and an unseeded RandomState; we pass the
    squared norms and RandomState(seed). Given those, the same rows come out in the same order."""
    given = inputs(seed)
    gradients = gradient_embeddings(given["probs"], given["embeddings"])
    _, expected = init_kmeans_plusplus_safe(gradients, n, x_squared_norms=(gradients**2).sum(axis=1),
                                            random_state=np.random.RandomState(seed))
    assert kmeans_pp_order(gradients, n, seed).tolist() == expected.tolist()
    assert select(given["probs"], n, "badge", seed=seed, embeddings=given["embeddings"]).tolist() == expected.tolist()


def test_badge_gradient_embeddings_differ_from_small_texts_on_purpose():
    """Ash et al.'s gradient embedding is (p - onehot(argmax p)) x h. small-text 1.4.1's get_badge_embeddings
    sets `scale[proba_argmax]`, which indexes ROWS, not each row's argmax column: its embedding is -p x h for
    every class (and h itself for two classes), so the predicted class's gradient loses its -1."""
    given = inputs(1)
    probs, embeddings = given["probs"], given["embeddings"]
    theirs = BADGE(CLASSES).get_badge_embeddings(embeddings, probs)
    minus_p = -(probs[:, :, None] * embeddings[:, None, :]).reshape(POOL, -1)
    assert np.allclose(theirs, minus_p)
    onehot = np.eye(CLASSES)[probs.argmax(axis=1)]
    assert np.allclose(gradient_embeddings(probs, embeddings),
                       -theirs - (onehot[:, :, None] * embeddings[:, None, :]).reshape(POOL, -1))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [1, 8, 25])
def test_greedy_coreset_chooses_the_same_rows_in_the_same_order(seed, n):
    """small-text's default GreedyCoreset: L2-normalised embeddings, Euclidean distance. Its greedy_coreset
    indexes the embeddings with positions among the unlabelled rows, which is right only as its query() lays
    them out, unlabelled rows first: so here too."""
    given = inputs(seed)
    everything = normalize(np.vstack([given["embeddings"], given["labelled_embeddings"]]))
    expected = st.greedy_coreset(everything, np.arange(POOL), np.arange(POOL, POOL + LABELLED), n,
                                 distance_metric="euclidean", normalized=True)
    assert coreset_order(given["embeddings"], given["labelled_embeddings"], n, seed).tolist() == expected.tolist()
    chosen = select(given["probs"], n, "coreset", embeddings=given["embeddings"],
                    labelled_embeddings=given["labelled_embeddings"])
    assert chosen.tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [1, 8, 25])
def test_contrastive_scoring_on_labelled_neighbours_chooses_the_same_rows(seed, n):
    """Margatina et al. look for a candidate's neighbours among the LABELLED rows, as we do. small-text's public
    ContrastiveActiveLearning.sample fits its NearestNeighbors on every row it embeds, unlabelled ones included
    (so each candidate is among its own neighbours, at KL 0). Its scoring, _contrastive_active_learning, is
    given here a NearestNeighbors fitted on the labelled rows, laid out first so that the neighbours' indices
    address their probabilities: the paper's definition, and ours. (It averages KL over classes too, a constant
    factor 1 / classes that changes no ranking.)"""
    given = inputs(seed)
    embeddings = normalize(np.vstack([given["labelled_embeddings"], given["embeddings"]]))
    probs = np.vstack([given["labelled_probs"], given["probs"]])
    neighbours = NearestNeighbors(n_neighbors=10).fit(embeddings[:LABELLED])
    strategy = st.ContrastiveActiveLearning(k=10)
    positions = strategy._contrastive_active_learning(list(range(LABELLED + POOL)), embeddings, probs,
                                                      np.arange(LABELLED, LABELLED + POOL), neighbours, n)
    chosen = select(given["probs"], n, "contrastive", embeddings=given["embeddings"],
                    labelled_embeddings=given["labelled_embeddings"], labelled_probs=given["labelled_probs"])
    assert set(chosen.tolist()) == set(positions.tolist())


def test_small_text_has_no_class_balancer_in_the_pinned_version():
    """The +balanced wrapper has no peer in small-text 1.4.1 (its ClassBalancer came later, and balances towards
    the labelled set's class histogram; ours gives each predicted class an equal share of the batch). Checked
    by hand in tests/test_query_rules.py."""
    assert not hasattr(st, "ClassBalancer")


# ---------------------------------------------------------------- stopping criteria

def small_text_decisions(criterion, predictions: list[np.ndarray], probs: list[np.ndarray] | None = None) -> list:
    """small-text's stop() called once per check, in order, as its active-learning loop does."""
    return [bool(criterion.stop(predictions=p, proba=None if probs is None else probs[i],
                                indices_stopping=None if probs is None else np.arange(len(p))))
            for i, p in enumerate(predictions)]


def settling_predictions(classes: int, seed: int, changes=(300, 120, 40, 12, 4, 1, 0, 0, 2, 0, 0, 0)) -> list:
    """Predictions of 500 rows over rounds, each round changing the given number of rows: they settle."""
    rng = np.random.default_rng(seed)
    rounds = [rng.integers(classes, size=500)]
    for count in changes:
        current = rounds[-1].copy()
        rows = rng.choice(500, size=count, replace=False)
        current[rows] = (current[rows] + rng.integers(1, classes, size=count)) % classes
        rounds.append(current)
    return rounds


def our_checks(predictions: list[np.ndarray], classes: int) -> list[ours.Check]:
    return [ours.Check(p, 0.0, classes) for p in predictions]


@pytest.mark.parametrize("classes", [2, 3, 13])
@pytest.mark.parametrize("threshold", [0.9, 0.97, 0.99, 0.999])
@pytest.mark.parametrize("window", [1, 2, 3])
def test_kappa_average_decides_as_small_text(classes, threshold, window):
    predictions = settling_predictions(classes, seed=classes)
    expected = small_text_decisions(KappaAverage(classes, window_size=window, kappa=threshold), predictions)
    assert ours.KappaAverage(threshold, window).decisions(our_checks(predictions, classes)) == expected
    assert any(expected) and not all(expected)  # the thresholds fall inside the sequence: decisions of both kinds


@pytest.mark.parametrize("threshold", [0.005, 0.02, 0.05, 0.2])
@pytest.mark.parametrize("window", [1, 2, 3])
def test_delta_f_score_decides_as_small_text_on_two_classes(threshold, window):
    """small-text's DeltaFScore accepts two classes only; ours extends it to more (the mean over classes) and
    calls a round in which neither check predicts the positive class unchanged (small-text: 0 / 0, NaN, never
    stops), a case the sequences here avoid."""
    predictions = settling_predictions(2, seed=7)
    expected = small_text_decisions(DeltaFScore(2, window_size=window, threshold=threshold), predictions)
    assert ours.DeltaFScore(threshold, window).decisions(our_checks(predictions, 2)) == expected
    assert any(expected) and not all(expected)


@pytest.mark.parametrize("threshold", [0.05, 0.2, 0.4, 0.6])
def test_overall_uncertainty_decides_as_small_text(threshold):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(200, 5))
    probs = [np.exp(logits * scale) / np.exp(logits * scale).sum(axis=1, keepdims=True)
             for scale in (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0)]  # sharper and sharper
    expected = small_text_decisions(OverallUncertainty(5, threshold=threshold), [p.argmax(axis=1) for p in probs],
                                    probs)
    assert ours.OverallUncertainty(threshold).decisions([ours.check_of(p) for p in probs]) == expected
    assert any(expected) and not all(expected)


@pytest.mark.parametrize("rounds", [1, 2, 5])
def test_max_rounds_decides_as_small_texts_max_iterations_counted_from_the_initial_student(rounds):
    """small-text's MaxIterations(k) stops on its k-th stop() call; our checks start with the initial pool's
    student (check 0, before any query), so max_rounds:N stops where MaxIterations(N + 1) does."""
    predictions = settling_predictions(2, seed=0)
    expected = small_text_decisions(MaxIterations(rounds + 1), predictions)
    assert ours.MaxRounds(rounds).decisions(our_checks(predictions, 2)) == expected
