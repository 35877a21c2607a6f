"""Stopping criteria for active learning: when do further queries stop paying? Judged from the student's
predictions on a fixed stopping set alone, never from labels (small-text's definitions, Schröder et al.).

A check is what one trained student says about the stopping set: its predicted class per row and the mean
over rows of its normalised prediction entropy. A criterion turns the checks of successive rounds (round 0:
the student of the initial pool, then one per query round) into a stop/continue decision after each:

- KappaAverage (Bloodgood and Vijay-Shanker 2009): stop once the mean Cohen's kappa between consecutive
  rounds' predictions, over the last `window` pairs, reaches `threshold` (the predictions have settled);
- DeltaFScore (Altschuler and Bloodgood 2019): stop once the F-score between consecutive rounds' predictions
  has changed by less than `threshold` in each of the last `window` pairs;
- OverallUncertainty (Zhu et al. 2008): stop once the mean normalised entropy falls below `threshold`;
- MaxRounds: stop after `rounds` query rounds.

As settings they are written `kappa:0.99`, `delta_f:0.05`, `uncertainty:0.05`, `max_rounds:3`
(kappa and delta_f take a window as a third part, `kappa:0.99:5`; default 3, as small-text). Pure numpy;
tests/test_small_text.py checks every decision against small-text 1.4.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainables.errors import UsageError
from trainables.query_rules import entropy

WINDOW = 3  # small-text's default window of KappaAverage and DeltaFScore


@dataclass(frozen=True)
class Check:
    predictions: np.ndarray  # the predicted class of every stopping-set row
    uncertainty: float  # mean over the rows of entropy / log(classes): 0 sure, 1 uniform
    classes: int


def check_of(probs: np.ndarray) -> Check:
    """A student's check from its probabilities (rows, classes) on the stopping set."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2 or len(probs) == 0:
        raise UsageError(f"a stopping check needs probabilities (rows >= 1, classes >= 2), got shape {probs.shape}")
    return Check(probs.argmax(axis=1), float(np.mean(entropy(probs) / np.log(probs.shape[1]))), probs.shape[1])


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two predictions of the same rows, (p_o - p_e) / (1 - p_e); 1.0 when they are
    identical (small-text's adapted kappa: the formula divides by zero when both predict one class)."""
    if np.array_equal(a, b):
        return 1.0
    size = int(max(a.max(), b.max())) + 1
    p_e = float(np.dot(np.bincount(a, minlength=size), np.bincount(b, minlength=size))) / len(a) ** 2
    return (float(np.mean(a == b)) - p_e) / (1.0 - p_e)


def delta_f(old: np.ndarray, new: np.ndarray, classes: int) -> float:
    """1 - F1 of the new predictions against the old, per class: 1 - 2 both / (2 both + only old + only new).
    Two classes: class 1's (the positive class, as Altschuler and Bloodgood and small-text). More: the mean over
    the classes either round predicts (small-text refuses more than two). A class neither predicts has not
    changed: 0 (small-text divides 0 by 0 there, a NaN that never stops)."""
    values = []
    for c in [1] if classes == 2 else range(classes):
        both = int(np.sum((old == c) & (new == c)))
        changed = int(np.sum((old == c) != (new == c)))
        if both or changed:
            values.append(1.0 - 2.0 * both / (2.0 * both + changed))
    return float(np.mean(values)) if values else 0.0


def _threshold(value, low: float, high: float, low_open: bool, high_open: bool, name: str) -> None:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    inside = number is not None and (low < number if low_open else low <= number) and (
        number < high if high_open else number <= high)
    if not inside:
        brackets = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise UsageError(f"the {name} stopping threshold must lie in {brackets}, got {value!r}")


def _window(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"the {name} stopping window must be a whole number >= 1, got {value!r}")


def _pairs(checks: Sequence[Check], measure) -> list[float]:
    """measure(previous, current) for each consecutive pair of checks."""
    return [measure(before, after) for before, after in zip(checks[:-1], checks[1:], strict=True)]


@dataclass(frozen=True)
class KappaAverage:
    threshold: float = 0.99
    window: int = WINDOW

    def __post_init__(self) -> None:
        _threshold(self.threshold, -1.0, 1.0, True, False, "kappa")
        _window(self.window, "kappa")

    @property
    def spec(self) -> str:
        return f"kappa:{self.threshold}" + (f":{self.window}" if self.window != WINDOW else "")

    def decisions(self, checks: Sequence[Check]) -> list[bool]:
        kappas = _pairs(checks, lambda a, b: cohen_kappa(a.predictions, b.predictions))
        return [False] + [i >= self.window and float(np.mean(kappas[i - self.window:i])) >= self.threshold
                          for i in range(1, len(checks))]


@dataclass(frozen=True)
class DeltaFScore:
    threshold: float = 0.05
    window: int = WINDOW

    def __post_init__(self) -> None:
        _threshold(self.threshold, 0.0, 1.0, True, False, "delta_f")
        _window(self.window, "delta_f")

    @property
    def spec(self) -> str:
        return f"delta_f:{self.threshold}" + (f":{self.window}" if self.window != WINDOW else "")

    def decisions(self, checks: Sequence[Check]) -> list[bool]:
        deltas = _pairs(checks, lambda a, b: delta_f(a.predictions, b.predictions, b.classes))
        return [False] + [i >= self.window and all(d < self.threshold for d in deltas[i - self.window:i])
                          for i in range(1, len(checks))]


@dataclass(frozen=True)
class OverallUncertainty:
    threshold: float = 0.05

    def __post_init__(self) -> None:
        _threshold(self.threshold, 0.0, 1.0, False, True, "uncertainty")

    @property
    def spec(self) -> str:
        return f"uncertainty:{self.threshold}"

    def decisions(self, checks: Sequence[Check]) -> list[bool]:
        return [check.uncertainty < self.threshold for check in checks]


@dataclass(frozen=True)
class MaxRounds:
    rounds: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise UsageError(f"max_rounds must be a whole number of query rounds >= 1, got {self.rounds!r}")

    @property
    def spec(self) -> str:
        return f"max_rounds:{self.rounds}"

    def decisions(self, checks: Sequence[Check]) -> list[bool]:
        return [i >= self.rounds for i in range(len(checks))]  # check i follows query round i


Criterion = KappaAverage | DeltaFScore | OverallUncertainty | MaxRounds
CRITERIA: dict[str, type] = {"kappa": KappaAverage, "delta_f": DeltaFScore, "uncertainty": OverallUncertainty,
                             "max_rounds": MaxRounds}


def parse_stop(text: str) -> Criterion | None:
    """`kappa:0.99`, `kappa:0.99:5`, `delta_f:0.05`, `uncertainty:0.05`, `max_rounds:3` -> a criterion; "" ->
    None (no stopping criterion). Anything else: UsageError naming the forms."""
    text = str(text).strip()
    if not text:
        return None
    name, *values = text.split(":")
    forms = "kappa:0.99[:WINDOW], delta_f:0.05[:WINDOW], uncertainty:0.05 or max_rounds:3"
    takes = {"kappa": 2, "delta_f": 2, "uncertainty": 1, "max_rounds": 1}
    if name not in CRITERIA or not 1 <= len(values) <= takes[name]:
        raise UsageError(f"unknown stopping criterion {text!r}: write {forms}")
    try:
        numbers = [int(values[0]) if name == "max_rounds" else float(values[0]), *(int(v) for v in values[1:])]
    except ValueError:
        raise UsageError(f"stopping criterion {text!r}: not a number where one is expected ({forms})") from None
    return CRITERIA[name](*numbers)


def first_stop(criterion: Criterion, checks: Sequence[Check]) -> int | None:
    """The index of the first check after which the criterion says stop; None: it never does."""
    return next((i for i, stop in enumerate(criterion.decisions(checks)) if stop), None)
