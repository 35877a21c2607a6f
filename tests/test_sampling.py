"""trainables/sampling.py: seeded, stratified draws of example indices."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.errors import UsageError
from trainables.sampling import stratified_subset

LABELS = np.array([0] * 40 + [1] * 20 + [2] * 20 + [3] * 20)
np.random.default_rng(0).shuffle(LABELS)


def test_class_proportions_are_kept():
    chosen = stratified_subset(LABELS, 50, seed=0)
    assert np.bincount(LABELS[chosen], minlength=4).tolist() == [20, 10, 10, 10]  # half of each class
    chosen = stratified_subset(LABELS, 10, seed=0)
    assert np.bincount(LABELS[chosen], minlength=4).tolist() == [4, 2, 2, 2]


def test_indices_are_distinct_sorted_and_seeded():
    chosen = stratified_subset(LABELS, 30, seed=1)
    assert len(chosen) == 30 and len(set(chosen.tolist())) == 30
    assert np.array_equal(chosen, np.sort(chosen)) and chosen.min() >= 0 and chosen.max() < len(LABELS)
    assert np.array_equal(chosen, stratified_subset(LABELS, 30, seed=1))
    assert not np.array_equal(chosen, stratified_subset(LABELS, 30, seed=2))


def test_everything_and_out_of_range():
    assert np.array_equal(stratified_subset(LABELS, len(LABELS), seed=0), np.arange(len(LABELS)))
    for n in (0, -1, len(LABELS) + 1):
        with pytest.raises(UsageError, match=f"cannot draw {n}"):
            stratified_subset(LABELS, n, seed=0)


@pytest.mark.parametrize(("labels", "n"), [
    (LABELS, 3),  # fewer than one per class
    (np.array([0, 0, 0, 0, 1, 2, 2, 2]), 4),  # class 1 has a single example
    (LABELS, len(LABELS) - 2),  # fewer left out than there are classes
])
def test_falls_back_to_a_uniform_draw_when_stratifying_is_impossible(labels, n):
    chosen = stratified_subset(labels, n, seed=0)
    assert len(set(chosen.tolist())) == n and np.array_equal(chosen, np.sort(chosen))
    assert np.array_equal(chosen, stratified_subset(labels, n, seed=0))
