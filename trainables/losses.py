"""Losses for the three methods, all with one signature so the training loop takes one callable.

    loss(student_logits, teacher_logits, labels, temperature, alpha) -> scalar tensor

Knowledge distillation follows Hinton et al. 2015 ("Distilling the Knowledge in a Neural Network"):
the soft target is the teachers' mean softmax at temperature T, and the KL term is multiplied by T**2
so its gradient keeps the same scale as the cross-entropy term when T changes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainables.errors import UsageError


def _check_temperature(temperature: float) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise UsageError(f"temperature must be a number, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise UsageError(f"temperature must be a finite number > 0, got {temperature!r}")


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise UsageError(f"alpha must be a number, got {alpha!r}")
    # Written as a range test so that NaN fails it too.
    if not (0.0 <= alpha <= 1.0):
        raise UsageError(f"alpha must be in [0, 1], got {alpha!r}")


def _check_student(student_logits: torch.Tensor) -> None:
    if not isinstance(student_logits, torch.Tensor) or student_logits.dim() != 2:
        shape = tuple(student_logits.shape) if isinstance(student_logits, torch.Tensor) else None
        raise UsageError(f"student_logits must be a (batch, classes) tensor, got shape {shape}")


def _as_3d_teachers(teacher_logits: torch.Tensor) -> torch.Tensor:
    """(batch, classes) -> (1, batch, classes); (n_teachers, batch, classes) unchanged."""
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.dim() not in (2, 3):
        shape = tuple(teacher_logits.shape) if isinstance(teacher_logits, torch.Tensor) else None
        raise UsageError(
            f"teacher_logits must be (batch, classes) or (n_teachers, batch, classes), got shape {shape}"
        )
    if teacher_logits.dim() == 2:
        teacher_logits = teacher_logits.unsqueeze(0)
    if teacher_logits.shape[0] == 0:
        raise UsageError("teacher_logits holds no teachers (first dimension is 0)")
    return teacher_logits


def _check_labels(labels: torch.Tensor | None, batch: int, classes: int, rows: torch.Tensor | None) -> None:
    """Labels must be (batch,) integers in [0, classes) on the rows that use them (all if rows is None)."""
    if labels is None:
        raise UsageError("labels are required when alpha < 1 (the cross-entropy term uses them)")
    if not isinstance(labels, torch.Tensor) or labels.shape != (batch,):
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise UsageError(f"labels must be a ({batch},) tensor to match student_logits, got {shape}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise UsageError(f"labels must be integer class indices, got dtype {labels.dtype}")
    used = labels if rows is None else labels[rows]
    if used.numel() and (int(used.min()) < 0 or int(used.max()) >= classes):
        raise UsageError(
            f"labels must be in [0, {classes}), got values from {int(used.min())} to {int(used.max())}"
        )


def ensemble_probs(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The soft target: mean over teachers of softmax(teacher_logits / T), shape (batch, classes).

    Averaging happens in probability space, not logit space: a confident teacher and an unsure one
    average to a moderately sure target, whereas averaged logits would let the confident one dominate.
    The result is detached: no gradient ever reaches the teachers.
    """
    _check_temperature(temperature)
    teachers = _as_3d_teachers(teacher_logits).detach().float()
    return torch.softmax(teachers / temperature, dim=-1).mean(dim=0)


def _kd_per_row(student_logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """T**2 * KL(target || softmax(student / T)) per row (summed over classes), shape (batch,)."""
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    # xlogy gives 0 * log 0 = 0 for target entries that are exactly 0 (a saturated teacher softmax).
    kl = (torch.xlogy(target, target) - target * log_q).sum(dim=-1)
    return temperature**2 * kl


def _check_kd_args(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, alpha: float
) -> None:
    _check_temperature(temperature)
    _check_alpha(alpha)
    _check_student(student_logits)
    teachers = _as_3d_teachers(teacher_logits)
    if teachers.shape[1:] != student_logits.shape:
        raise UsageError(
            f"teacher_logits shape {tuple(teacher_logits.shape)} does not match student_logits shape "
            f"{tuple(student_logits.shape)} (expected (batch, classes) or (n_teachers, batch, classes))"
        )


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha * T**2 * KL(target || softmax(student / T)) + (1 - alpha) * cross_entropy(student, labels).

    target = ensemble_probs(teacher_logits, T); the KL is summed over classes and averaged over the batch.
    alpha=0 is plain cross-entropy; alpha=1 ignores the labels (they may be None). Each term is skipped
    entirely when its weight is 0, so an unused argument can never turn the loss into NaN.
    """
    _check_kd_args(student_logits, teacher_logits, temperature, alpha)
    batch, classes = student_logits.shape
    loss = student_logits.new_zeros((), dtype=torch.float32)
    if alpha > 0:
        target = ensemble_probs(teacher_logits, temperature)
        loss = loss + alpha * _kd_per_row(student_logits, target, temperature).mean()
    if alpha < 1:
        _check_labels(labels, batch, classes, rows=None)
        loss = loss + (1 - alpha) * F.cross_entropy(student_logits.float(), labels)
    return loss


def kd_loss_masked(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    temperature: float,
    alpha: float,
    has_gold: torch.Tensor,
) -> torch.Tensor:
    """Per-example KD for the Expert-Loop, where only some rows carry a gold label.

    Rule: a row with has_gold=True gets the kd_loss formula, alpha * T**2 * KL + (1 - alpha) * CE;
    a row with has_gold=False (labelled only by the teachers) gets the distillation term alone with
    weight 1, T**2 * KL, because there is no gold label to mix in; the loss is the mean over all rows.
    The labels of has_gold=False rows are never read (any value, e.g. -1, is fine) and cannot change
    the loss or its gradient. With has_gold all True this equals kd_loss.
    """
    _check_kd_args(student_logits, teacher_logits, temperature, alpha)
    batch, classes = student_logits.shape
    if not isinstance(has_gold, torch.Tensor) or has_gold.dtype != torch.bool or has_gold.shape != (batch,):
        shape = tuple(has_gold.shape) if isinstance(has_gold, torch.Tensor) else type(has_gold).__name__
        raise UsageError(f"has_gold must be a ({batch},) bool tensor, got {shape}")
    has_gold = has_gold.to(student_logits.device)

    target = ensemble_probs(teacher_logits, temperature)
    kd = _kd_per_row(student_logits, target, temperature)
    # Teacher-only rows always take the full KD term; gold rows take weight alpha.
    kd_weight = torch.where(has_gold, torch.full_like(kd, alpha), torch.ones_like(kd))
    per_row = kd_weight * kd
    if alpha < 1 and bool(has_gold.any()):
        _check_labels(labels, batch, classes, rows=has_gold)
        # Replace the unused labels by a valid class so cross_entropy never sees them; torch.where then
        # drops those rows' values and gradients, so the placeholder has no effect at all.
        safe_labels = torch.where(has_gold, labels, torch.zeros_like(labels))
        ce = F.cross_entropy(student_logits.float(), safe_labels, reduction="none")
        per_row = per_row + torch.where(has_gold, (1 - alpha) * ce, torch.zeros_like(ce))
    return per_row.mean()


def cross_entropy_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor | None,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Plain supervised cross-entropy; teacher_logits, temperature and alpha are accepted and ignored.

    It shares kd_loss's signature so the one training loop can take any loss callable.
    """
    _check_student(student_logits)
    batch, classes = student_logits.shape
    _check_labels(labels, batch, classes, rows=None)
    return F.cross_entropy(student_logits.float(), labels)
