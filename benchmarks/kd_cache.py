"""Section 3: a knowledge-distillation trial with the teacher ensemble's logits cached (what the
project does: `TrainingSet` with teacher_logits, computed once per sweep) against the same trial with
the teachers run on every batch inside the loss.

A trial here is what `trainables.methods.run_supervised_or_kd` does for kd: a fresh student, the
shared loop, and after every epoch an evaluation on validation and test. The validation and test
parts keep the default trial's proportion to the training split (500 each to 4,006), so the
evaluation weighs in the trial's time as it does in a real sweep. The teachers are the default two
pretrained encoders with fresh heads: the cost of a forward pass does not depend on the weights, so
they are not fine-tuned here."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from benchmarks import common
from benchmarks.timing import interleave, median, ratio, timed
from trainables.encode import EncodedSplit
from trainables.loop import LoopSettings, TrainingSet, autocast, evaluate, predict_logits, train
from trainables.losses import kd_loss
from trainables.models import build_model

TEMPERATURE, ALPHA = 4.0, 0.7  # TrialConfig's defaults
DEFAULT_TRAIN, DEFAULT_EVAL = 4006, 500  # the default split's sizes (medmcqa-subjects since 2026-12-06)


@dataclasses.dataclass(frozen=True)
class TeachersPerBatch(TrainingSet):
    """A TrainingSet without cached logits whose batches carry each teacher's own model inputs."""

    teacher_splits: tuple[EncodedSplit, ...] = ()  # the same examples, tokenized for each teacher

    def batch(self, positions: np.ndarray) -> dict:
        inputs, extra = super().batch(positions)
        extra["teacher_inputs"] = [split.batch(self.rows[positions]) for split in self.teacher_splits]
        return inputs, extra


def per_batch_teacher_loss(teachers: list):
    """kd_loss with the teachers' logits computed here, for this batch, every time."""
    def loss(logits, batch):
        # not inference_mode: the targets are saved for the student's backward pass. The loss runs outside
        # the step's autocast, so the teachers get the trial's precision here.
        with torch.no_grad(), autocast(common.TRIAL_BF16):
            teacher_logits = torch.stack([teacher(**inputs).logits.float()
                                          for teacher, inputs in zip(teachers, batch["teacher_inputs"], strict=True)])
        return kd_loss(logits, teacher_logits, batch["labels"], TEMPERATURE, ALPHA)
    return loss


def cached_loss(logits, batch):
    return kd_loss(logits, batch["teacher_logits"], batch["labels"], TEMPERATURE, ALPHA)


def kd_trial(student, data: TrainingSet, loss, encoded: dict, num_labels: int, seed: int) -> float:
    """Seconds for one trial: build the student, train one epoch, evaluate validation and test."""
    started = time.perf_counter()
    model = build_model(student, seed)
    # In the trial's default precision (the per-batch teachers too: see per_batch_teacher_loss).
    settings = LoopSettings(learning_rate=common.LEARNING_RATE, batch_size=common.BATCH_SIZE, epochs=1,
                            seed=seed, num_threads=common.THREADS, bf16=common.TRIAL_BF16)

    def on_epoch(_epoch: int, _stats: dict) -> None:
        for split in ("validation", "test"):
            evaluate(model, encoded[split], num_labels, bf16=common.TRIAL_BF16)

    train(model, data, loss, settings, on_epoch)
    return time.perf_counter() - started


def eval_size(train_examples: int) -> int:
    return max(16, round(train_examples * DEFAULT_EVAL / DEFAULT_TRAIN))


def measure(train_examples: int, repeat: int) -> tuple[dict, dict]:
    torch.set_num_threads(common.THREADS)
    evaluation = eval_size(train_examples)
    data = common.load(train=train_examples, validation=evaluation, test=evaluation)
    student = common.blueprint(common.STUDENT, data)
    encoded = common.encode(student, data)
    teacher_blueprints = [common.blueprint(name, data) for name in common.TEACHERS]
    teacher_splits = tuple(common.encode(bp, data)["train"] for bp in teacher_blueprints)
    teachers = [build_model(bp, seed=index).eval() for index, bp in enumerate(teacher_blueprints)]
    # The one-off cost the cache saves every later trial: each teacher's logits on the training split.
    logits, build_seconds = timed(lambda: np.stack([predict_logits(teacher, split)
                                                    for teacher, split in zip(teachers, teacher_splits, strict=True)]))
    train_split = encoded["train"]
    cached = TrainingSet.fully_labelled(train_split, logits)
    per_batch = TeachersPerBatch(train_split, np.arange(len(train_split)), train_split.labels.copy(),
                                 np.ones(len(train_split), bool), teacher_splits=teacher_splits)
    runs = {
        "cached": lambda seed: kd_trial(student, cached, cached_loss, encoded, data.num_labels, seed),
        "per_batch": lambda seed: kd_trial(student, per_batch, per_batch_teacher_loss(teachers), encoded,
                                           data.num_labels, seed),
    }
    seconds = interleave(runs, repeat)
    figures = {
        "kd_cache_time_ratio": ratio(median(seconds["cached"]), median(seconds["per_batch"])),
        "kd_cache_build_seconds": build_seconds,
        # One trial paying for the cache alone; a sweep shares it over all its trials (and later sweeps).
        "kd_cache_time_ratio_including_build": ratio(median(seconds["cached"]) + build_seconds,
                                                     median(seconds["per_batch"])),
    }
    raw = {"seconds": seconds, "cache_build_seconds": build_seconds, "train_examples": len(train_split),
           "validation_examples": len(encoded["validation"]), "test_examples": len(encoded["test"]),
           "teachers": list(common.TEACHERS), "epochs": 1, "bf16": common.TRIAL_BF16}
    return figures, raw
