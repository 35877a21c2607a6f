"""Confirming the winners: each method's best configuration trained again with fresh seeds.

A sweep's best val_accuracy is optimistically biased (it is the maximum over many tries), and its
test_accuracy is one seed's draw on one test set. Retraining with N new seeds, the same seeds for every
method, gives each method's test accuracy with a 95% interval, and differences against supervised that
are paired twice: by seed (seed i of kd against seed i of supervised) and by test example.

Two intervals for each difference, and a verdict only when both exclude 0 on the same side:
- the paired bootstrap of tuning/analysis/bootstrap.py over seeds AND test examples: it counts that the
  test set is itself a sample of the task (about +-3.5 points at 0.8 accuracy on 500 examples), but over
  S seeds a percentile bootstrap shrinks the seeds' variance by (S-1)/S and has few distinct draws: with
  2-3 seeds it covered a true difference of 0 in 78-91% of simulated runs where seed noise dominates;
- a t-interval over the seeds' paired differences (tuning/budget_study/stats.py paired_t_interval), which
  counts the seed-to-seed variation properly but holds the test set fixed.
Both are conditioned on the chosen configurations: another search would have chosen others, and that
variation is covered by neither. Fewer than MIN_SEEDS seeds are warned of."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, recall_score

from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.experts.spec import parse_expert
from trainables.study_settings import decode_predictions, encode_predictions
from tuning.analysis.bootstrap import REPLICATES, estimate, replicate_accuracies
from tuning.budget_study.stats import paired_t_interval  # numpy and scipy only

SEED_BASE = 1000  # confirmation seeds 1000, 1001, ...: far from the sweep's seed 0
MIN_SEEDS = 5  # fewer: the intervals understate seed-to-seed variation (warned)
BASELINE = "supervised"
TEXT_MARK = "'"  # before confirm.csv's digit strings: the spreadsheets' mark of a text cell; read_* remove it
INTERVAL = "95% percentile bootstrap over seeds and test examples, paired across methods"
SEED_INTERVAL = "95% t-interval over the seeds' paired differences (scipy.stats.t), the test set held fixed"


@dataclass
class Confirmed:
    """One method's retrained runs: the last report and the test predictions of each seed."""
    method: str
    seeds: list[int]
    reports: list[dict]
    predictions: np.ndarray  # int (seeds, test examples): the predicted class
    labels: np.ndarray  # int (test examples,): the gold class
    label_names: tuple[str, ...]

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.labels


# ---------------------------------------------------------------- the statistics (pure)

def verdict(ci: list[float], seed_ci: list[float] | None) -> str:
    """better / worse when BOTH 95% intervals of a difference (the bootstrap's and the t-interval over seeds)
    exclude 0 on the same side, else within noise; no verdict from one seed (no t-interval: its seed-to-seed
    variation is unknown)."""
    if seed_ci is None:
        return "no verdict (one seed)"
    if ci[0] > 0 and seed_ci[0] > 0:
        return "better"
    if ci[1] < 0 and seed_ci[1] < 0:
        return "worse"
    return "within noise"


def few_seeds_warning(n: int) -> str | None:
    """Below MIN_SEEDS the percentile bootstrap covers seed-to-seed variation only in part (module docstring)."""
    if n >= MIN_SEEDS:
        return None
    return (f"intervals with {n} seed(s) understate seed-to-seed variation; use --confirm {MIN_SEEDS} or more")


def seed_differences(run: Confirmed, base: Confirmed) -> np.ndarray:
    """Each seed's test accuracy minus the baseline's on the same seed (the pairing by seed)."""
    return run.correct.mean(axis=1) - base.correct.mean(axis=1)


def difference(run: Confirmed, base: Confirmed, replicates: np.ndarray) -> dict:
    """The bootstrap's estimate and interval, and the t-interval over seeds under "seed_ci" (None: one seed)."""
    seed_ci = paired_t_interval(seed_differences(run, base))
    return {**estimate(replicates), "seed_ci": list(seed_ci) if seed_ci is not None else None}


def per_class_recall(run: Confirmed) -> dict[str, float]:
    """Each class's recall on test (scikit-learn), averaged over seeds: a class the student ignores
    shows up as 0 here even when accuracy looks fine."""
    classes = list(range(len(run.label_names)))
    recalls = [recall_score(run.labels, predicted, labels=classes, average=None, zero_division=0)
               for predicted in run.predictions]
    return dict(zip(run.label_names, np.mean(recalls, axis=0).tolist(), strict=True))


def macro_f1(run: Confirmed) -> list[float]:
    classes = list(range(len(run.label_names)))
    return [float(f1_score(run.labels, predicted, labels=classes, average="macro", zero_division=0))
            for predicted in run.predictions]


def summarise(runs: dict[str, Confirmed], replicates: int = REPLICATES) -> list[dict]:
    """One row per method: test accuracy with its bootstrap interval, macro-F1 (mean and sd over seeds),
    per-class recall, label counts, and the paired difference against supervised (absent for supervised,
    when it was not confirmed, or when a method was tested on other examples than supervised)."""
    groups = _same_test_set(runs)
    rows = {}
    for group in groups:
        accuracy = replicate_accuracies(np.stack([runs[method].correct for method in group]), replicates)
        for i, method in enumerate(group):
            rows[method] = _row(runs[method], accuracy[:, i])
        if BASELINE in group:
            base = accuracy[:, group.index(BASELINE)]
            for i, method in enumerate(group):
                if method != BASELINE:
                    diff = rows[method]["difference"] = difference(runs[method], runs[BASELINE], accuracy[:, i] - base)
                    rows[method]["verdict"] = verdict(diff["ci"], diff["seed_ci"])
    return [rows[method] for method in runs]


def _same_test_set(runs: dict[str, Confirmed]) -> list[list[str]]:
    """Methods grouped by identical test labels and seeds: only within a group can the bootstrap pair
    them by example and seed (methods confirmed on other data, with --allow-mixed, stand alone)."""
    groups: dict[tuple, list[str]] = {}
    for method, run in runs.items():
        groups.setdefault((run.labels.tobytes(), tuple(run.seeds)), []).append(method)
    return list(groups.values())


def _row(run: Confirmed, accuracy: np.ndarray) -> dict:
    f1 = macro_f1(run)
    return {"method": run.method, "n": len(run.seeds), "test_examples": int(len(run.labels)),
            m.TEST_ACCURACY: estimate(accuracy),
            m.TEST_MACRO_F1: {"mean": float(np.mean(f1)), "sd": float(np.std(f1, ddof=1)) if len(f1) > 1 else None},
            m.VAL_ACCURACY: float(np.mean([r[m.VAL_ACCURACY] for r in run.reports])),
            "per_class_recall": per_class_recall(run), **label_counts(run)}


COUNTS = (m.LABELS_USED, m.TEACHER_LABELS, m.EXPERT_QUERIES)


def label_counts(run: Confirmed) -> dict:
    """Each label count's mean over seeds, and its [min, max] under KEY_range when seeds differ: a stopping rule
    or an exhausted pool ends the Expert-Loop at different rounds, and one seed's count would misstate the bill."""
    counts = {}
    for key in COUNTS:
        values = [report[key] for report in run.reports]
        low, high = min(values), max(values)
        counts[key] = low if low == high else float(np.mean(values))
        if low != high:
            counts[f"{key}_range"] = [low, high]
    return counts


def seed_rows(runs: dict[str, Confirmed]) -> list[dict]:
    """confirm.csv: one row per (method, seed) with its figures and its test predictions and
    correctness (one digit per test example, in test-set order, after TEXT_MARK), so the pairing can be
    checked; read_predictions and read_correct read them back."""
    rows = []
    for run in runs.values():
        for seed, report, predicted, correct in zip(run.seeds, run.reports, run.predictions, run.correct,
                                                    strict=True):
            rows.append({"method": run.method, "seed": seed, m.TEST_ACCURACY: report[m.TEST_ACCURACY],
                         m.TEST_MACRO_F1: report[m.TEST_MACRO_F1], m.VAL_ACCURACY: report[m.VAL_ACCURACY],
                         m.LABELS_USED: report[m.LABELS_USED], m.TEACHER_LABELS: report[m.TEACHER_LABELS],
                         m.EXPERT_QUERIES: report[m.EXPERT_QUERIES],
                         "test_predictions": as_text(encode_predictions(predicted)),
                         "test_correct": as_text("".join("1" if c else "0" for c in correct))})
    return rows


def as_text(digits: str) -> str:
    """A cell of digits marked as text: pandas' read_csv (and spreadsheets) read "0110" as the number 110,
    dropping the leading zeros, so the pairing by test example silently shifted."""
    return TEXT_MARK + digits


def read_predictions(cell: str) -> np.ndarray:
    """confirm.csv's test_predictions back to the predicted classes."""
    return decode_predictions(str(cell).removeprefix(TEXT_MARK))


def read_correct(cell: str) -> np.ndarray:
    """confirm.csv's test_correct back to one bool per test example."""
    return np.array([c == "1" for c in str(cell).removeprefix(TEXT_MARK)])


# ---------------------------------------------------------------- retraining (no Ray)

def seeds(n: int) -> list[int]:
    return [SEED_BASE + i for i in range(n)]


def expert_of(method: str, entry: dict) -> str:
    """The expert the method's run reads: the Expert-Loop's own (an llm or endpoint expert needs the rows'
    text, which prepare gives only when told); other methods have none, so they share the teachers' default."""
    return TrialConfig.from_dict(entry["config"]).expert if method == "active_loop" else "teachers"


def _group_key(method: str, entry: dict) -> str:
    """Methods share prepared data when their data settings AND their expert agree (the expert decides what
    prepare makes ready for it)."""
    return json.dumps({"data": entry["data"], "expert": expert_of(method, entry)}, sort_keys=True, default=str)


def _needs_teachers(method: str, expert: str) -> bool:
    """kd distils them; the Expert-Loop reads them with the teachers or the oracle as its expert (as train.py)."""
    return method == "kd" or (method == "active_loop" and parse_expert(expert).needs_teachers)


def _groups(best: dict) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for method, entry in best.items():
        groups.setdefault(_group_key(method, entry), []).append(method)
    return groups


def _settings(key: str):
    from tuning.assets.prepare import DataSettings  # noqa: PLC0415 (torch, transformers: slow imports)

    # A confirmation run has the machine to itself: all of its cores, not one trial's share.
    return replace(DataSettings.from_dict(json.loads(key)["data"]), cpus_per_trial=os.cpu_count() or 1)


def sweep_fingerprint(entry: dict, root: Path | None) -> str | None:
    """The data fingerprint the chosen trial trained on (its checkpoint's run_config.json); None when the
    checkpoint is not on this disk (no checkpoint, a moved or remote storage): then nothing can be compared."""
    from trainables.checkpoint import RUN_CONFIG  # noqa: PLC0415 (torch, safetensors: only with --confirm)

    if root is None or not entry.get("checkpoint"):
        return None
    path = Path(root) / entry["checkpoint"] / RUN_CONFIG
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("provenance", {}).get("data_fingerprint")


def load_groups(best: dict, root: Path | None, progress: Callable = print) -> dict[str, object]:
    """Each group's data, loaded and checked against the sweep's: the same settings can name a data file that
    changed since the sweep, and retraining on other data would confirm nothing of its choice. Refused
    (UsageError) before any training. Returns group key -> TaskData."""
    from tuning.assets.prepare import load_data  # noqa: PLC0415 (torch, transformers: slow imports)

    loaded = {}
    for key, methods in _groups(best).items():
        data = loaded[key] = load_data(_settings(key), progress)
        for method in methods:
            swept = sweep_fingerprint(best[method], root)
            if swept is not None and swept != data.fingerprint():
                raise UsageError(f"--confirm: the data of {method}'s sweep changed since it ran (data fingerprint "
                                 f"{swept[:12]} in its checkpoint, {data.fingerprint()[:12]} now): retraining on them "
                                 "would confirm nothing of its choice")
    return loaded


def prepare_groups(best: dict, progress: Callable = print, loaded: dict | None = None) -> dict[str, object]:
    """Prepared data per distinct (data settings, expert): loaded (or taken from `loaded`, load_groups'),
    tokenized and (if any method needs them) the teachers made ready once, as a sweep does. Returns group
    key -> Prepared."""
    from tuning.assets.prepare import prepare  # noqa: PLC0415 (torch, transformers: slow imports)

    prepared = {}
    for key, methods in _groups(best).items():
        expert = json.loads(key)["expert"]
        prepared[key] = prepare(_settings(key), need_teachers=any(_needs_teachers(name, expert) for name in methods),
                                data=(loaded or {}).get(key), progress=progress, expert=expert)
    return prepared


def final_run(trial, prepared) -> tuple[dict, np.ndarray]:
    """Train one configuration to the end: the last report, and the final model's predicted class for
    every test example (what test_accuracy of that report counted)."""
    from trainables.functions import run_method  # noqa: PLC0415 (Ray, torch: only when a seed is retrained)
    from trainables.loop import predict_logits  # noqa: PLC0415

    trial = trial.decided()
    reports, models = [], []
    run_method(trial, prepared, lambda metrics, model, state: (reports.append(metrics), models.append(model)))
    logits = predict_logits(models[-1], prepared.encoded["test"], bf16=trial.bf16)
    return reports[-1], logits.argmax(axis=1)


def retrain(best: dict, n: int, progress: Callable = print,
            finished: Callable[[dict[str, Confirmed]], None] = lambda runs: None,
            loaded: dict | None = None) -> dict[str, Confirmed]:
    """method -> its runs, one per seed, in seed order. `finished` is called with every method done so far
    as soon as each method's seeds are: a later failure (hours on) keeps the methods already retrained.
    loaded: load_groups' data, checked against the sweep's."""
    if warning := few_seeds_warning(n):  # said before the hours of training, and again in the report
        progress(f"warning: {warning}")
    prepared = prepare_groups(best, progress, loaded)
    runs: dict[str, Confirmed] = {}
    for method, entry in best.items():
        runs[method] = retrain_method(method, entry, prepared[_group_key(method, entry)], n, progress)
        finished(runs)
    return runs


def retrain_method(method: str, entry: dict, data, n: int, progress: Callable = print) -> Confirmed:
    reports, predictions = [], []
    for seed in seeds(n):
        trial = TrialConfig.from_dict({**entry["config"], "seed": seed})
        last, predicted = final_run(trial, data)
        progress(f"confirm {method} seed {seed}: test_accuracy {last[m.TEST_ACCURACY]:.4f}, "
                 f"test_macro_f1 {last[m.TEST_MACRO_F1]:.4f}")
        reports.append(last)
        predictions.append(predicted)
    return Confirmed(method, seeds(n), reports, np.stack(predictions),
                     np.asarray(data.encoded["test"].labels), tuple(data.label_names))
