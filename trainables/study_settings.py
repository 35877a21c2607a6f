"""The budget study's arms and settings, checked without torch: study.py validates a study's
arguments with these before it imports Ray, torch or transformers, so bad input fails at once.
trainables/study_arms.py trains the arms."""

from __future__ import annotations

import dataclasses

import numpy as np

from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.query import STRATEGIES

KINDS = ("supervised", "kd_all", "oracle", "expert", "full")
FULL_ARMS = ("full:supervised", "full:kd")
# Columns of a study's reports and study.csv (here, not beside the training code, so that the report
# reads them without importing torch).
BUDGET = "budget"
GOLD_LABELS = "gold_labels"
VALIDATION_LABELS = "validation_labels"  # gold labels of the validation split: they choose every setting
TEST_PREDICTIONS = "test_predictions"  # the predicted class of every test example, as digits/commas


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    kind: str  # one of KINDS
    strategy: str | None = None  # oracle / expert: the query strategy; full: "supervised" or "kd"

    @property
    def queries(self) -> bool:
        return self.kind in ("oracle", "expert")

    @property
    def needs_teachers(self) -> bool:
        return self.kind in ("expert", "kd_all") or self.name == "full:kd"


def parse_arm(name: str) -> Arm:
    kind, _, strategy = name.partition(":")
    if kind in ("supervised", "kd_all") and not strategy:
        return Arm(name, kind)
    if kind in ("oracle", "expert") and strategy in STRATEGIES:
        return Arm(name, kind, strategy)
    if name in FULL_ARMS:
        return Arm(name, "full", strategy)
    raise UsageError(f"unknown study arm '{name}' (supervised, kd_all, oracle:<strategy>, expert:<strategy>, "
                     f"{', '.join(FULL_ARMS)}; strategies: {', '.join(STRATEGIES)})")


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """One trial of the study: an arm, a seed, the budgets, and the training recipe."""

    arm: str
    seed: int
    budgets: tuple[int, ...]  # labelled rows the student trains on, increasing
    initial: int  # gold labels the query arms start from
    recipe: TrialConfig  # learning rate, batch, epochs, T, alpha, pool_sample_size, skip_fraction, bf16
    min_steps: int = 250  # optimiser steps every point gets at least (small budgets get more epochs)
    stratified_initial: bool = False  # label-informed: reads the pool's hidden labels to stratify
    warm_start: bool = False  # continue the previous budget's student instead of a fresh one

    def __post_init__(self) -> None:
        parse_arm(self.arm)
        if not self.budgets or list(self.budgets) != sorted(set(self.budgets)) or self.budgets[0] < 1:
            raise UsageError(f"budgets must be distinct, increasing and >= 1, got {list(self.budgets)}")
        if not 1 <= self.initial <= self.budgets[0]:
            raise UsageError(f"--initial must be between 1 and the smallest budget {self.budgets[0]}, "
                             f"got {self.initial}")
        if self.min_steps < 0:
            raise UsageError(f"--min-steps must be >= 0, got {self.min_steps}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "budgets": list(self.budgets), "recipe": self.recipe.to_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> StudySettings:
        return cls(**{**values, "budgets": tuple(int(b) for b in values["budgets"]),
                      "recipe": TrialConfig.from_dict(values["recipe"])})


def check_budgets(study: StudySettings, pool_size: int) -> None:
    if study.budgets[-1] > pool_size:
        raise UsageError(f"the largest budget {study.budgets[-1]} is larger than the student's pool of "
                         f"{pool_size} examples (the training split minus the teachers' share)")


def encode_predictions(predictions: np.ndarray) -> str:
    """Predicted classes as text that fits a CSV cell: one digit each below 10 classes, else commas."""
    values = [int(p) for p in predictions]
    if all(v < 10 for v in values):
        return "".join(str(v) for v in values)
    return ",".join(str(v) for v in values)


def decode_predictions(text: str) -> np.ndarray:
    text = str(text)
    return np.array([int(v) for v in (text.split(",") if "," in text else text)], dtype=np.int64)
