"""The data settings of a sweep, a study or a run: what the command line decides before anything heavy
is imported (so `--help` answers at once). tuning/assets/prepare.py turns them into data, tokens and teachers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from trainables import precision
from trainables.errors import UsageError

DEFAULT_TEACHERS = ("minilm-l6", "minilm-l6-sre")


@dataclass(frozen=True)
class DataSettings:
    """Sweep-level settings: the same for every trial of a sweep (they decide what is cached)."""

    dataset: str = "medmcqa-subjects"
    student: str = "minilm-l3"  # 3 of minilm-l6's 6 layers: smaller than its teachers, as DistilBERT is
    teachers: tuple[str, ...] = DEFAULT_TEACHERS
    split_seed: int = 0  # the train/validation/test split; trials vary their own seed
    validation_size: int = 500
    test_size: int = 500
    max_length: int = 128  # tokens; the default data: a question with its options is 39 tokens (median), 99% <= 93
    max_train_examples: int | None = None  # a stratified subset of train, for quick runs
    cpus_per_trial: int = 1
    teacher_epochs: int = 2
    teacher_learning_rate: float = 5e-5
    teacher_batch_size: int = 16
    teacher_split: float = 0.0  # > 0: teachers learn only from this stratified share of train
    # Teachers' precision: "auto" (bfloat16 where this CPU computes it natively and faster), true, false.
    bf16: bool | str = "auto"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cpus_per_trial < 1:
            raise UsageError(f"--cpus-per-trial must be >= 1, got {self.cpus_per_trial}")
        if self.split_seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.split_seed}")
        if self.teacher_epochs < 1:
            raise UsageError(f"--teacher-epochs must be >= 1, got {self.teacher_epochs}")
        if not (math.isfinite(self.teacher_learning_rate) and self.teacher_learning_rate > 0):
            raise UsageError(f"teacher_learning_rate must be a finite number > 0, got {self.teacher_learning_rate}")
        if self.teacher_batch_size < 1:
            raise UsageError(f"teacher_batch_size must be >= 1, got {self.teacher_batch_size}")
        if self.max_length < 8:
            raise UsageError(f"--max-length must be >= 8, got {self.max_length}")
        if not 0 <= self.teacher_split < 1:
            raise UsageError(f"--teacher-split must be in [0, 1), got {self.teacher_split}")
        try:
            object.__setattr__(self, "bf16", precision.parse(self.bf16))  # still "auto": decided where teachers train
        except ValueError:
            raise UsageError(f"--bf16 must be auto, true or false, got {self.bf16!r}") from None

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, stored: dict) -> DataSettings:
        """The inverse of to_dict, for settings read back from sweep.json, run_config.json or
        best_configs.json (keys this version does not know are left out)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in stored.items() if key in known}
        if "teachers" in values:
            values["teachers"] = tuple(values["teachers"])
        return cls(**values)


SMOKE_SETTINGS = dict(dataset="smoke", student="tiny-bert", teachers=("tiny-bert", "tiny-bert-2"),
                      validation_size=24, test_size=24, max_length=32, teacher_epochs=6,
                      teacher_learning_rate=3e-3, teacher_batch_size=8)
