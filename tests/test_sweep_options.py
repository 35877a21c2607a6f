"""run.py options that change what a sweep runs: every setting fixed (the one configuration once per seed,
no searcher) and --resume with or without --retry-errored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ray import tune

from trainables import metrics as m
from trainables.errors import UsageError
from tuning import run
from tuning.sweep.spaces import SMOKE_OVERRIDES, build_space, replicate_seeds

# With these, nothing is left to search in the smoke space of `supervised` (batch size and epochs are
# fixed there already).
FIX_ALL = ("learning_rate=0.005", "weight_decay=0.0", "warmup_ratio=0.0")


def fix_args(*pairs: str) -> list[str]:
    return [f"--fix={pair}" for pair in pairs]


def test_a_space_with_something_to_search_has_no_replicate_seeds():
    assert replicate_seeds(build_space("supervised", True), 3) is None
    assert replicate_seeds(build_space("supervised", True, fixed={"learning_rate": 0.005}), 3) is None


def test_a_fully_fixed_space_runs_seeds_zero_to_n_minus_one():
    space = build_space("supervised", True, fixed={"learning_rate": 0.005, "weight_decay": 0.0, "warmup_ratio": 0.0})
    assert replicate_seeds(space, 3) == [0, 1, 2]
    assert replicate_seeds({**space, "seed": 7}, 1) == [7]
    with pytest.raises(UsageError) as refused:
        replicate_seeds({**space, "seed": 7}, 2)
    assert "--num-samples 2 would repeat one identical run" in str(refused.value)


def read_grid(path: Path) -> tune.ResultGrid:
    return tune.ResultGrid(tune.ExperimentAnalysis(str(path)))


@pytest.mark.slow
def test_every_setting_fixed_runs_the_configuration_once_per_seed(ray_session, tmp_path, capsys):
    """Before: OptunaSearch raised "no search space" (a 61-line traceback, exit 1) and left a half-made
    experiment folder behind."""
    storage = tmp_path / "results"
    status = run.main(["--method", "supervised", "--smoke-test", "--num-samples", "2", *fix_args(*FIX_ALL),
                       "--storage-path", str(storage), "--name", "fixed"])
    assert status == 0
    grid = read_grid(storage / "fixed")
    assert grid.num_errors == 0
    assert sorted(result.config["seed"] for result in grid) == [0, 1]
    assert {result.config["learning_rate"] for result in grid} == {0.005}
    # No scheduler: every seed runs to its last epoch (the smoke space fixes the epochs).
    assert [result.metrics[m.EPOCH] for result in grid] == [SMOKE_OVERRIDES["epochs"]] * 2
    assert not (storage / "fixed" / "optuna_journal.log").exists()  # no searcher
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("supervised ")]
    assert row.endswith(("seed=0", "seed=1"))  # the one thing varied; the fixed settings are not repeated
    # The closing hints name this experiment's folder, which holds the trials' TensorBoard event files.
    assert f"python tuning/analyze.py {storage}/fixed --storage-path {storage}\n" in out
    assert f"tensorboard --logdir {storage}/fixed\n" in out
    assert len(list((storage / "fixed").glob("*/events.out.tfevents.*"))) == 2


def error_text(experiment: Path) -> str:
    (error_file,) = experiment.glob("*/error.txt")
    return error_file.read_text()


@pytest.mark.slow
def test_resume_keeps_errored_trials_unless_retry_errored(ray_session, tmp_path):
    """A trial whose loss diverges (learning rate 1e6) errors. --resume leaves it errored; --resume
    --retry-errored runs it again (Ray appends "Failure # 2" to its error.txt)."""
    storage, name = tmp_path / "results", "diverging"
    common = ["--storage-path", str(storage), "--name", name]
    diverging = ("learning_rate=1.0e+6", "weight_decay=0.0", "warmup_ratio=0.0", "epochs=1")
    assert run.main(["--method", "supervised", "--smoke-test", "--num-samples", "1", *fix_args(*diverging),
                     *common]) == 0
    experiment = storage / name
    assert read_grid(experiment).num_errors == 1
    assert "Failure # 1" in error_text(experiment)

    assert run.main(["--resume", *common]) == 0
    assert "Failure # 2" not in error_text(experiment)  # not run again
    assert read_grid(experiment).num_errors == 1

    assert run.main(["--resume", "--retry-errored", *common]) == 0
    assert "Failure # 2" in error_text(experiment)  # run again (and diverged again)
    record = json.loads((experiment / "sweep.json").read_text())
    assert record["sweep"]["num_samples"] == 1
