"""Query strategies for the Expert-Loop: which pool examples the teachers should label next.

Pure numpy scoring functions under one `select` (the small-text shape): no model, no torch, so each
rule is checked against hand-computed values. Scores follow one convention: higher = less sure.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from trainables.errors import UsageError

# Strategies that are a per-example score of the student's probabilities alone.
SCORING_STRATEGIES: tuple[str, ...] = ("least_confidence", "margin", "entropy")
STRATEGIES: tuple[str, ...] = ("least_confidence", "margin", "entropy", "random", "robust_least_confidence")
# Strategies that read the experts' outputs on every pool row they score (a cost beside the labels they buy).
READS_EXPERT: tuple[str, ...] = ("robust_least_confidence",)

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
}

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


def _entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats over the last axis, with 0 * log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -plogp.sum(axis=-1)


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
        return _entropy(p)
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
    jsd = _entropy(t.mean(axis=0)) - _entropy(t).mean(axis=0)
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
) -> np.ndarray:
    """n distinct row indices (int64) of probs (pool, classes) to send to the teachers, most wanted first.

    Scoring strategies take the n highest uncertainty scores, ties broken by the lower index; `random`
    takes a uniform sample without replacement from np.random.default_rng(seed); for
    `robust_least_confidence` see STRATEGY_DESCRIPTIONS (teacher_probs and skip_fraction are used only
    there). n equal to the pool size returns every index; n <= 0 or n > pool raises UsageError.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown query strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    p = _check_probs(probs)
    _check_n(n, p.shape[0])
    if strategy == "random":
        rng = np.random.default_rng(seed)
        return rng.choice(p.shape[0], size=n, replace=False).astype(np.int64)
    if strategy == "robust_least_confidence":
        return _robust_least_confidence(p, n, teacher_probs, skip_fraction)
    return _top_n(uncertainty(p, strategy), n)
