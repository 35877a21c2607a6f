"""A paired bootstrap over seeds and test examples: intervals that cover both sources of noise.

A study's result for one (arm, budget, seed) is which of the N test examples its student got right.
Seed-to-seed variation alone (a t-interval over seeds) ignores that the N test examples are one sample
of the task: at accuracy 0.8 on 500 examples that sampling error alone is about +-3.5 points (95%).
Each bootstrap replicate therefore draws S seeds with replacement and N test examples with replacement,
the SAME draw for every arm and budget, so the pairing by seed and by test example is kept, and any
statistic (a mean accuracy, an area under the learning curve, a difference of two arms) is computed on
every replicate. The interval is the 2.5th..97.5th percentile of the replicates (percentile bootstrap).

Why not scipy.stats.bootstrap: it resamples one axis of independent samples; here two crossed axes
(seeds x test examples) are resampled jointly and shared across arms, which it does not offer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

REPLICATES = 2000


def replicate_accuracies(correct: np.ndarray, replicates: int = REPLICATES, seed: int = 0) -> np.ndarray:
    """correct: bool (..., S seeds, N test examples). Returns (replicates, ...) mean accuracy over the
    resampled seeds of the resampled test examples; replicate 0 is the unresampled estimate."""
    correct = np.asarray(correct, dtype=np.float64)
    *lead, seeds, examples = correct.shape
    rng = np.random.default_rng(seed)
    # Multinomial counts are the same as drawing indices with replacement, and turn each replicate
    # into one matrix product over all arms and budgets at once.
    example_weights = rng.multinomial(examples, np.full(examples, 1 / examples), size=replicates).T / examples
    seed_weights = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=replicates) / seeds
    example_weights[:, 0] = 1 / examples
    seed_weights[0] = 1 / seeds
    per_seed = correct.reshape(-1, examples) @ example_weights  # (lead * S, R)
    per_seed = per_seed.reshape(*lead, seeds, replicates)
    out = np.einsum("...sr,rs->r...", per_seed, seed_weights)
    return out


def interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0)
    return float(low), float(high)


def estimate(values: np.ndarray) -> dict:
    """{"mean": replicate 0 (the unresampled estimate), "ci": [lo, hi] of the other replicates}: how the
    study's summary and --confirm state every figure with its interval."""
    low, high = interval(values[1:])
    return {"mean": float(values[0]), "ci": [low, high]}


def statistic_interval(correct: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray],
                       replicates: int = REPLICATES, seed: int = 0) -> dict:
    """{"mean": statistic of the data, "ci": [lo, hi]} where statistic maps (R, ...) accuracies to (R,)."""
    return estimate(statistic(replicate_accuracies(correct, replicates, seed)))
