"""Confirming the winners: each method's best configuration trained again with fresh seeds.

A sweep's best val_accuracy is optimistically biased (it is the maximum over many tries), and its
test_accuracy is one seed's draw. Retraining with N new seeds, the same seeds for every method, gives
a mean with a confidence interval and paired differences: seed i of kd is compared with seed i of
supervised, which cancels the part of the noise the seed shares between methods."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from trainables import metrics as m

SEED_BASE = 1000  # confirmation seeds 1000, 1001, ...: far from the sweep's seed 0
BASELINE = "supervised"


# ---------------------------------------------------------------- the statistics (pure)

@dataclass(frozen=True)
class Interval:
    mean: float
    sd: float  # sample standard deviation (n - 1)
    half_width: float  # 95% CI is mean +- half_width (Student t); nan when n < 2
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def contains_zero(self) -> bool:
        return not (self.low > 0 or self.high < 0)  # nan bounds (n < 2) count as "cannot tell"


def mean_interval(values: list[float], confidence: float = 0.95) -> Interval:
    """Mean, sample sd and the Student-t half-width t(1 - (1 - c)/2, n - 1) * sd / sqrt(n).
    [0.5, 0.6, 0.7] -> mean 0.6, sd 0.1, half-width 4.303 * 0.1 / sqrt(3) = 0.2484."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if n == 1:
        return Interval(float(x[0]), math.nan, math.nan, 1)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1) * sd / math.sqrt(n))
    return Interval(float(x.mean()), sd, half, n)


def paired_difference(values: list[float], baseline: list[float]) -> Interval:
    """The interval of values[i] - baseline[i]: both runs of a pair share seed i."""
    if len(values) != len(baseline):
        raise ValueError(f"paired samples differ in length: {len(values)} and {len(baseline)}")
    return mean_interval([a - b for a, b in zip(values, baseline, strict=True)])


def verdict(difference: Interval) -> str:
    if difference.n < 2:
        return "n/a (needs --confirm >= 2)"
    if difference.contains_zero():
        return "within noise"
    return "better" if difference.mean > 0 else "worse"


# ---------------------------------------------------------------- retraining (no Ray)

def seeds(n: int) -> list[int]:
    return [SEED_BASE + i for i in range(n)]


def _data_key(data: dict) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def prepare_groups(best: dict, progress: Callable = print) -> dict[str, object]:
    """Prepared data per distinct data settings: loaded, tokenized and (if any method needs them)
    the teachers made ready once, as a sweep does. Returns data key -> Prepared."""
    from tuning.prepare import DataSettings, prepare  # noqa: PLC0415 (torch, transformers: slow imports)

    groups: dict[str, list[str]] = {}
    for method, entry in best.items():
        groups.setdefault(_data_key(entry["data"]), []).append(method)
    prepared = {}
    for key, methods in groups.items():
        # A confirmation run has the machine to itself: all of its cores, not one trial's share.
        settings = replace(DataSettings.from_dict(json.loads(key)), cpus_per_trial=os.cpu_count() or 1)
        prepared[key] = prepare(settings, need_teachers=any(method != BASELINE for method in methods),
                                progress=progress)
    return prepared


def final_report(trial, prepared) -> dict:
    """Train one configuration to the end; the last report is the run's result."""
    from trainables.functions import run_method  # noqa: PLC0415

    reports = []
    run_method(trial, prepared, lambda metrics, model, state: reports.append(metrics))
    return reports[-1]


def retrain(best: dict, n: int, progress: Callable = print) -> dict[str, list[dict]]:
    """method -> the final report of each seed's run, in seed order."""
    from trainables.config import TrialConfig  # noqa: PLC0415

    prepared = prepare_groups(best, progress)
    runs: dict[str, list[dict]] = {}
    for method, entry in best.items():
        for seed in seeds(n):
            trial = TrialConfig.from_dict({**entry["config"], "seed": seed})
            last = final_report(trial, prepared[_data_key(entry["data"])])
            progress(f"confirm {method} seed {seed}: test_accuracy {last[m.TEST_ACCURACY]:.4f}")
            runs.setdefault(method, []).append(last)
    return runs


def summarise(runs: dict[str, list[dict]]) -> list[dict]:
    """One row per method: the test-accuracy interval, label counts, and the paired difference
    against supervised (absent when supervised was not confirmed, or for supervised itself)."""
    baseline = [r[m.TEST_ACCURACY] for r in runs.get(BASELINE, [])]
    rows = []
    for method, reports in runs.items():
        accuracy = [r[m.TEST_ACCURACY] for r in reports]
        row = {"method": method, "n": len(reports), "test": mean_interval(accuracy),
               "test_accuracy": accuracy, m.LABELS_USED: reports[-1][m.LABELS_USED],
               m.TEACHER_LABELS: reports[-1][m.TEACHER_LABELS], m.EXPERT_QUERIES: reports[-1][m.EXPERT_QUERIES]}
        if method != BASELINE and baseline:
            row["difference"] = paired_difference(accuracy, baseline)
            row["verdict"] = verdict(row["difference"])
        rows.append(row)
    return rows
