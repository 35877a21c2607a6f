"""The one training loop every method shares. A method decides only the loss (and, for the
Expert-Loop, which examples the loop sees with which targets). No Ray in here."""

from __future__ import annotations

import contextlib
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import get_linear_schedule_with_warmup

from trainables.encode import EncodedSplit
from trainables.errors import TrainingDiverged
from trainables.metrics import classification_metrics

# loss(student_logits, batch) -> scalar; batch holds "labels", "teacher_logits", "has_gold".
LossFn = Callable[[torch.Tensor, dict], torch.Tensor]
EpochCallback = Callable[[int, dict], bool | None]  # True: stop after this epoch (early stopping)
TRAINING_STATE = "training_state"  # the key of on_epoch's stats (and of a report's state) holding a TrainingState


@dataclass(frozen=True)
class LoopSettings:
    learning_rate: float
    batch_size: int
    epochs: int
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # fraction of all steps spent warming the learning rate up from 0
    max_grad_norm: float = 1.0
    seed: int = 0
    num_threads: int = 1  # the trial's CPUs: more threads than CPUs only adds contention
    bf16: bool = False  # bfloat16 autocast on CPU
    eval_batch_size: int = 64
    length_grouping: bool = True  # batches of similar lengths waste fewer padded tokens


@dataclass(frozen=True)
class TrainingSet:
    """The rows of an encoded split a student trains on, with the targets it may see.
    labels[i] == -1 where the student must not see a gold label (has_gold False)."""

    encoded: EncodedSplit
    rows: np.ndarray  # indices into `encoded`
    labels: np.ndarray  # per row
    has_gold: np.ndarray  # bool per row
    teacher_logits: np.ndarray | None = None  # (n_teachers, len(rows), classes) or None
    has_teacher: np.ndarray | None = None  # bool per row: teacher soft labels usable (None: all rows)

    @classmethod
    def fully_labelled(cls, encoded: EncodedSplit, teacher_logits: np.ndarray | None = None):
        rows = np.arange(len(encoded))
        return cls(encoded, rows, encoded.labels.copy(), np.ones(len(rows), bool), teacher_logits)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, positions: np.ndarray) -> dict:
        inputs = self.encoded.batch(self.rows[positions])
        extra = {
            "labels": torch.from_numpy(self.labels[positions]),
            "has_gold": torch.from_numpy(self.has_gold[positions]),
            "has_teacher": None if self.has_teacher is None else torch.from_numpy(self.has_teacher[positions]),
            "teacher_logits": None if self.teacher_logits is None
            else torch.from_numpy(np.ascontiguousarray(self.teacher_logits[:, positions], dtype=np.float32)),
        }
        return inputs, extra


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group: bool) -> list:
    """Shuffled batches; with `group`, examples are sorted by length inside windows of 50 batches so
    a batch holds similar lengths, then the batch order is shuffled again (randomness is kept)."""
    order = rng.permutation(len(lengths))
    if group:
        window = batch_size * 50
        order = np.concatenate([
            chunk[np.argsort(lengths[chunk], kind="stable")]
            for chunk in np.array_split(order, max(1, math.ceil(len(order) / window)))
        ])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def make_optimizer(model, settings: LoopSettings) -> torch.optim.AdamW:
    """AdamW with the fused CPU kernel: one pass over each parameter instead of foreach's several
    whole-tensor passes. On minilm-l3 (17 M parameters, 12 M of them the word embeddings, whose dense
    gradient is updated every step) the optimizer step drops from about 250 ms to about 30 ms
    (2 threads; benchmarks/README.md). Same update rule; Hugging Face's Trainer uses it by default too."""
    return torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                             weight_decay=settings.weight_decay, fused=True)


@dataclass(frozen=True)
class TrainingState:
    """What, beside the weights, decides how training goes on after an epoch: the optimizer's moments,
    the schedule's position and the random streams (torch: dropout; the numpy Generator: batch order;
    python's `random`, for anything that draws from it). Restored with the weights, a resumed run
    continues exactly as the uninterrupted one would have (on CPU at the same thread count).
    The optimizer's tensors are the live optimizer's own: save a captured state before training goes on."""

    epoch: int  # epochs finished
    optimizer: dict  # torch.optim state_dict
    schedule: dict  # the learning-rate schedule's state_dict
    torch_rng: torch.Tensor  # torch.get_rng_state()
    numpy_rng: dict  # np.random.Generator.bit_generator.state
    python_rng: tuple  # random.getstate()

    @classmethod
    def capture(cls, epoch: int, optimizer, schedule, rng: np.random.Generator) -> TrainingState:
        return cls(epoch, optimizer.state_dict(), schedule.state_dict(), torch.get_rng_state(),
                   rng.bit_generator.state, random.getstate())

    def restore(self, optimizer, schedule, rng: np.random.Generator) -> None:
        optimizer.load_state_dict(self.optimizer)
        schedule.load_state_dict(self.schedule)
        torch.set_rng_state(self.torch_rng)
        rng.bit_generator.state = self.numpy_rng
        random.setstate(self.python_rng)


def epoch_steps(examples: int, batch_size: int) -> int:
    """Optimiser steps in one epoch over `examples` rows: the last batch may be short, never dropped."""
    return math.ceil(examples / batch_size)


def train(model, data: TrainingSet, loss_fn: LossFn, settings: LoopSettings,
          on_epoch: EpochCallback | None = None, first_epoch: int = 0,
          resume_from: TrainingState | None = None) -> None:
    """Fine-tune `model` in place for settings.epochs epochs.
    After every epoch `on_epoch(epoch_number, {"train_loss": ..., "epoch_seconds": ...,
    TRAINING_STATE: a function capturing the TrainingState now})` is called; the caller evaluates and
    reports there, and returns True to stop (early stopping; the learning-rate schedule still spans
    settings.epochs, the cap, so that where training stops does not change the steps before).
    To resume, pass the model with the weights of a finished epoch and that epoch's `resume_from`
    (exact); `first_epoch` alone (a checkpoint without a training state) puts back the schedule and the
    batch order but starts a fresh optimizer and dropout stream."""
    torch.set_num_threads(settings.num_threads)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    lengths = data.encoded.lengths()[data.rows]
    steps_per_epoch = epoch_steps(len(data), settings.batch_size)
    optimizer = make_optimizer(model, settings)
    total = steps_per_epoch * settings.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total), total)
    if resume_from is not None:
        first_epoch = resume_from.epoch
        resume_from.restore(optimizer, schedule, rng)
    elif first_epoch:
        _replay(first_epoch, steps_per_epoch, schedule, lambda: batch_order(
            lengths, settings.batch_size, rng, settings.length_grouping))
    for epoch in range(first_epoch, settings.epochs):
        batches = batch_order(lengths, settings.batch_size, rng, settings.length_grouping)
        started, losses = time.perf_counter(), []
        model.train()
        for positions in batches:
            losses.append(_step(model, data, positions, loss_fn, optimizer, schedule, settings))
        if on_epoch is not None and on_epoch(epoch + 1, {
                "train_loss": float(np.mean(losses)), "epoch_seconds": time.perf_counter() - started,
                TRAINING_STATE: lambda done=epoch + 1: TrainingState.capture(done, optimizer, schedule, rng),
        }):
            return


def _replay(epochs: int, steps_per_epoch: int, schedule, draw_batches: Callable[[], Any]) -> None:
    """Advance the schedule and the batch-order generator past `epochs` finished epochs."""
    with warnings.catch_warnings():  # stepping the schedule without optimizer steps is the point here
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        for _ in range(epochs * steps_per_epoch):
            schedule.step()
    for _ in range(epochs):
        draw_batches()


def _step(model, data, positions, loss_fn, optimizer, schedule, settings) -> float:
    inputs, extra = data.batch(positions)
    with autocast(settings.bf16):
        logits = model(**inputs).logits
    loss = loss_fn(logits.float(), extra)
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"loss became {loss.item()} (learning rate {settings.learning_rate}); "
                               "stopping this trial instead of training on garbage")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
    optimizer.step()
    schedule.step()
    return loss.item()


def length_sorted_batches(encoded: EncodedSplit, rows: np.ndarray, batch_size: int):
    """(positions in `rows`, the model's inputs) batch by batch, rows sorted by length so that padding stays
    small; the caller puts each batch's results back at its positions."""
    order = np.argsort(encoded.lengths()[rows], kind="stable")
    for start in range(0, len(rows), batch_size):
        positions = order[start : start + batch_size]
        yield positions, encoded.batch(rows[positions])


@torch.inference_mode()
def predict_logits(model, encoded: EncodedSplit, rows: np.ndarray | None = None, batch_size: int = 64,
                   bf16: bool = False) -> np.ndarray:
    """Logits (len(rows), classes) in the order of `rows` (default: every example)."""
    model.eval()
    rows = np.arange(len(encoded)) if rows is None else np.asarray(rows)
    out = None
    for positions, inputs in length_sorted_batches(encoded, rows, batch_size):
        with autocast(bf16):
            logits = model(**inputs).logits.float().numpy()
        if out is None:
            out = np.empty((len(rows), logits.shape[1]), dtype=np.float32)
        out[positions] = logits
    return np.empty((len(rows), 0), dtype=np.float32) if out is None else out


def evaluate(model, encoded: EncodedSplit, num_labels: int, batch_size: int = 64,
             bf16: bool = False) -> dict[str, float]:
    """accuracy, macro_f1 and mean cross-entropy loss on every example of the split."""
    return logit_metrics(predict_logits(model, encoded, batch_size=batch_size, bf16=bf16), encoded.labels, num_labels)


def logit_metrics(logits: np.ndarray, labels: np.ndarray, num_labels: int) -> dict[str, float]:
    """evaluate's figures from logits already computed (tuning/evaluate.py also needs the predictions)."""
    metrics = classification_metrics(logits, labels, num_labels)
    metrics["loss"] = float(F.cross_entropy(torch.from_numpy(logits), torch.tensor(labels)))
    return metrics
