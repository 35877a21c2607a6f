"""What a sweep prints: the one-line progress report with its count of ended trials, the table of the best
trials (searched settings only) and the closing hints (analyze, TensorBoard, resume)."""

import argparse
import shlex
from types import SimpleNamespace

import pytest

from trainables import metrics as m
from tuning import cli, main, run, study
from tuning.cli import closing_hints, resume_command
from tuning.sweep.experiment import print_best
from tuning.sweep.search import sweep_progress
from tuning.sweep.spaces import build_space

SUPERVISED = {"method": "supervised", "epochs": 3}


def trial(trial_id: str, status: str = "RUNNING", config: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=status, config=config or SUPERVISED)


def report(epoch: int, done: bool = False) -> dict:
    return {m.EPOCH: epoch, m.VAL_ACCURACY: 0.8125, m.LABELS_USED: 2272, m.EXPERT_QUERIES: 0, "done": done}


def test_ended_trials_are_counted_against_the_whole_sweep(capsys):
    # With a concurrency limit Tune has created only 2 of the 8 trials when the first results arrive.
    trials = [trial("a1", "TERMINATED"), trial("b2")]
    sweep_progress(total=8).on_trial_result(3, trials, trials[1], report(2))
    line = capsys.readouterr().out
    assert line.endswith("b2 epoch 2: val_accuracy 0.812, labels_used 2272, expert_queries 0 (1/8 trials ended)\n")


def test_rounds_are_named_for_the_expert_loop(capsys):
    loop = trial("c3", config={"method": "active_loop", "max_iterations": 3})
    result = {m.ROUND: 1, m.VAL_ACCURACY: 0.7, m.LABELS_USED: 150, m.EXPERT_QUERIES: 50}
    sweep_progress(total=4).on_trial_result(1, [loop], loop, result)
    expected = "c3 round 1: val_accuracy 0.700, labels_used 150, expert_queries 50 (0/4 trials ended)"
    assert expected in capsys.readouterr().out


def test_a_trial_the_scheduler_stopped_has_ended_and_the_last_line_counts_every_trial(capsys):
    """Before: a smoke sweep's last line read "1/2 trials finished": a trial's last report arrives while it
    still runs, and a trial ASHA stopped was not counted at all until its status changed."""
    progress, first, second = sweep_progress(total=2), trial("a1"), trial("b2")
    trials = [first, second]
    progress.on_trial_result(1, trials, first, report(1))
    progress.on_trial_result(2, trials, second, report(1, done=True))  # done: ASHA's decision to stop it
    progress.on_trial_complete(2, trials, second)
    progress.on_trial_result(3, trials, first, report(3))  # its planned last epoch: Tune has not ended it yet
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("a1 epoch 1: val_accuracy 0.812, labels_used 2272, expert_queries 0 (0/2 trials ended)")
    assert lines[1].endswith("b2 epoch 1: val_accuracy 0.812, labels_used 2272, expert_queries 0, stopped by the "
                             "scheduler (1/2 trials ended)")
    assert lines[2].endswith("(2/2 trials ended)") and "stopped" not in lines[2]


def test_an_errored_trial_has_ended(capsys):
    progress, failing = sweep_progress(total=3), trial("e5", "ERROR")
    progress.on_trial_error(4, [failing, trial("f6")], failing)
    assert capsys.readouterr().out.endswith("e5 errored (1/3 trials ended)\n")


# ---------------------------------------------------------------- the table of the best trials


def best_grid(config: dict) -> SimpleNamespace:
    metrics = {m.VAL_ACCURACY: 0.81, m.TEST_ACCURACY: 0.8, m.LABELS_USED: 96, m.EXPERT_QUERIES: 96,
               m.TEACHER_LABELS: 96}
    best = SimpleNamespace(metrics=metrics, config=config)
    return SimpleNamespace(num_errors=0, get_best_result=lambda **kwargs: best)


def test_the_best_trials_table_shows_the_searched_settings_not_the_fixed_ones(capsys):
    space = build_space("kd", smoke=True, fixed={"alpha": 0.5, "weight_decay": 0.0})
    config = {"method": "kd", "learning_rate": 0.004, "batch_size": 8, "epochs": 8, "weight_decay": 0.0,
              "warmup_ratio": 0.1, "temperature": 2.5, "alpha": 0.5, "seed": 0}
    print_best({"kd": best_grid(config)}, SimpleNamespace(teachers=None), {"kd": space})
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("kd "))
    assert row.endswith("learning_rate=0.004, warmup_ratio=0.1, temperature=2.5")  # smoke: batch, epochs fixed


def test_with_every_setting_fixed_the_table_shows_the_seed(capsys):
    space = build_space("supervised", smoke=True, fixed={"learning_rate": 0.005, "weight_decay": 0.0,
                                                          "warmup_ratio": 0.0})
    config = {"method": "supervised", "learning_rate": 0.005, "batch_size": 8, "epochs": 8, "seed": 1}
    print_best({"supervised": best_grid(config)}, SimpleNamespace(teachers=None), {"supervised": space})
    assert "  seed=1\n" in capsys.readouterr().out


# ---------------------------------------------------------------- closing hints


def cli_args(*argv: str) -> argparse.Namespace:
    return run.parse_args(list(argv))


def test_hints_name_the_experiment_folder_and_the_default_storage_path_stays_implicit():
    hints = closing_hints(cli_args(), "kd-1")
    assert hints == ["compare the methods:   python tuning/analyze.py ray_results/kd-1",
                     "curves in TensorBoard: tensorboard --logdir ray_results/kd-1"]


def test_hints_carry_the_storage_path_the_user_gave_quoted_for_a_shell():
    hints = closing_hints(cli_args("--storage-path", "/data/my results/"), "smoke", errored=True)
    assert hints[0] == "compare the methods:   python tuning/analyze.py '/data/my results/smoke' --storage-path " \
                       "'/data/my results/'"
    assert hints[1] == "curves in TensorBoard: tensorboard --logdir '/data/my results/smoke'"
    assert hints[2].startswith("re-run errored trials: python tuning/run.py --resume --name smoke") \
        and hints[2].endswith("--retry-errored")


def test_the_resume_hint_parses_back_into_the_same_experiment_and_cluster():
    given = cli_args("--storage-path", "/data/my results", "--address", "10.0.0.1:6379", "--name", "big")
    command = shlex.split(resume_command(given, "big"))
    assert command[:2] == ["python", "tuning/run.py"]
    again = run.parse_args(command[2:])
    assert (again.resume, again.name, again.storage_path, again.address) == (True, "big", "/data/my results",
                                                                            "10.0.0.1:6379")


def test_the_study_resume_hint_parses_back_into_the_same_study_and_cluster():
    given = study.parse_args(["--storage-path", "/data/my studies", "--address", "auto", "--name", "s 1"])
    command = shlex.split(resume_command(given, "s 1", script="study"))
    assert command[:2] == ["python", "tuning/study.py"]
    again = study.parse_args(command[2:])
    assert (again.resume, again.name, again.storage_path, again.address) == (True, "s 1", "/data/my studies", "auto")


def test_under_the_installed_command_the_hints_use_it(monkeypatch):
    """`expert-loop run` works from any folder, `python tuning/run.py` only from the project's root: the
    hints repeat how the user started the command (tuning/main.py says so before dispatching)."""
    monkeypatch.setattr(cli, "_installed_command", None)
    with pytest.raises(SystemExit):
        main.main(["run", "--no-such-flag"])  # refused after dispatch, before any work
    assert cli.command_words("study") == ["expert-loop", "study"]
    given = cli_args("--storage-path", "/data/my results", "--name", "big")
    assert closing_hints(given, "big", errored=True) == [
        "compare the methods:   expert-loop analyze '/data/my results/big' --storage-path '/data/my results'",
        "curves in TensorBoard: tensorboard --logdir '/data/my results/big'",
        "re-run errored trials: expert-loop run --resume --name big --storage-path '/data/my results' "
        "--retry-errored"]
