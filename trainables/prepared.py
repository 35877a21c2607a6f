"""What the driver prepares once per sweep and every trial receives through Ray's object store:
tokenized splits, the student blueprint and (for kd / active_loop) the teacher ensemble's logits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainables.encode import EncodedSplit
from trainables.experts.runtime import ExpertContext
from trainables.models import ModelBlueprint


@dataclass(frozen=True)
class TeacherOutputs:
    names: tuple[str, ...]
    logits: dict[str, np.ndarray]  # split -> float32 (n_teachers, n_examples, classes)
    teacher_labels: int  # gold labels the teachers were fine-tuned on (0 for given checkpoints)
    accuracy: dict[str, float] = field(default_factory=dict)  # e.g. "minilm-l6/val", "ensemble/test"
    train_rows: np.ndarray | None = None  # training examples the teachers learned from (None: all)

    def ensemble_probs(self, split: str) -> np.ndarray:
        """Mean over teachers of softmax(logits): the ensemble's label distribution (T = 1)."""
        logits = self.logits[split]
        shifted = np.exp(logits - logits.max(axis=2, keepdims=True))
        return (shifted / shifted.sum(axis=2, keepdims=True)).mean(axis=0)


@dataclass(frozen=True)
class Prepared:
    data_name: str
    task: str
    label_names: tuple[str, ...]
    encoded: dict[str, EncodedSplit]  # "train", "validation", "test", tokenized for the student
    student: ModelBlueprint
    teachers: TeacherOutputs | None
    num_threads: int  # the trial's CPUs
    provenance: dict  # how the data and models were obtained; saved beside every checkpoint
    expert_context: ExpertContext | None = None  # the training split's text and files, for llm / openai / human

    @property
    def num_labels(self) -> int:
        return len(self.label_names)
