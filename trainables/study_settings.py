"""The budget study's arms and settings, checked without torch: study.py validates a study's
arguments with these before it imports Ray, torch or transformers, so bad input fails at once.
trainables/study_arms.py trains the arms."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.experts.url import check_endpoint_url
from trainables.query import READS_EXPERT, STRATEGIES

KINDS = ("supervised", "kd_all", "oracle", "expert", "full")
FULL_ARMS = ("full:supervised", "full:kd")
# Experts an arm may name after '@' (expert:margin@llm): those that answer from the rows' text at a cost.
# A person (human) is not among them: a round of theirs pauses the run, which a grid of trials cannot wait for.
NAMED_EXPERTS = ("llm", "openai")
DEFAULT_LLM = "smollm2"  # the catalogue's small local model: offline, no key
# Columns of a study's reports and study.csv (here, not beside the training code, so that the report
# reads them without importing torch).
BUDGET = "budget"
GOLD_LABELS = "gold_labels"
VALIDATION_LABELS = "validation_labels"  # gold labels of the validation split: they choose every setting
TEST_PREDICTIONS = "test_predictions"  # the predicted class of every test example, as digits/commas
QUERY_LOG = "query_log"  # a query arm's point: JSON of its new rows, their gold and expert labels (queries.csv)
# The point's student on the validation split's inputs (no label read), for the stopping criteria judged after
# the fact: its predicted classes (as TEST_PREDICTIONS) and their mean normalised entropy.
STOP_PREDICTIONS, STOP_UNCERTAINTY = "stop_predictions", "stop_uncertainty"

SELECTIONS = ("last", "share", "validation")  # the first is the default (trainables/early_stopping.py says why)
MIN_PATIENCE_EPOCHS = 2  # one epoch without a gain is often noise on a small selection set
MIN_CAP_EPOCHS = 3


@dataclasses.dataclass(frozen=True)
class StoppingRule:
    # Defaults measured on the default data at the default recipe, batch 16 (benchmarks/results/
    # stopping-probe-2026-12-06 and recipe-probe-2026-12-06): selected on the validation split, supervised
    # points reach their best after 25-37 epochs at 100-400 labels and 9,600-12,400 examples at 400-2,003; a
    # cap of 800 steps of 8 and 30 epochs (the --quick study of that day) stopped them 5-10 points low.
    max_steps: int = 1000  # cap on optimiser steps, 16,000 examples at batch 16 (turned into epochs, <= max_epochs)
    patience_steps: int = 150  # steps without a better selection score before stopping: 2,400 examples
    max_epochs: int = 40

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.patience_steps < 1 or self.max_epochs < 1:
            raise UsageError(f"--max-steps, --patience-steps and the epoch cap must be >= 1, got {self.max_steps}, "
                             f"{self.patience_steps}, {self.max_epochs}")

    def epochs(self, steps_per_epoch: int) -> tuple[int, int]:
        """(cap in epochs, patience in epochs) for a training set of this many steps an epoch."""
        steps_per_epoch = max(1, steps_per_epoch)
        cap = min(self.max_epochs, max(MIN_CAP_EPOCHS, math.ceil(self.max_steps / steps_per_epoch)))
        patience = max(MIN_PATIENCE_EPOCHS, math.ceil(self.patience_steps / steps_per_epoch))
        return cap, min(patience, cap)


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    kind: str  # one of KINDS
    strategy: str | None = None  # oracle / expert: the query strategy; full: "supervised" or "kd"
    # Who labels the rows the arm does not hold gold for, as --expert names it: "teachers" (expert:<strategy>,
    # kd_all, full:kd), "llm:<preset or file>" (@llm), "openai" (@openai), "oracle", or "" (gold only).
    expert: str = ""

    @property
    def queries(self) -> bool:
        return self.kind in ("oracle", "expert")

    @property
    def single_point(self) -> bool:
        """One point at the pool size instead of a curve over the budgets."""
        return self.kind in ("full", "kd_all")

    @property
    def needs_teachers(self) -> bool:
        return self.expert == "teachers"

    @property
    def answers_in_state(self) -> bool:
        """A named expert (@llm, @openai): its answers cost something, so the trial's state keeps them."""
        return self.expert_kind in NAMED_EXPERTS

    @property
    def gives_gold(self) -> bool:
        """Its queried rows get their gold labels (oracle:<strategy>), as ExpertSpec.gives_gold."""
        return self.expert == "oracle"

    @property
    def expert_kind(self) -> str:
        return self.expert.partition(":")[0]


def parse_arm(name: str, llm: str = DEFAULT_LLM) -> Arm:
    """`llm`: the language model an @llm arm asks (the study's --expert llm:...), a preset or a .gguf file."""
    kind, _, strategy = name.partition(":")
    if kind in ("supervised", "kd_all") and not strategy:
        return Arm(name, kind, expert="teachers" if kind == "kd_all" else "")
    if kind == "expert" and "@" in strategy:
        return _named_expert_arm(name, llm)
    if kind in ("oracle", "expert") and strategy in STRATEGIES:
        return Arm(name, kind, strategy, expert=kind if kind == "oracle" else "teachers")
    if name in FULL_ARMS:
        return Arm(name, "full", strategy, expert="teachers" if name == "full:kd" else "")
    raise UsageError(f"unknown study arm '{name}' (supervised, kd_all, oracle:<strategy>, expert:<strategy>, "
                     f"expert:<strategy>@llm, expert:<strategy>@openai, {', '.join(FULL_ARMS)}; "
                     f"strategies: {', '.join(STRATEGIES)})")


def _named_expert_arm(name: str, llm: str) -> Arm:
    """expert:<strategy>@llm or @openai: the Expert-Loop with that expert in place of the teachers."""
    strategy, _, suffix = name.partition(":")[2].partition("@")
    if suffix not in NAMED_EXPERTS:
        raise UsageError(f"study arm '{name}': the expert after '@' is llm (the study's --expert llm:...) or openai "
                         f"(--expert-url, --expert-model), got {suffix!r}; plain expert:<strategy> asks the teachers"
                         + (" (a person pauses the run: not in a study)" if suffix == "human" else ""))
    if strategy not in STRATEGIES:
        raise UsageError(f"study arm '{name}': unknown strategy {strategy!r} (strategies: {', '.join(STRATEGIES)})")
    if strategy in READS_EXPERT:
        raise UsageError(f"study arm '{name}': {strategy} reads the teachers' outputs on the whole pool, which an "
                         f"arm asking {suffix} has not got: use expert:{strategy} (the teachers)")
    return Arm(name, "expert", strategy, expert=f"llm:{llm}" if suffix == "llm" else "openai")


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """One trial of the study: an arm, a seed, the budgets, and the training recipe."""

    arm: str
    seed: int
    budgets: tuple[int, ...]  # labelled rows the student trains on, increasing
    initial: int  # gold labels the query arms start from
    recipe: TrialConfig  # learning rate, batch, T, alpha, pool_sample_size, skip_fraction, bf16
    stopping: StoppingRule = StoppingRule()  # early stopping: cap and patience in optimiser steps
    selection: str = SELECTIONS[0]  # which epoch a point keeps: the last, or the best on a held-out share or validation
    selection_share: float = 0.1
    stratified_initial: bool = False  # label-informed: reads the pool's hidden labels to stratify
    warm_start: bool = False  # continue the previous budget's (best) student instead of a fresh one
    llm: str = DEFAULT_LLM  # the language model @llm arms ask: a preset or a .gguf file (--expert llm:...)
    expert_url: str = ""  # @openai arms: the endpoint (--expert-url, --expert-model; the key from the environment)
    expert_model: str = ""

    def __post_init__(self) -> None:
        arm = parse_arm(self.arm, self.llm)
        if arm.expert == "openai" and not (self.expert_url.strip() and self.expert_model.strip()):
            raise UsageError(f"study arm '{self.arm}' asks an OpenAI-compatible endpoint: give --expert-url and "
                             "--expert-model")
        if arm.expert == "openai":  # as TrialConfig will in each trial, but before the study starts
            check_endpoint_url(self.expert_url)
        if not self.budgets or list(self.budgets) != sorted(set(self.budgets)) or self.budgets[0] < 1:
            raise UsageError(f"budgets must be distinct, increasing and >= 1, got {list(self.budgets)}")
        if not 1 <= self.initial <= self.budgets[0]:
            raise UsageError(f"--initial must be between 1 and the smallest budget {self.budgets[0]}, "
                             f"got {self.initial}")
        if self.selection not in SELECTIONS:
            raise UsageError(f"--selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        if not 0 < self.selection_share < 1:
            raise UsageError(f"the selection share must lie strictly between 0 and 1, got {self.selection_share}")
        sample = self.recipe.pool_sample_size
        largest = max(b - a for a, b in zip((self.initial, *self.budgets), self.budgets, strict=False))
        if arm.queries and arm.strategy != "random" and 0 < sample < largest:  # else a trial fails at that step
            raise UsageError(f"pool_sample_size {sample} scores fewer pool rows than the largest step between budgets "
                             f"queries at once ({largest}): set pool_sample_size to 0 (the whole pool) or >= {largest}")
        if self.selection == "share" and min(self.initial, self.budgets[0]) < 2:
            raise UsageError("with --selection share every point holds out at least one label: "
                             "--initial and every budget must be >= 2")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "budgets": list(self.budgets), "recipe": self.recipe.to_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> StudySettings:
        if "min_steps" in values:
            raise UsageError("this study was made by the first version of the budget study (a fixed number of "
                             "steps per point, the last epoch kept); this version trains to a plateau and keeps "
                             "the best epoch, so the two cannot be mixed: finish it with a checkout from before "
                             "2026-12-06, or start a new study")
        return cls(**{**values, "budgets": tuple(int(b) for b in values["budgets"]),
                      "recipe": TrialConfig.from_dict(values["recipe"]),
                      "stopping": StoppingRule(**values.get("stopping", {}))})


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
