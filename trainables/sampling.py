"""Seeded, stratified draws of example indices (the Expert-Loop's initial pool, the teachers' part)."""

import numpy as np
from sklearn.model_selection import train_test_split

from trainables.errors import UsageError


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` distinct indices into `labels`, class proportions kept where possible, sorted ascending.
    Falls back to a uniform draw when n is too small to hold one example of every class."""
    labels = np.asarray(labels)
    if not 1 <= n <= len(labels):
        raise UsageError(f"cannot draw {n} examples from {len(labels)}")
    if n == len(labels):
        return np.arange(len(labels))
    indices = np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    can_stratify = n >= len(classes) and len(labels) - n >= len(classes) and counts.min() >= 2
    chosen, _ = train_test_split(indices, train_size=n, random_state=seed,
                                 stratify=labels if can_stratify else None)
    return np.sort(chosen)
