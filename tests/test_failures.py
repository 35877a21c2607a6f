"""Trial failures: a diverging trial is recorded as errored and the sweep goes on; a trial whose worker
dies is retried from its last checkpoint (--max-failures); and the resume logic of the trainable
itself, checked without Ray against a checkpoint it wrote."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import optuna
import psutil
import pytest
import torch
from ray import tune
from safetensors.torch import load_file

import trainables.functions as functions
from tests.fake_tune import run_fake_trial
from trainables import metrics as m
from trainables.errors import TrainingDiverged
from tuning import run


def read_grid(path: Path) -> tune.ResultGrid:
    return tune.ResultGrid(tune.ExperimentAnalysis(str(path)))


def reports(trial_folder: Path) -> list[dict]:
    text = (trial_folder / "result.json").read_text()
    complete = text[: text.rfind("\n") + 1]  # Ray may be half-way through writing the next report
    return [json.loads(line) for line in complete.splitlines() if line]


# ---------------------------------------------------------------- sweeps through real Ray (in-process)


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_as_errored_and_the_sweep_goes_on(ray_session, tmp_path, capsys):
    """Seeded random search over learning rates {2e-5, 1e6}: the first trial is the original research's
    setting (2e-5, enqueued), the sampler's next pick is 1e6, whose loss becomes NaN."""
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: choice, values: [2.0e-5, 1.0e+6]}\n")
    storage = tmp_path / "results"
    handler = signal.getsignal(signal.SIGINT)
    status = run.main(["--method", "supervised", "--smoke-test", "--num-samples", "2", "--max-concurrent", "1",
                       "--space", str(space), "--sampler", "random", "--storage-path", str(storage),
                       "--name", "diverging"])
    assert status == 0
    assert signal.getsignal(signal.SIGINT) is handler  # Tune's handler would swallow the next Ctrl-C
    grid = read_grid(storage / "diverging")
    assert len(grid) == 2 and grid.num_errors == 1
    errored = next(result for result in grid if result.error)
    finished = next(result for result in grid if not result.error)
    # An errored trial that never reported has no result to carry its config: read the trial folder's.
    assert json.loads((Path(errored.path) / "params.json").read_text())["learning_rate"] == 1e6
    assert isinstance(errored.error, TrainingDiverged), repr(errored.error)
    assert "loss became nan" in str(errored.error) or "loss became inf" in str(errored.error)
    assert finished.metrics[m.EPOCH] == finished.config["epochs"]  # the other trial ran to its end
    assert "(1 errored)" in capsys.readouterr().out  # the summary says so beside the best trial
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(storage / "diverging" / "optuna_journal.log")))
    states = sorted(t.state.name for t in optuna.load_study(study_name="diverging", storage=journal).trials)
    assert states == ["COMPLETE", "FAIL"]  # the searcher learns that 1e6 fails


def trial_workers() -> list[psutil.Process]:
    """The Ray Tune trial processes of this test session's Ray (descendants of this process only)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "ImplicitFunc" in " ".join(process.cmdline()):
                found.append(process)
    return found


def kill_the_trial_after_its_first_reports(experiment: Path, killed: list, stop: threading.Event) -> None:
    while not stop.is_set():
        rows = [len(reports(path.parent)) for path in experiment.glob("*/result.json")]
        if rows and rows[0] >= 2:
            for process in trial_workers():
                process.kill()
                killed.append(process.pid)
            return
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("max_failures", [1, 0])
def test_a_dead_trial_is_retried_from_its_last_checkpoint_or_recorded(ray_session, tmp_path, max_failures):
    """The trial's worker process is killed (SIGKILL) after its second epoch. With --max-failures 1 Ray
    starts it again from its last checkpoint: every epoch reported exactly once, by two processes. With
    0 the trial is recorded as errored and the sweep ends normally (it was not interrupted)."""
    storage, epochs = tmp_path / "results", 30  # long enough to be killed mid-way
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=kill_the_trial_after_its_first_reports,
                              args=(storage / "killed", killed, stop), daemon=True)
    killer.start()
    try:
        status = run.main(["--method", "supervised", "--smoke-test", "--num-samples", "1",
                           "--max-failures", str(max_failures), "--scheduler", "none", "--fix", f"epochs={epochs}",
                           "--storage-path", str(storage), "--name", "killed"])
    finally:
        stop.set()
        killer.join()
    assert status == 0 and killed, "the trial was never killed"
    (folder,) = [path.parent for path in (storage / "killed").glob("*/result.json")]
    rows = reports(folder)
    assert rows[0]["pid"] in killed
    if max_failures == 0:
        assert (folder / "error.txt").is_file() and rows[-1][m.EPOCH] < epochs
        return
    assert read_grid(storage / "killed").num_errors == 0
    assert [row[m.EPOCH] for row in rows] == list(range(1, epochs + 1))  # resumed, not restarted
    assert len({row["pid"] for row in rows}) == 2  # the first worker died, a second one finished


# ---------------------------------------------------------------- the trainable's resume logic, without Ray


SUPERVISED = {"method": "supervised", "learning_rate": 5e-3, "batch_size": 8, "epochs": 3, "seed": 1}
LOOP = {"method": "active_loop", "learning_rate": 5e-3, "batch_size": 8, "epochs": 1, "seed": 1,
        "initial_pool_size": 16, "query_size": 8, "max_iterations": 2}


def test_every_report_carries_a_checkpoint_and_the_node(monkeypatch, tmp_path, random_teachers, fake_ray):
    fake = run_fake_trial(monkeypatch, tmp_path, SUPERVISED, random_teachers)
    assert [metrics[m.EPOCH] for metrics, _ in fake.reports] == [1, 2, 3]
    assert all(metrics["node_id"] == "node-1" for metrics, _ in fake.reports)
    assert os.environ.get("EXPERT_LOOP_IN_TRIAL") == "1"  # the driver's cache is now closed to this process
    names = {path.name for path in fake.reports[0][1].folder.iterdir()}
    assert {"model.safetensors", "run_config.json", "trial_state.json"} <= names


def test_a_supervised_trial_resumes_after_its_last_checkpointed_epoch(monkeypatch, tmp_path, random_teachers, fake_ray):
    first = run_fake_trial(monkeypatch, tmp_path / "first", SUPERVISED, random_teachers)
    checkpoint = first.reports[0][1]  # as if the trial died during epoch 2
    seen = {}
    real_run_method = functions.run_method

    def spy(trial, prepared, report, resume=None, model=None):
        seen.update(resume=resume, weights={k: v.clone() for k, v in model.state_dict().items()})
        real_run_method(trial, prepared, report, resume=resume, model=model)

    monkeypatch.setattr(functions, "run_method", spy)
    again = run_fake_trial(monkeypatch, tmp_path / "again", SUPERVISED, random_teachers, checkpoint)
    assert seen["resume"]["epoch"] == 1
    saved = load_file(str(checkpoint.folder / "model.safetensors"))
    assert set(saved) == set(seen["weights"])  # every weight restored, none left at its initial value
    for name, tensor in saved.items():  # the restored model starts from the checkpoint's weights
        assert torch.equal(seen["weights"][name], tensor), name
    assert [metrics[m.EPOCH] for metrics, _ in again.reports] == [2, 3]  # epoch 1 is not trained again
    assert again.reports[-1][0][m.TRAIN_SECONDS] >= first.reports[0][0][m.TRAIN_SECONDS]  # time accumulates


def test_an_expert_loop_trial_resumes_after_its_last_checkpointed_round(monkeypatch, tmp_path, random_teachers,
                                                                        fake_ray):
    first = run_fake_trial(monkeypatch, tmp_path / "first", LOOP, random_teachers)
    assert [metrics[m.ROUND] for metrics, _ in first.reports] == [0, 1, 2]
    checkpoint = first.reports[1][1]  # as if the trial died during round 2
    again = run_fake_trial(monkeypatch, tmp_path / "again", LOOP, random_teachers, checkpoint)
    assert [metrics[m.ROUND] for metrics, _ in again.reports] == [2]
    # The pool bookkeeping continues from the checkpoint: the same queries as the uninterrupted run.
    before, after = first.reports[2][0], again.reports[0][0]
    for key in (m.LABELS_USED, m.EXPERT_QUERIES, "pool_left"):
        assert after[key] == before[key], key
    state_then = json.loads((first.reports[2][1].folder / "trial_state.json").read_text())
    state_now = json.loads((again.reports[0][1].folder / "trial_state.json").read_text())
    assert state_now["queried"] == state_then["queried"] and state_now["pool"] == state_then["pool"]
