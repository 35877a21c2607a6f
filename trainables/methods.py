"""Supervised fine-tuning and knowledge distillation: the same loop, a different loss.
(The Expert-Loop, which adds query rounds around the loop, is in trainables/expert_loop.py.)

`report(metrics, model, state)` is how a run hands results out: in a Ray trial it becomes
`ray.tune.report` with a checkpoint; in `tuning/train.py` it prints and saves."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.loop import TRAINING_STATE, LoopSettings, TrainingSet, evaluate, logit_metrics, train
from trainables.losses import cross_entropy_loss, kd_loss
from trainables.models import build_model
from trainables.prepared import Prepared

Reporter = Callable[[dict, torch.nn.Module, dict], None]


def loop_settings(trial: TrialConfig, prepared: Prepared, epochs: int | None = None) -> LoopSettings:
    return LoopSettings(
        learning_rate=trial.learning_rate,
        batch_size=trial.batch_size,
        epochs=epochs or trial.epochs,
        weight_decay=trial.weight_decay,
        warmup_ratio=trial.warmup_ratio,
        seed=trial.seed,
        num_threads=prepared.num_threads,
        bf16=trial.bf16,
    )


def evaluation_metrics(model, prepared: Prepared, bf16: bool, validation_logits: np.ndarray | None = None
                       ) -> dict[str, float]:
    """Validation metrics (used to choose) and test metrics (for the record only). `validation_logits`: the
    model's logits on the validation split when the caller has them already (the Expert-Loop's stopping check)."""
    validation = prepared.encoded["validation"]
    val = (evaluate(model, validation, prepared.num_labels, bf16=bf16) if validation_logits is None
           else logit_metrics(validation_logits, validation.labels, prepared.num_labels))
    test = evaluate(model, prepared.encoded["test"], prepared.num_labels, bf16=bf16)
    return {
        m.VAL_ACCURACY: val["accuracy"], m.VAL_MACRO_F1: val["macro_f1"], m.VAL_LOSS: val["loss"],
        m.TEST_ACCURACY: test["accuracy"], m.TEST_MACRO_F1: test["macro_f1"],
    }


def teacher_metrics(prepared: Prepared) -> dict[str, float]:
    """Each teacher's and the ensemble's accuracy, in every report, so weak experts stay visible."""
    if prepared.teachers is None:
        return {}
    return {f"teacher_accuracy/{key}": value for key, value in prepared.teachers.accuracy.items()}


def label_counts(trial: TrialConfig, prepared: Prepared, rows: int) -> dict[str, int]:
    """Supervised reads every gold label; kd reads them unless alpha = 1 and the teachers' targets
    unless alpha = 0 (the rule of trainables/metrics.py)."""
    kd = trial.method == "kd"
    return {
        m.LABELS_USED: 0 if kd and trial.alpha == 1.0 else rows,
        m.TEACHER_LABELS: prepared.teachers.teacher_labels if kd else 0,
        m.EXPERT_QUERIES: rows if kd else 0,
        m.TEACHER_LABELLED_ROWS: rows if kd and trial.alpha > 0 else 0,
        m.VALIDATION_LABELS: len(prepared.encoded["validation"]),
    }


def make_loss(trial: TrialConfig):
    if trial.method == "supervised":
        return lambda logits, batch: cross_entropy_loss(logits, None, batch["labels"], 1.0, 0.0)
    return lambda logits, batch: kd_loss(logits, batch["teacher_logits"], batch["labels"],
                                         trial.temperature, trial.alpha)


def run_supervised_or_kd(trial: TrialConfig, prepared: Prepared, report: Reporter,
                         resume: dict | None = None, model=None) -> None:
    """Train on the whole training split, evaluate and report after every epoch.
    `resume` (the state of a report: {"epoch": n, ...}, with its TrainingState when the checkpoint
    kept one) with `model` (weights of epoch n) continues an interrupted trial, exactly when it can."""
    trial = trial.decided()
    teacher_logits = None
    if trial.method == "kd":
        teacher_logits = prepared.teachers.logits["train"]
    data = TrainingSet.fully_labelled(prepared.encoded["train"], teacher_logits)
    model = model if model is not None else build_model(prepared.student, trial.seed)
    counts = label_counts(trial, prepared, len(data))
    started = time.perf_counter() - (resume or {}).get(m.TRAIN_SECONDS, 0.0)

    def on_epoch(epoch: int, stats: dict) -> None:
        metrics = {**evaluation_metrics(model, prepared, trial.bf16), **counts, **teacher_metrics(prepared),
                   m.EPOCH: epoch, "train_loss": stats["train_loss"]}
        metrics[m.TRAIN_SECONDS] = time.perf_counter() - started
        # The training state is captured after evaluating, which draws no random numbers, right before
        # the report saves it: what the next epoch starts from.
        report(metrics, model, {"epoch": epoch, m.TRAIN_SECONDS: metrics[m.TRAIN_SECONDS],
                                TRAINING_STATE: stats[TRAINING_STATE]()})

    resume = resume or {}
    train(model, data, make_loss(trial), loop_settings(trial, prepared), on_epoch,
          first_epoch=resume.get("epoch", 0), resume_from=resume.get(TRAINING_STATE))
