"""Confirming the winners: each method's best configuration trained again with fresh seeds.

A sweep's best val_accuracy is optimistically biased (it is the maximum over many tries), and its
test_accuracy is one seed's draw on one test set. Retraining with N new seeds, the same seeds for every
method, gives each method's test accuracy with a 95% interval, and differences against supervised that
are paired twice: by seed (seed i of kd against seed i of supervised) and by test example.

The intervals are the paired bootstrap of tuning/analysis/bootstrap.py over seeds AND test examples: a
t-interval over seeds would count only seed-to-seed variation on one fixed test set, leaving out that
the test set is itself a sample of the task (about +-3.5 points at 0.8 accuracy on 500 examples), and
with identical seeds it would claim no uncertainty at all."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sklearn.metrics import f1_score, recall_score

from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.experts.spec import parse_expert
from trainables.study_settings import encode_predictions
from tuning.analysis.bootstrap import REPLICATES, estimate, replicate_accuracies

SEED_BASE = 1000  # confirmation seeds 1000, 1001, ...: far from the sweep's seed 0
BASELINE = "supervised"
INTERVAL = "95% percentile bootstrap over seeds and test examples, paired across methods"


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

def verdict(ci: list[float]) -> str:
    """better / worse when the 95% interval of a difference excludes 0, else within noise."""
    if ci[0] > 0:
        return "better"
    if ci[1] < 0:
        return "worse"
    return "within noise"


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
                    rows[method]["difference"] = estimate(accuracy[:, i] - base)
                    rows[method]["verdict"] = verdict(rows[method]["difference"]["ci"])
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
    last = run.reports[-1]
    return {"method": run.method, "n": len(run.seeds), "test_examples": int(len(run.labels)),
            m.TEST_ACCURACY: estimate(accuracy),
            m.TEST_MACRO_F1: {"mean": float(np.mean(f1)), "sd": float(np.std(f1, ddof=1)) if len(f1) > 1 else None},
            m.VAL_ACCURACY: float(np.mean([r[m.VAL_ACCURACY] for r in run.reports])),
            "per_class_recall": per_class_recall(run),
            m.LABELS_USED: last[m.LABELS_USED], m.TEACHER_LABELS: last[m.TEACHER_LABELS],
            m.EXPERT_QUERIES: last[m.EXPERT_QUERIES]}


def seed_rows(runs: dict[str, Confirmed]) -> list[dict]:
    """confirm.csv: one row per (method, seed) with its figures and its test predictions and
    correctness (one digit per test example, in test-set order), so the pairing can be checked."""
    rows = []
    for run in runs.values():
        for seed, report, predicted, correct in zip(run.seeds, run.reports, run.predictions, run.correct,
                                                    strict=True):
            rows.append({"method": run.method, "seed": seed, m.TEST_ACCURACY: report[m.TEST_ACCURACY],
                         m.TEST_MACRO_F1: report[m.TEST_MACRO_F1], m.VAL_ACCURACY: report[m.VAL_ACCURACY],
                         m.LABELS_USED: report[m.LABELS_USED], m.TEACHER_LABELS: report[m.TEACHER_LABELS],
                         m.EXPERT_QUERIES: report[m.EXPERT_QUERIES],
                         "test_predictions": encode_predictions(predicted),
                         "test_correct": "".join("1" if c else "0" for c in correct)})
    return rows


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


def prepare_groups(best: dict, progress: Callable = print) -> dict[str, object]:
    """Prepared data per distinct (data settings, expert): loaded, tokenized and (if any method needs them)
    the teachers made ready once, as a sweep does. Returns group key -> Prepared."""
    from tuning.assets.prepare import DataSettings, prepare  # noqa: PLC0415 (torch, transformers: slow imports)

    groups: dict[str, list[str]] = {}
    for method, entry in best.items():
        groups.setdefault(_group_key(method, entry), []).append(method)
    prepared = {}
    for key, methods in groups.items():
        group = json.loads(key)
        # A confirmation run has the machine to itself: all of its cores, not one trial's share.
        settings = replace(DataSettings.from_dict(group["data"]), cpus_per_trial=os.cpu_count() or 1)
        prepared[key] = prepare(settings, need_teachers=any(_needs_teachers(name, group["expert"]) for name in methods),
                                progress=progress, expert=group["expert"])
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
            finished: Callable[[dict[str, Confirmed]], None] = lambda runs: None) -> dict[str, Confirmed]:
    """method -> its runs, one per seed, in seed order. `finished` is called with every method done so far
    as soon as each method's seeds are: a later failure (hours on) keeps the methods already retrained."""
    prepared = prepare_groups(best, progress)
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
