"""One trial's settings as a frozen dataclass, validated on creation. At the Ray boundary it is a
plain dict (`to_dict` / `from_dict`), so Tune's searchers only ever see numbers and strings."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from trainables import precision
from trainables.errors import UsageError
from trainables.experts.spec import parse_expert
from trainables.experts.url import check_endpoint_url
from trainables.query import STRATEGIES
from trainables.stopping_criteria import parse_stop

METHODS = ("supervised", "kd", "active_loop")


@dataclass(frozen=True)
class TrialConfig:
    method: str
    learning_rate: float = 5e-5  # AdamW peak rate; small BERTs fine-tune well in 1e-5..1e-4
    batch_size: int = 16
    epochs: int = 3  # per round for the Expert-Loop (unless round_steps)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 0  # model initialisation and batch order (the data split has its own seed)
    # bfloat16 autocast on CPU: "auto" uses it only where the CPU computes bfloat16 natively and a short
    # measurement finds it faster (trainables/precision.py), decided in the process that trains (`decided`,
    # whose bool the reports and checkpoints record); true or false force it. Building a config measures nothing.
    bf16: bool | str = "auto"
    temperature: float = 4.0  # kd, active_loop: softens the teachers' distributions
    alpha: float = 0.7  # kd, active_loop: weight of the distillation term against gold cross-entropy
    initial_pool_size: int = 100  # active_loop: gold-labelled examples to start from
    query_size: int = 50  # active_loop: examples the experts label per round
    max_iterations: int = 3  # active_loop: query rounds after the first training
    # active_loop: train each round for about this many optimiser steps, in whole epochs (at least 3, at most 40:
    # the budget study's rule, trainables/study_settings.StoppingRule), instead of `epochs` epochs; 0: `epochs`.
    # A round on 100-250 labels at batch 16 is 7-16 steps an epoch: 2-4 epochs (14-64 steps) leave the student
    # at the majority class (benchmarks/results/active-loop-steps-2026-12-07).
    round_steps: int = 0
    strategy: str = "least_confidence"  # active_loop: see trainables/query.py
    # active_loop: who labels the queried examples: teachers, oracle (the gold label: a perfect expert),
    # llm:<preset or .gguf file>, openai (expert_url, expert_model) or human (trainables/experts/).
    expert: str = "teachers"
    expert_url: str = ""  # openai: the API's base URL, e.g. http://127.0.0.1:8080/v1 (the key: OPENAI_API_KEY)
    expert_model: str = ""  # openai: the model's name on that endpoint
    # What one expert label costs, in the user's unit (a priced cost; gold labels cost 1 in the budget study):
    # charged per answered row, so that reports put the expert's labels on one axis with gold ones.
    expert_price: float = 0.0
    warm_start: bool = False  # active_loop: continue the previous round's student instead of a fresh one
    skip_fraction: float = 0.2  # active_loop, robust_least_confidence: share of the pool skipped
    # active_loop: score a seeded random sample of this many pool examples per round (0: the whole
    # pool). Scoring is a forward pass per example; on CPU a 2,000-example pool costs more than training.
    pool_sample_size: int = 0
    # active_loop, bald: forward passes with dropout on per round; each costs about a plain pass over the pool.
    mc_passes: int = 10
    # active_loop: a stopping criterion judged after every round on the validation split's inputs (never its
    # labels), e.g. kappa:0.99, delta_f:0.05, uncertainty:0.05, max_rounds:3 (trainables/stopping_criteria.py);
    # "" runs every round up to max_iterations.
    stop: str = ""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "bf16", precision.parse(self.bf16))
        except ValueError:
            raise UsageError(f"bf16 must be auto, true or false, got {self.bf16!r}") from None
        _check(self.method in METHODS, f"unknown method '{self.method}' (choose from {', '.join(METHODS)})")
        for name in (f.name for f in dataclasses.fields(self) if f.type == "float"):  # inf passes a `> 0` check
            _check(math.isfinite(getattr(self, name)), f"{name} must be a finite number, got {getattr(self, name)}")
        _check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        _check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        _check(0 <= self.alpha <= 1, f"alpha must be in [0, 1], got {self.alpha}")
        _check(self.initial_pool_size >= 1, f"initial_pool_size must be >= 1, got {self.initial_pool_size}")
        _check(self.query_size >= 1, f"query_size must be >= 1, got {self.query_size}")
        _check(self.max_iterations >= 0, f"max_iterations must be >= 0, got {self.max_iterations}")
        _check(self.round_steps >= 0, f"round_steps must be >= 0 (0: train `epochs` epochs), got {self.round_steps}")
        _check(self.strategy in STRATEGIES,
               f"unknown strategy '{self.strategy}' (choose from {', '.join(STRATEGIES)})")
        object.__setattr__(self, "expert", str(parse_expert(str(self.expert))))  # a UsageError names the forms
        _check_expert(self)
        _check(0 <= self.skip_fraction < 1, f"skip_fraction must be in [0, 1), got {self.skip_fraction}")
        _check(self.pool_sample_size >= 0, f"pool_sample_size must be >= 0, got {self.pool_sample_size}")
        _check(not self.pool_sample_size or self.query_size <= self.pool_sample_size,
               f"query_size {self.query_size} is larger than pool_sample_size {self.pool_sample_size}")
        _check(self.mc_passes >= 2, f"mc_passes must be >= 2 (BALD compares dropout passes), got {self.mc_passes}")
        object.__setattr__(self, "stop", str(self.stop).strip())
        parse_stop(self.stop)  # a bad criterion is a UsageError naming the forms

    def decided(self) -> TrialConfig:
        """This config with "auto" precision replaced by the rule's answer in this process (measured once
        per process): what the process that trains uses and records."""
        if isinstance(self.bf16, bool):
            return self
        return dataclasses.replace(self, bf16=precision.resolve(self.bf16))

    @classmethod
    def from_dict(cls, values: dict) -> TrialConfig:
        """Build from a plain dict (a Tune config, a JSON file, --set pairs), converting types."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        _check(not unknown, f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(fields)})")
        return cls(**{name: _convert(name, value, fields[name].type) for name, value in values.items()})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_expert(trial: TrialConfig) -> None:
    kind = parse_expert(trial.expert).kind
    _check(trial.expert_price >= 0, f"expert_price must be >= 0, got {trial.expert_price}")
    _check(kind != "openai" or (trial.expert_url.strip() and trial.expert_model.strip()),
           "expert openai needs expert_url and expert_model (--expert-url, --expert-model)")
    if kind == "openai":  # here, not first in the trial: a URL no request can use is refused before Ray starts
        check_endpoint_url(trial.expert_url)
    _check(kind == "openai" or not (trial.expert_url or trial.expert_model),
           f"expert_url and expert_model are for --expert openai, not {trial.expert}")
    _check(kind in ("teachers", "oracle") or trial.strategy != "robust_least_confidence",
           "strategy robust_least_confidence reads the teachers' outputs: it needs --expert teachers or oracle, "
           f"not {trial.expert}")


def _convert(name: str, value, type_name: str):
    kind = {"int": int, "float": float, "bool": _to_bool, "str": str, "bool | str": precision.parse}[type_name]
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError("not a whole number")
        return kind(value)
    except (TypeError, ValueError) as error:
        expected = "auto, true or false" if type_name == "bool | str" else f"a valid {type_name}"
        raise UsageError(f"setting {name}={value!r} is not {expected} ({error})") from None


def _to_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)
