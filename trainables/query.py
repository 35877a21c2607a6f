"""Query strategies for the Expert-Loop: which pool examples the teachers should label next.

Pure numpy scoring functions under one `select` (the small-text shape): no model, no torch, so each
rule is checked against hand-computed values. Scores follow one convention: higher = less sure.
The rules that read more than the student's probabilities (dropout passes, embeddings) are in
trainables/query_rules.py; `select` validates their inputs and calls them. `needs` says which inputs a
strategy reads, so that the model side (trainables/pool_outputs.py) computes those and nothing more.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from trainables.errors import UsageError
from trainables.query_rules import (
    BALANCE_CANDIDATES,
    CONTRASTIVE_NEIGHBOURS,
    balanced_pick,
    bald_scores,
    contrastive_scores,
    coreset_order,
    entropy,
    gradient_embeddings,
    kmeans_pp_order,
)

# Strategies that are a per-example score of the student's probabilities alone.
SCORING_STRATEGIES: tuple[str, ...] = ("least_confidence", "margin", "entropy")
BASE_STRATEGIES: tuple[str, ...] = ("least_confidence", "margin", "entropy", "random", "robust_least_confidence",
                                    "bald", "badge", "coreset", "contrastive")
BALANCED = "+balanced"  # any base strategy + this: the same strategy with predicted-class quotas
STRATEGIES: tuple[str, ...] = BASE_STRATEGIES + tuple(name + BALANCED for name in BASE_STRATEGIES)
# What a strategy reads beside the student's probabilities of the pool rows (select's keyword arguments).
NEEDS: dict[str, frozenset[str]] = {
    "robust_least_confidence": frozenset({"teacher_probs"}),
    "bald": frozenset({"mc_probs"}),
    "badge": frozenset({"embeddings"}),
    "coreset": frozenset({"embeddings", "labelled_embeddings"}),
    "contrastive": frozenset({"embeddings", "labelled_embeddings", "labelled_probs"}),
}
# Strategies that read the experts' outputs on every pool row they score (a cost beside the labels they buy).
READS_EXPERT: tuple[str, ...] = tuple(name for name in STRATEGIES if "teacher_probs" in NEEDS.get(
    name.removesuffix(BALANCED), ()))

STRATEGY_DESCRIPTIONS: dict[str, str] = {
    "least_confidence": (
        "Pick the examples whose most likely class has the lowest probability (score 1 - max p)."
    ),
    "margin": (
        "Pick the examples with the smallest gap between the two most likely classes (score -(p1 - p2))."
    ),
    "entropy": "Pick the examples whose predicted distribution has the highest entropy (natural log).",
    "random": (
        "Pick a seeded uniform sample of the pool without replacement (the baseline every rule must beat)."
    ),
    "robust_least_confidence": (
        "Rank by least confidence, but first set aside the skip_fraction of the pool on which the teachers "
        "disagree most (generalized Jensen-Shannon divergence > 0), since their labels there are likely "
        "wrong, and use those set-aside examples, lowest disagreement first, only if too few others remain "
        "(after Baykal et al., ICLR 2023, Robust Active Distillation)."
    ),
    "bald": (
        "Pick the examples on which mc_passes forward passes of the student with dropout on disagree most: the "
        "mutual information H(mean p) - mean H(p) between the prediction and the weights (BALD, Houlsby et al. "
        "2011, with Monte-Carlo dropout, Gal et al., ICML 2017)."
    ),
    "badge": (
        "Pick examples with large and diverse expected gradients: k-means++ seeding (seeded; scikit-learn's "
        "greedy variant, as small-text) on the gradient of the cross-entropy with respect to the classifier's "
        "last layer, the predicted class taken as the label, (p - onehot(argmax p)) x h with h the classifier's "
        "input (BADGE, Ash et al., ICLR 2020)."
    ),
    "coreset": (
        "Pick examples that cover the pool: greedy k-center, each pick the pool example farthest from every "
        "labelled example and every pick so far, on the classifier's inputs (L2-normalised, Euclidean) "
        "(core-set, Sener and Savarese, ICLR 2018)."
    ),
    "contrastive": (
        f"Pick the examples whose prediction differs most from their neighbours': the mean KL divergence from "
        f"the student's predictions on the {CONTRASTIVE_NEIGHBOURS} nearest labelled examples (classifier inputs, "
        "L2-normalised) to its prediction on the example (CAL, Margatina et al., EMNLP 2021)."
    ),
}
BALANCED_DESCRIPTION = (
    f"Any strategy with predicted-class quotas: among the strategy's {BALANCE_CANDIDATES} x n most wanted "
    "examples, n are taken round-robin over the student's predicted classes (equal shares; a class short of "
    "candidates leaves its share to the others), so that no predicted class fills the batch (class balance "
    "explains much of active learning's gain with BERT: Ein-Dor et al., EMNLP 2020)."
)

# Disagreement below this (nats) is floating-point noise from teachers that agree, not disagreement.
DISAGREEMENT_TOL = 1e-12
# Scores are rounded to this many decimals before ranking: the same distribution with its classes in
# another order sums in another order, and its entropy then differs by ~1e-16. Those are ties.
SCORE_DECIMALS = 12


def _check_probs(probs: np.ndarray, name: str = "probs", ndim: int = 2) -> np.ndarray:
    """Return probs as float64, or raise UsageError unless it is ndim-D, finite and in [0, 1]."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != ndim:
        raise UsageError(f"{name} must be a {ndim}-D array of probabilities, got shape {arr.shape}")
    if arr.shape[-1] == 0:
        raise UsageError(f"{name} has no classes (last dimension is 0)")
    if not np.all(np.isfinite(arr)):
        raise UsageError(f"{name} contains NaN or infinite values")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise UsageError(
            f"{name} must lie in [0, 1] (probabilities, not logits), got [{arr.min()}, {arr.max()}]"
        )
    return arr


def describe(strategy: str) -> str:
    """What a strategy in STRATEGIES does, in a sentence or three."""
    base, balanced = split_strategy(strategy)
    return f"{STRATEGY_DESCRIPTIONS[base]} {BALANCED_DESCRIPTION}" if balanced else STRATEGY_DESCRIPTIONS[base]


def split_strategy(strategy: str) -> tuple[str, bool]:
    """(the base strategy, whether class-balanced), or UsageError for a name not in STRATEGIES."""
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown query strategy {strategy!r}; choose one of {', '.join(BASE_STRATEGIES)}, "
                         f"each also as <strategy>{BALANCED}")
    return strategy.removesuffix(BALANCED), strategy.endswith(BALANCED)


def needs(strategy: str) -> frozenset[str]:
    """Which of select's inputs the strategy reads: "probs" (the student's probabilities: every strategy but
    plain `random`, whose draw reads nothing of the student, so the model side can skip its pass) and the
    keyword inputs teacher_probs, mc_probs, embeddings, labelled_embeddings, labelled_probs."""
    base, balanced = split_strategy(strategy)
    reads_student = base != "random" or balanced  # +balanced reads the predicted classes
    return NEEDS.get(base, frozenset()) | ({"probs"} if reads_student else frozenset())


def random_rows(pool: int, n: int, seed: int) -> np.ndarray:
    """`random`'s draw: n distinct rows of a pool of this size, uniform, from np.random.default_rng(seed)."""
    _check_n(n, pool)
    return np.random.default_rng(seed).choice(pool, size=n, replace=False).astype(np.int64)


def uncertainty(probs: np.ndarray, strategy: str) -> np.ndarray:
    """One score per row of probs (pool, classes), higher = less sure, for one of SCORING_STRATEGIES."""
    p = _check_probs(probs)
    if strategy == "least_confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "margin":
        if p.shape[1] < 2:
            raise UsageError("the margin strategy needs at least 2 classes")
        # After partitioning, column -1 holds the largest p and column -2 the second largest.
        top2 = np.partition(p, -2, axis=1)[:, -2:]
        return -(top2[:, 1] - top2[:, 0])
    if strategy == "entropy":
        return entropy(p)
    raise UsageError(
        f"unknown uncertainty strategy {strategy!r}; choose one of {', '.join(SCORING_STRATEGIES)}"
    )


def teacher_disagreement(teacher_probs: np.ndarray) -> np.ndarray:
    """Generalized Jensen-Shannon divergence per example: H(mean_k p_k) - mean_k H(p_k), in nats.

    teacher_probs is (n_teachers, pool, classes); the result (pool,) is 0 where all teachers agree
    (always, with one teacher) and at most log(n_teachers). Rounding noise below 0 is clipped to 0.
    """
    t = _check_probs(teacher_probs, name="teacher_probs", ndim=3)
    if t.shape[0] == 0:
        raise UsageError("teacher_probs holds no teachers (first dimension is 0)")
    jsd = entropy(t.mean(axis=0)) - entropy(t).mean(axis=0)
    return np.maximum(jsd, 0.0)


def _ranking(scores: np.ndarray) -> np.ndarray:
    """Every index, highest score first; scores equal up to rounding noise keep index order (stable sort)."""
    return np.argsort(-np.round(scores, SCORE_DECIMALS), kind="stable")


def _top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest scores, highest first; ties are broken by the lower index."""
    return _ranking(scores)[:n].astype(np.int64)


def _check_n(n: int, pool: int) -> None:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise UsageError(f"n must be an integer, got {n!r}")
    if n <= 0:
        raise UsageError(f"n must be > 0, got {n}")
    if n > pool:
        raise UsageError(f"cannot select n={n} examples from a pool of {pool}")


def _robust_least_confidence(
    probs: np.ndarray, n: int, teacher_probs: np.ndarray | None, skip_fraction: float
) -> np.ndarray:
    """Least confidence among the examples left after skipping the teachers' most disputed ones."""
    if teacher_probs is None:
        raise UsageError("robust_least_confidence needs teacher_probs (n_teachers, pool, classes)")
    if isinstance(skip_fraction, bool) or not isinstance(skip_fraction, numbers.Real):
        raise UsageError(f"skip_fraction must be a number, got {skip_fraction!r}")
    if not (0.0 <= skip_fraction <= 1.0):
        raise UsageError(f"skip_fraction must be in [0, 1], got {skip_fraction!r}")
    teachers = np.asarray(teacher_probs, dtype=np.float64)
    if teachers.ndim == 2:  # one teacher given as (pool, classes)
        teachers = teachers[np.newaxis]
    if teachers.ndim != 3 or teachers.shape[1:] != probs.shape:
        raise UsageError(
            f"teacher_probs shape {np.shape(teacher_probs)} does not match probs shape {probs.shape} "
            "(expected (n_teachers, pool, classes))"
        )
    disagreement = teacher_disagreement(teachers)
    pool = probs.shape[0]
    # The small epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 from rounding down to 28.
    n_skip = math.floor(skip_fraction * pool + 1e-9)
    # Most disputed first; only real disagreement counts, so agreeing teachers never cause a skip.
    by_disagreement = _ranking(disagreement)[:n_skip]
    skipped = by_disagreement[disagreement[by_disagreement] > DISAGREEMENT_TOL]
    keep = np.setdiff1d(np.arange(pool), skipped)  # sorted, so ties still go to the lower index

    scores = uncertainty(probs, "least_confidence")
    chosen = keep[_top_n(scores[keep], min(n, keep.size))]
    if chosen.size == n:
        return chosen.astype(np.int64)
    # Too few left: fill up with the skipped examples the teachers dispute least.
    skipped_sorted = np.sort(skipped)
    fill = skipped_sorted[_ranking(-disagreement[skipped_sorted])[: n - chosen.size]]
    return np.concatenate([chosen, fill]).astype(np.int64)


def select(
    probs: np.ndarray,
    n: int,
    strategy: str,
    seed: int = 0,
    *,
    teacher_probs: np.ndarray | None = None,
    skip_fraction: float = 0.2,
    mc_probs: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    labelled_embeddings: np.ndarray | None = None,
    labelled_probs: np.ndarray | None = None,
) -> np.ndarray:
    """n distinct row indices (int64) of probs (pool, classes) to send to the teachers, most wanted first.

    Scoring strategies take the n highest uncertainty scores, ties broken by the lower index; `random`
    takes a uniform sample without replacement from np.random.default_rng(seed); the others are described
    in STRATEGY_DESCRIPTIONS and read the keyword inputs `needs(strategy)` names: teacher_probs
    (n_teachers, pool, classes) and skip_fraction for `robust_least_confidence`; mc_probs (passes, pool,
    classes) for `bald`; embeddings (pool, dim), or (pool, choices, dim) for multiple choice, the
    classifier's input, for `badge`, `coreset` and `contrastive`; labelled_embeddings (labelled, ...) for
    `coreset` and `contrastive`, and labelled_probs (labelled, classes) for `contrastive`. A name ending in
    +balanced applies predicted-class quotas to its base strategy's order (query_rules.balanced_pick).
    n equal to the pool size returns every index; n <= 0 or n > pool raises UsageError.
    """
    base, balanced = split_strategy(strategy)
    p = _check_probs(probs)
    _check_n(n, p.shape[0])
    inputs = {"teacher_probs": teacher_probs, "skip_fraction": skip_fraction, "mc_probs": mc_probs,
              "embeddings": embeddings, "labelled_embeddings": labelled_embeddings, "labelled_probs": labelled_probs}
    if not balanced:
        return _order(p, n, base, seed, inputs)
    candidates = _order(p, min(p.shape[0], BALANCE_CANDIDATES * n), base, seed, inputs)
    return balanced_pick(candidates, p.argmax(axis=1), n)


def _order(p: np.ndarray, n: int, strategy: str, seed: int, inputs: dict) -> np.ndarray:
    """The n rows a base strategy wants most, most wanted first."""
    if strategy == "random":
        return random_rows(p.shape[0], n, seed)
    if strategy == "robust_least_confidence":
        return _robust_least_confidence(p, n, inputs["teacher_probs"], inputs["skip_fraction"])
    if strategy == "bald":
        return _top_n(bald_scores(_check_mc_probs(inputs["mc_probs"], p.shape)), n)
    if strategy == "badge":
        return kmeans_pp_order(gradient_embeddings(p, _check_embeddings(inputs["embeddings"], p, strategy)), n, seed)
    if strategy in ("coreset", "contrastive"):
        pool = _check_embeddings(inputs["embeddings"], p, strategy)
        labelled = _check_labelled(inputs["labelled_embeddings"], pool, strategy)
        if strategy == "coreset":
            return coreset_order(pool, labelled, n, seed)
        labelled_probs = _check_probs(_required(inputs["labelled_probs"], "labelled_probs", strategy), "labelled_probs")
        if labelled_probs.shape != (len(labelled), p.shape[1]):
            raise UsageError(f"labelled_probs shape {labelled_probs.shape} does not match {len(labelled)} labelled "
                             f"rows and {p.shape[1]} classes")
        return _top_n(contrastive_scores(p, pool, labelled, labelled_probs), n)
    return _top_n(uncertainty(p, strategy), n)


def _required(value, name: str, strategy: str):
    if value is None:
        raise UsageError(f"the {strategy} strategy needs {name}")
    return value


def _check_mc_probs(mc_probs, shape: tuple[int, int]) -> np.ndarray:
    passes = _check_probs(_required(mc_probs, "mc_probs (passes, pool, classes)", "bald"), "mc_probs", ndim=3)
    if passes.shape[1:] != shape:
        raise UsageError(f"mc_probs shape {passes.shape} does not match probs shape {shape} "
                         "(expected (passes, pool, classes))")
    if passes.shape[0] < 2:
        raise UsageError(f"bald needs at least 2 dropout passes, got {passes.shape[0]}")
    return passes


def _check_embeddings(values, p: np.ndarray, strategy: str) -> np.ndarray:
    """(pool, dim) or, for multiple choice, (pool, choices, dim) with one input per class; finite."""
    arr = np.asarray(_required(values, "embeddings", strategy), dtype=np.float64)
    per_class = arr.ndim == 3 and arr.shape[1] == p.shape[1]
    if arr.ndim not in (2, 3) or len(arr) != len(p) or (arr.ndim == 3 and not per_class) or arr.shape[-1] == 0:
        raise UsageError(f"embeddings must be (pool, dim) or (pool, classes, dim) for {len(p)} rows and "
                         f"{p.shape[1]} classes, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise UsageError("embeddings contain NaN or infinite values")
    return arr


def _check_labelled(values, pool: np.ndarray, strategy: str) -> np.ndarray:
    """The labelled rows' embeddings, shaped like the pool's; contrastive needs at least one."""
    arr = np.asarray(_required(values, "labelled_embeddings", strategy), dtype=np.float64)
    if arr.shape[1:] != pool.shape[1:] or not np.all(np.isfinite(arr)):
        raise UsageError(f"labelled_embeddings must be finite and shaped like the pool's {pool.shape[1:]} per "
                         f"row, got shape {arr.shape}")
    if strategy == "contrastive" and len(arr) == 0:
        raise UsageError("the contrastive strategy needs at least one labelled row (its neighbours)")
    return arr
