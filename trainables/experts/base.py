"""One interface for whoever labels the rows the student queries: given rows, class probabilities and what
they cost. The teacher ensemble and the gold oracle are two implementations; a local language model
(llm.py), an OpenAI-compatible endpoint (endpoint.py) and a person (human.py) are the others.

An expert is bound to one split (the training split, whose pool the student queries); `rows` are indices
into it. Nothing here imports torch, so that `import trainables.experts` (and its --expert parser) stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # a type only: trainables.prepared imports torch, and --expert is parsed before torch loads
    from trainables.prepared import TeacherOutputs

PROB_TOLERANCE = 1e-6  # a row of probabilities may miss 1 by this much (float32 logits summed in float64)


@dataclass(frozen=True)
class Cost:
    """What answering cost. Additive: the cost of a round is the sum of its answers' costs.

    `price` is in the unit the user priced the expert in (e.g. dollars; see endpoint.Pricing). `gold_labels`
    counts gold labels read (the oracle's answers are gold labels: honest label accounting, DESIGN.md);
    `cache_hits` rows answered without a call of their own: read back from a cache, or (an endpoint) answered by
    the call for an earlier row of the same text in the round."""

    calls: int = 0  # requests answered (an endpoint), forward passes (a local model), rows (teachers, oracle)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # wall-clock time spent answering
    price: float = 0.0
    gold_labels: int = 0
    cache_hits: int = 0
    retries: int = 0  # failed attempts that were tried again (an endpoint)

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value
class ExpertAnswer:
    """probs: float64 (rows, classes), every row summing to 1. logits: the teachers' own (n_teachers, rows,
    classes) when the expert is the ensemble, so that distillation at temperature T keeps today's target
    (the mean over teachers of softmax(logits / T)); None for every other expert, whose log(probs) serve."""

    probs: np.ndarray
    cost: Cost = field(default_factory=Cost)
    logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        probs = np.array(self.probs, dtype=np.float64)  # a copy, read-only: frozen means frozen
        probs.setflags(write=False)
        object.__setattr__(self, "probs", probs)
        if probs.ndim != 2:
            raise ValueError(f"ExpertAnswer: probs must be (rows, classes), got shape {probs.shape}")
        if len(probs) and (not np.isfinite(probs).all() or probs.min() < 0
                           or np.abs(probs.sum(axis=1) - 1).max() > PROB_TOLERANCE):
            raise ValueError("ExpertAnswer: every row of probs must be finite, >= 0 and sum to 1")
        if self.logits is not None and (self.logits.ndim != 3 or self.logits.shape[1:] != probs.shape):
            raise ValueError(f"ExpertAnswer: logits of shape {self.logits.shape} do not fit probs {probs.shape}")

    @property
    def labels(self) -> np.ndarray:
        """The most likely class per row (ties: the lower class)."""
        return self.probs.argmax(axis=1)


@runtime_checkable
class Expert(Protocol):
    """Labels rows of the split it was built for."""

    name: str  # as --expert names it: "teachers", "oracle", "llm:smollm2", "openai", "human"
    sunk_gold_labels: int  # gold labels spent to make the expert before it answers anything (teachers' training)

    def label(self, rows: np.ndarray) -> ExpertAnswer: ...


def normalise(probs: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to exactly 1 in float64 (float32 softmax outputs miss by ~1e-7)."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs / probs.sum(axis=1, keepdims=True)


def as_rows(rows) -> np.ndarray:
    return np.asarray(rows, dtype=np.int64).reshape(-1)


class TeacherExpert:
    """The prepared teacher ensemble: its probabilities are the mean over teachers of softmax(logits), read
    from the logits cached at preparation (trainables/prepared.py), so an answer costs nothing now; the
    gold labels the teachers were fine-tuned on are its sunk cost."""

    name = "teachers"

    def __init__(self, teachers: TeacherOutputs, split: str = "train") -> None:
        self.teachers, self.split = teachers, split
        self.sunk_gold_labels = teachers.teacher_labels

    def label(self, rows) -> ExpertAnswer:
        rows = as_rows(rows)
        logits = self.teachers.logits[self.split][:, rows]
        return ExpertAnswer(normalise(self.teachers.ensemble_probs(self.split)[rows]), Cost(calls=len(rows)), logits)


class OracleExpert:
    """A perfect expert: the gold label as a one-hot. Each answer is a gold label, counted as such."""

    name = "oracle"
    sunk_gold_labels = 0

    def __init__(self, gold: np.ndarray, num_labels: int) -> None:
        self.gold, self.num_labels = np.asarray(gold, dtype=np.int64), num_labels

    def label(self, rows) -> ExpertAnswer:
        rows = as_rows(rows)
        return ExpertAnswer(np.eye(self.num_labels)[self.gold[rows]], Cost(calls=len(rows), gold_labels=len(rows)))
