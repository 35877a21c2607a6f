"""Model selection for the budget study's students: one rule for every point of every arm.

Three rules (`--selection`). The default, `last`, spends no label: the student trains to the cap (set in
optimiser steps where supervised points reach their plateau on validation) and its last epoch is kept
(LastEpoch). The two others score the student after each epoch on a selection set, keep the epoch with
the highest selection accuracy (ties: the lower selection loss, then the earlier epoch) and stop once
`patience` epochs have passed without a better one, or at the cap (BestEpoch). `share` holds out a
stratified share of the point's own labels (as small-text does, 10%): gold labels where the point has
gold, the expert's label where it has the expert's; they are inside the point's budget, so counted.
`validation` uses the fixed validation split, whose gold labels are then added to the point's gold count.

Patience and cap are set in optimiser steps and turned into whole epochs, so that a 45-row point is not
stopped after a few steps while an 800-row point still gets a few epochs
(trainables/study_settings.StoppingRule, checked without torch). No Ray in here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from trainables.errors import UsageError
from trainables.sampling import stratified_subset


@dataclass
class BestEpoch:
    """The best epoch seen so far and its weights (a CPU copy, restored at the end)."""

    patience: int
    epoch: int = 0
    score: tuple[float, float] | None = None  # (accuracy, -loss): higher is better
    weights: dict | None = None
    curve: list[dict] = field(default_factory=list)  # per epoch: epoch, accuracy, loss

    def update(self, model: torch.nn.Module, epoch: int, accuracy: float, loss: float) -> bool:
        """Record this epoch's selection score; True when training should stop."""
        self.curve.append({"epoch": epoch, "accuracy": accuracy, "loss": loss})
        score = (accuracy, -loss)
        if self.score is None or score > self.score:
            self.epoch, self.score = epoch, score
            self.weights = {key: value.detach().clone() for key, value in model.state_dict().items()}
        return epoch - self.epoch >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        if self.weights is not None:
            model.load_state_dict(self.weights)


@dataclass
class LastEpoch:
    """`--selection last`: no selection set and no early stopping; the student trains to the cap (set where
    supervised points reach their plateau on validation, a cost every arm shares) and its last epoch is kept.
    Measured (benchmarks/results/recipe-probe-2026-12-06): the last epoch's validation accuracy lies within
    0.012 of the best epoch's at 100-800 labels (the best being a maximum over noisy epochs), while a 10% share
    holds 5-20 labels at 50-200 labels, too few for 13 classes to tell epochs apart."""

    epoch: int = 0
    curve: list[dict] = field(default_factory=list)  # per epoch: epoch (no selection score)

    def update(self, _model: torch.nn.Module, epoch: int) -> bool:
        self.epoch = epoch
        self.curve.append({"epoch": epoch})
        return False

    def restore(self, _model: torch.nn.Module) -> None:
        """The model already holds its last epoch."""


def selection_count(rows: int, share: float) -> int:
    """Labels held out for selection: round(share x rows), at least 1, leaving at least 1 to train on."""
    if rows < 2:
        raise UsageError(f"a point needs at least 2 labelled rows to hold one out for selection, got {rows}")
    return min(rows - 1, max(1, round(share * rows)))


def hold_out(targets: np.ndarray, share: float, seed: int) -> np.ndarray:
    """bool per row: held out for selection. A stratified draw by the rows' known labels (gold, or the
    expert's), seeded by seed and budget: every arm follows the same rule, but the draw depends on the labels, so
    two arms holding the same rows with other labels (supervised and expert:random) hold out other rows, which
    adds noise to that pair's comparison under --selection share (not under the default, last)."""
    chosen = stratified_subset(np.asarray(targets), selection_count(len(targets), share), seed)
    mask = np.zeros(len(targets), dtype=bool)
    mask[chosen] = True
    return mask


def selection_score(logits: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the logits against the selection targets."""
    logits = torch.tensor(np.asarray(logits), dtype=torch.float32)  # a copy: the targets may be a read-only cache
    targets_t = torch.tensor(np.asarray(targets), dtype=torch.int64)
    accuracy = float((logits.argmax(dim=1) == targets_t).float().mean())
    loss = float(torch.nn.functional.cross_entropy(logits, targets_t))
    return accuracy, loss
