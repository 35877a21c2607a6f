"""tuning/evaluate.py: a checkpoint folder or a sweep's trial folder (it finds the checkpoint inside), and
each class's precision and recall beside accuracy and macro-F1."""

import json
import shutil

import numpy as np
import pytest

from trainables.checkpoint import RUN_CONFIG
from trainables.errors import UsageError
from tuning import cli, evaluate, train

SMOKE_NAMES = ["ambivalent", "negative", "neutral", "positive"]


def make_trial(folder, checkpoints: list[str], results: list | None = None):
    """A trial folder laid out as Ray Tune writes it: checkpoint_NNNNNN folders and result.json, one JSON
    object per report naming the checkpoint it saved (checked against a real smoke sweep's folder)."""
    folder.mkdir(parents=True)
    for name in checkpoints:
        (folder / name).mkdir()
        (folder / name / RUN_CONFIG).write_text("{}")
    if results is not None:
        (folder / evaluate.RESULTS).write_text("".join(
            (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in results))
    return folder


def test_a_checkpoint_folder_is_itself(tmp_path):
    assert evaluate.find_checkpoint(make_trial(tmp_path / "t", ["checkpoint_000000"]) / "checkpoint_000000") \
        == tmp_path / "t" / "checkpoint_000000"


def test_a_trial_folder_gives_the_checkpoint_of_its_last_report(tmp_path):
    """Ray keeps the best checkpoint on val_accuracy beside the latest; the last report names its own."""
    trial = make_trial(tmp_path / "t", ["checkpoint_000000", "checkpoint_000001", "checkpoint_000002"],
                       [{"checkpoint_dir_name": "checkpoint_000001"}, {"checkpoint_dir_name": "checkpoint_000000"},
                        {"training_iteration": 3, "checkpoint_dir_name": None},  # a report without a checkpoint
                        '{"checkpoint_dir_name": "checkpoint_0000'])  # a line cut short by a kill
    assert evaluate.find_checkpoint(trial) == trial / "checkpoint_000000"


@pytest.mark.parametrize("results", [None, [{"checkpoint_dir_name": "checkpoint_000009"}], ["not json", "[1]"]])
def test_without_a_usable_log_the_latest_checkpoint_is_taken(tmp_path, results):
    trial = make_trial(tmp_path / "t", ["checkpoint_000001", "checkpoint_000000", "checkpoint_000010"], results)
    assert evaluate.find_checkpoint(trial) == trial / "checkpoint_000010"


def test_a_trial_folder_without_a_checkpoint_of_this_tool_is_refused(tmp_path, capsys):
    trial = make_trial(tmp_path / "t", [], [{"checkpoint_dir_name": "checkpoint_000000"}])
    (trial / "checkpoint_000000").mkdir()  # a budget-study point: weights and state, no run_config.json
    (trial / "checkpoint_000000" / "study_state.json").write_text("{}")
    with pytest.raises(UsageError, match=r"nor a trial folder holding one \(no checkpoint_\*/run_config.json\)"):
        evaluate.find_checkpoint(trial)
    with pytest.raises(SystemExit) as stopped:
        cli.main_guard(lambda: evaluate.main(["--checkpoint", str(trial)]))
    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert f"{trial} is not a checkpoint of this tool" in lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, session_cache):
    out = tmp_path_factory.mktemp("supervised") / "run"
    assert train.main(["--method", "supervised", "--smoke-test", "--out", str(out), "--set", "epochs=2",
                       "--set", "bf16=false"]) == 0
    return out


def test_evaluate_on_a_trial_folder_prints_per_class_precision_and_recall(trained, tmp_path, capsys):
    trial = tmp_path / "student_trial_0"
    for name in ("checkpoint_000000", "checkpoint_000001"):
        shutil.copytree(trained, trial / name)
    (trial / evaluate.RESULTS).write_text(json.dumps({"checkpoint_dir_name": "checkpoint_000001"}) + "\n")
    capsys.readouterr()
    assert evaluate.main(["--checkpoint", str(trial), "--split", "validation"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed["checkpoint"] == str(trial / "checkpoint_000001")
    reported = json.loads((trained / "run_config.json").read_text())["metrics"]
    assert printed["accuracy"] == reported["val_accuracy"] and printed["macro_f1"] == reported["val_macro_f1"]

    # Per class, against counts made here from the same predictions.
    result = evaluate.evaluate_checkpoint(trial / "checkpoint_000001", "validation")
    gold, predicted = result.labels, result.predictions
    assert list(printed["per_class"]) == SMOKE_NAMES
    for index, name in enumerate(SMOKE_NAMES):
        row = printed["per_class"][name]
        hits = np.sum((predicted == index) & (gold == index))
        assert row["support"] == np.sum(gold == index)
        assert row["recall"] == pytest.approx(hits / np.sum(gold == index))
        assert row["precision"] == pytest.approx(hits / np.sum(predicted == index) if np.any(predicted == index)
                                                 else 0.0)
    # The human-readable table (scikit-learn's classification_report) goes to stderr, stdout stays JSON.
    assert "precision" in captured.err and "recall" in captured.err
    assert all(name in captured.err for name in SMOKE_NAMES)


@pytest.mark.parametrize("threads", ["0", "-1"])
def test_threads_below_one_are_refused(tmp_path, threads):
    """-1 was a torch RuntimeError traceback; 0 silently meant all CPUs."""
    with pytest.raises(UsageError, match=f"--threads must be >= 1 .*got {threads}"):
        evaluate.main(["--checkpoint", str(tmp_path), "--threads", threads])
