"""A study carried to another machine: its points and teachers' outputs round-trip exactly, and --export refuses
bad input with one line and exit status 2 before anything is written. The carried resume end to end is in
test_study.py (test_smoke_study_end_to_end_then_resume_rewrites_the_report)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from tests.conftest import exit_and_line
from trainables.errors import UsageError
from trainables.prepared import TeacherOutputs
from tuning import study as study_command
from tuning.budget_study import carry
from tuning.trials.driver_lock import one_driver

ROWS = [  # keys in the order a trial reports them (study.csv's extra columns follow it), values of every JSON kind
    {"arm": "supervised", "budget": 16, "seed": 1, "val_accuracy": 0.1 + 0.2, "test_predictions": "0120",
     "query_log": None, "done": False},
    {"arm": "expert:margin", "budget": 8, "seed": 0, "val_accuracy": 0.5, "test_predictions": "0012",
     "query_log": json.dumps({"row": [3, 1]}), "done": False},
    {"arm": "supervised", "budget": 8, "seed": 1, "val_accuracy": 1 / 3, "test_predictions": "0000",
     "query_log": None, "done": False},
    {"arm": "expert:margin", "budget": 16, "seed": 0, "val_accuracy": float("nan"), "test_predictions": "2",
     "query_log": None, "done": True},
]


def test_points_round_trip_exactly_sorted_with_their_keys_in_reported_order(tmp_path):
    carry.write_points(tmp_path, ROWS)
    back = carry.read_points(tmp_path)
    assert [(r["arm"], r["seed"], r["budget"]) for r in back] == [("expert:margin", 0, 8), ("expert:margin", 0, 16),
                                                                 ("supervised", 1, 8), ("supervised", 1, 16)]
    by_key = {(r["arm"], r["budget"]): r for r in ROWS}
    for row in back:
        original = by_key[(row["arm"], row["budget"])]
        assert list(row) == list(original)
        assert all(row[k] == original[k] or (row[k] != row[k] and original[k] != original[k]) for k in row)  # NaN
    assert back[2]["val_accuracy"] == 1 / 3 and back[3]["val_accuracy"] == 0.1 + 0.2  # every bit of a float
    first = (tmp_path / carry.POINTS).read_bytes()
    carry.write_points(tmp_path, list(reversed(ROWS)))  # same points in another order: the same bytes
    assert (tmp_path / carry.POINTS).read_bytes() == first
    assert gzip.decompress(first).decode().count("\n") == 4


def test_a_folder_without_points_carries_none_and_only_last_points_end_a_trial(tmp_path):
    assert carry.read_points(tmp_path) == []
    assert carry.ended_trials(ROWS) == {("expert:margin", 0)}  # supervised seed 1 stopped after 2 of its budgets


def teachers(train_rows: np.ndarray | None = None) -> TeacherOutputs:
    rng = np.random.default_rng(0)
    logits = {split: rng.normal(size=(2, n, 3)).astype(np.float32)
              for split, n in (("train", 6), ("validation", 2), ("test", 3))}
    return TeacherOutputs(("minilm-l6", "minilm-l6-sre"), logits, 3, {"ensemble/test": 2 / 3, "minilm-l6/val": 0.5},
                          train_rows=train_rows)


@pytest.mark.parametrize("train_rows", [np.array([4, 0, 2]), None])
def test_teachers_round_trip_exactly(tmp_path, train_rows):
    saved = teachers(train_rows)
    carry.save_teachers(tmp_path, saved)
    back = carry.load_teachers(tmp_path)
    assert back.names == saved.names and back.teacher_labels == 3 and back.accuracy == saved.accuracy
    for split in carry.SPLITS:
        assert back.logits[split].dtype == np.float32 and np.array_equal(back.logits[split], saved.logits[split])
    assert (back.train_rows is None) if train_rows is None else np.array_equal(back.train_rows, train_rows)
    assert np.array_equal(back.ensemble_probs("test"), saved.ensemble_probs("test"))
    assert carry.load_teachers(tmp_path / "nowhere") is None


def test_teachers_of_other_data_are_refused():
    carry.check_teachers_fit(teachers(), {"train": 6, "validation": 2, "test": 3})
    with pytest.raises(UsageError, match="logits for 2 validation examples, but this study's data has 5"):
        carry.check_teachers_fit(teachers(), {"train": 6, "validation": 5, "test": 3})


def a_study(storage, name="s", created="2026-12-07 17:00:00"):
    folder = storage / name
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps({"plan": {}, "created": created}))
    return folder


@pytest.mark.parametrize("extra, message", [
    ([], "--export needs --name (the study to copy)"),
    (["--name", "s", "--resume"], "--export and --resume are two commands"),
    (["--name", "s", "--seeds", "3", "--quick"], "--export copies study s as it is: --seeds, --quick cannot be given"),
    (["--name", "typo"], "no study to export at"),
])
def test_export_refuses_bad_input_before_anything_is_written(tmp_path, capsys, no_ray, extra, message):
    a_study(tmp_path / "runs")
    before = sorted(tmp_path.rglob("*"))
    code, line = exit_and_line(study_command.main, ["--export", str(tmp_path / "copy"), "--storage-path",
                                                    str(tmp_path / "runs"), *extra], capsys)
    assert code == 2 and message in line
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("place, message", [
    ("runs/s", "is the study's own folder or inside it"),
    ("runs/s/copy", "is the study's own folder or inside it"),
    ("notes.txt", "is a file: give a folder"),
    ("other", "holds files that are not a copy of this study"),
    ("older", "holds files that are not a copy of this study"),  # an export of another study of the same name
])
def test_export_writes_over_nothing_but_an_earlier_copy_of_the_same_study(tmp_path, capsys, no_ray, place, message):
    a_study(tmp_path / "runs")
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.csv").write_text("mine\n")
    a_study(tmp_path, "older", created="2026-11-01 09:00:00")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    code, line = exit_and_line(study_command.main, ["--export", str(tmp_path / place), "--name", "s",
                                                    "--storage-path", str(tmp_path / "runs")], capsys)
    assert code == 2 and message in line
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_an_earlier_copy_of_the_same_study_or_an_empty_folder_is_accepted(tmp_path):
    folder = a_study(tmp_path / "runs")
    study_command.check_export_destination(folder, tmp_path / "new" / "copy")
    (tmp_path / "empty").mkdir()
    study_command.check_export_destination(folder, tmp_path / "empty")
    a_study(tmp_path, "copy")  # created at the same time: the same study, exported before
    study_command.check_export_destination(folder, tmp_path / "copy")


def test_export_is_refused_while_the_study_runs(tmp_path, capsys, no_ray):
    folder = a_study(tmp_path / "runs")
    with one_driver(folder, "study s"):  # the running study's driver
        code, line = exit_and_line(study_command.main, ["--export", str(tmp_path / "copy"), "--name", "s",
                                                        "--storage-path", str(tmp_path / "runs")], capsys)
    assert code == 2 and "study s is already running in another process" in line
    assert not (tmp_path / "copy").exists()
