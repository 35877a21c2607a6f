"""tuning/analysis.py and tuning/analyze.py on experiments built in memory (no Ray, no training): the
choices and the report's wording, checked against values worked out by hand."""

from pathlib import Path

import pandas as pd

from trainables import metrics as m
from tuning import analysis as a
from tuning import analyze

SPACE = {"method": "kd", "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
         "batch_size": {"type": "choice", "values": [8, 16]}, "epochs": 4}
DATA = {"dataset": "smoke", "split_seed": 0, "student": "tiny-bert", "teachers": ["tiny-bert"]}


def trial(trial_id: str, val: float, epoch: int = 4, status: str = a.COMPLETED, method: str = "kd",
          experiment: str = "/storage/run/kd", **config) -> a.TrialRecord:
    last = {m.VAL_ACCURACY: val, m.TEST_ACCURACY: val - 0.1, m.TEST_MACRO_F1: val - 0.2, m.EPOCH: epoch,
            "training_iteration": epoch, m.LABELS_USED: 96, m.TEACHER_LABELS: 96, m.EXPERT_QUERIES: 96}
    return a.TrialRecord(method, trial_id, status, {"method": method, "learning_rate": 1e-3, "batch_size": 8,
                                                    "epochs": 4, **config}, last, pd.DataFrame(), None, experiment)


def experiment(trials, path="/storage/run/kd", method="kd", sweep=None, data=None) -> a.Experiment:
    record = {"sweep": {"method": method, "sampler": "tpe", "num_samples": len(trials), "startup_trials": 3,
                        **(sweep or {})}, "space": SPACE, "data": data or DATA}
    return a.Experiment(Path(path), method, record, list(trials))


def test_report_says_which_search_each_sweep_was():
    guided = experiment([trial("a", 0.5)], sweep={"num_samples": 8, "startup_trials": 3})
    old = experiment([trial("b", 0.5, experiment="/storage/old")], path="/storage/old",
                     sweep={"num_samples": 8, "startup_trials": None})
    head = analyze.report_sections([guided, old], {}, None, {})[0]
    lines = [line for line in head.splitlines() if line.startswith("- `")]
    assert "search: TPE: random proposals until 3 of 8" in lines[0]
    assert "search: random search in effect" in lines[1]


def test_report_prints_no_importances_from_four_trials():
    four = experiment([trial(f"t{i}", 0.5 + i / 10, learning_rate=10 ** -(2 + i / 2), batch_size=8 * (1 + i % 2))
                       for i in range(4)])
    section = analyze.importance_section([four])
    assert "| setting | importance |" not in section
    assert "4 completed trial(s) over 2 searched setting(s); fANOVA needs at least 10" in section
