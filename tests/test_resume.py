"""An interrupted sweep resumes with `run.py --resume`: every trial exactly once, no report repeated, no
finished trial re-run, the same Optuna study continued, and no Ray process of the interrupted driver left.

Each sweep runs in a subprocess with its own short RAY_TMPDIR, so the test can find (and must stop) the
Ray processes that driver started, and only those: other Ray instances may share this machine."""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from tests.conftest import ROOT, SUBPROCESS_WARNINGS
from tests.ray_processes import processes_of, remove_temp_dir, short_temp_dir, stop_processes, wait_until_gone

NAME = "interrupted"


@pytest.fixture
def ray_tmpdir():
    """A unique RAY_TMPDIR for the sweeps of one test; whatever Ray left running there is stopped."""
    folder = short_temp_dir("rk-")
    yield folder
    stop_processes(folder)
    remove_temp_dir(folder)


def sweep_command(storage: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "tuning" / "run.py"), "--storage-path", str(storage), "--name", NAME, *extra]


def start_sweep(storage: Path, env: dict, log: Path, method: str, num_samples: int) -> subprocess.Popen:
    command = sweep_command(storage, "--method", method, "--smoke-test", "--num-samples", str(num_samples),
                            "--max-concurrent", "1", "--scheduler", "none")
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group, like a shell job


def complete_lines(path: Path) -> str:
    """The file's text up to its last newline: Ray may be half-way through writing the next report."""
    text = path.read_text()
    return text[: text.rfind("\n") + 1]


def reports(path: Path) -> list[dict]:
    return [json.loads(line) for line in complete_lines(path).splitlines() if line.strip()]


def files_named(folder: Path, pattern: str) -> list[Path]:
    """Files under `folder` whose name matches `pattern`, while a sweep writes there. os.walk skips a folder that
    vanishes under it (Ray deletes a trial's older checkpoints as it goes); Path.rglob raised FileNotFoundError
    then, which failed this test now and then."""
    return [Path(root) / name for root, _, names in os.walk(folder) for name in fnmatch.filter(names, pattern)]


def steps(experiment: Path) -> dict[str, list[int]]:
    """trial folder (relative to the experiment) -> the epochs or rounds it reported, in order."""
    return {str(path.parent.relative_to(experiment)): [r.get("round", r.get("epoch")) for r in reports(path)]
            for path in files_named(experiment, "result.json")}


def finished_trials(experiment: Path) -> dict[str, str]:
    """trial folder -> result.json text, for trials that reported their last epoch or round. (Ray's
    `done` flag is never written for a function trainable that simply returns.)"""
    done = {}
    for path in files_named(experiment, "result.json"):
        last = (reports(path) or [None])[-1]
        if last is None:
            continue
        config = last["config"]
        if ("round" in last and (last["round"] == config["max_iterations"] or last["pool_left"] == 0)) or \
                ("round" not in last and last["epoch"] == config["epochs"]):
            done[str(path.parent.relative_to(experiment))] = complete_lines(path)
    return done


def terminated_in_tune_snapshot(experiment: Path) -> int:
    """Trials the newest experiment_state-*.json of each sweep folder records as TERMINATED: what a resumed
    Tuner will not run again."""
    count = 0
    for folder in {path.parent for path in files_named(experiment, "experiment_state-*.json")}:
        newest = max(folder.glob("experiment_state-*.json"), key=lambda path: path.name)  # names carry the time
        try:
            trials = json.loads(newest.read_text())["trial_data"]
        except (OSError, ValueError, KeyError):
            continue  # being replaced just now: read it again at the next poll
        count += sum(json.loads(state)["status"] == "TERMINATED" for state, _ in trials)
    return count


def wait_until_a_finished_trial_is_in_tunes_snapshot(experiment: Path, process: subprocess.Popen,
                                                     sweep: str = ".") -> None:
    """At least one trial of `sweep` (a method's folder, or every one) finished and Ray's experiment snapshot records
    it so, the sweep not over yet. (Trials reuse their Ray actor, so one starts as soon as the last ended: there is
    no quiet moment.)"""
    deadline = time.monotonic() + 300  # a cold cache fine-tunes the two tiny teachers first
    while time.monotonic() < deadline and process.poll() is None:
        if finished_trials(experiment / sweep) and terminated_in_tune_snapshot(experiment / sweep):
            return
        time.sleep(0.1)
    raise AssertionError(f"no finished trial in Tune's snapshot while the sweep ran (exit status {process.poll()})")


def start_resume(storage: Path, env: dict, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(sweep_command(storage, "--resume"), cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def resume(storage: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_command(storage, "--resume", *extra), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


# Ray's own output, shown only with --verbose: a log line of every trial process at every checkpoint, and
# the new reporter's experiment table (whose TensorBoard hint points into Ray's temporary folder).
RAY_NOISE = ("Checkpoint successfully created", "View detailed results here")


def check_resumed(experiment: Path, before: dict[str, str], result: subprocess.CompletedProcess,
                  trials_per_sweep: dict[str, int]) -> None:
    """trials_per_sweep: sweep folder relative to `experiment` ('.' for one method) -> its trial count."""
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    history = steps(experiment)
    total = sum(trials_per_sweep.values())
    assert len(history) == total, sorted(history)  # no trial lost, none added
    after = finished_trials(experiment)
    assert len(after) == total
    for folder, reported in history.items():  # each epoch or round reported exactly once: nothing re-run
        assert reported == list(range(reported[0], reported[0] + len(reported))), (folder, reported)
        assert reported[0] in (0, 1), (folder, reported)  # round 0 or epoch 1: every trial started once
    for folder, text in before.items():
        assert after[folder] == text  # finished before the interruption: not re-run, not touched
    for sweep, count in trials_per_sweep.items():
        folder = experiment / sweep
        ids = {reports(path)[-1]["trial_id"] for path in folder.glob("*/result.json")}
        assert len(ids) == count, (sweep, ids)
        check_one_study(folder, [reports(path)[-1]["val_accuracy"] for path in folder.glob("*/result.json")])


def check_one_study(folder: Path, values: list[float]) -> None:
    """The resumed sweep continued the Optuna study of its folder (the journal beside the trials) rather
    than starting another: one study, every Ray trial told to it exactly once, with its own value."""
    storage = JournalStorage(JournalFileBackend(str(folder / "optuna_journal.log")))
    record = json.loads((folder / "sweep.json").read_text())
    studies = optuna.get_all_study_summaries(storage)
    assert [study.study_name for study in studies] == [record["sweep"]["name"]]
    complete = optuna.load_study(study_name=studies[0].study_name, storage=storage).get_trials(
        states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(trial.value for trial in complete) == pytest.approx(sorted(values))


def check_no_ray_left(marker: str, what: str) -> None:
    left = [f"{p.pid} {p.name()}" for p in processes_of(marker)]
    assert not left, f"Ray processes of the {what} are still running: {left}"


@pytest.mark.slow
def test_ctrl_c_then_sigkill_then_resume_runs_every_trial_once(tmp_path, session_cache, ray_tmpdir):
    """Two interruptions of one `--method all` sweep, each after a trial finished, then a resume that finishes it.
    1. SIGINT to the sweep's process group (Ctrl-C in a terminal) during its first method: Ray Tune stops the trials
       and saves the experiment; the tool starts no further method, says how to resume, exits with status 130, and
       no Ray process stays.
    2. SIGKILL to the process group of the resumed sweep once an Expert-Loop trial finished (a resume takes the
       methods in the order of their folders' names: active_loop, which the first run never started, comes first,
       so the kill lands mid-sweep): nothing is saved on the way out; Ray workers outside the group are stopped.
    3. --resume --verbose: every trial of the three methods exactly once, the trials finished before either
       interruption untouched, each method's Optuna study continued. (One scenario instead of two tests: each
       sweep of this machine's Ray costs about 15 s of start-up, whatever it trains.)"""
    storage, experiment = tmp_path / "results", tmp_path / "results" / NAME
    env = {**os.environ, "EXPERT_LOOP_CACHE": str(session_cache), "RAY_TMPDIR": ray_tmpdir,
           "PYTHONWARNINGS": SUBPROCESS_WARNINGS}
    log = tmp_path / "interrupted.log"
    process = start_sweep(storage, env, log, "all", 2)
    try:
        wait_until_a_finished_trial_is_in_tunes_snapshot(experiment, process)
        os.killpg(process.pid, signal.SIGINT)
        status = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text()
    assert status == 130, output[-3000:]
    assert "--resume" in output.strip().splitlines()[-1], output[-3000:]
    assert "trials ended)" in output and not [noise for noise in RAY_NOISE if noise in output]  # quiet by default
    assert not wait_until_gone(ray_tmpdir, timeout=20), "Ray processes outlived the interrupted sweep"
    before_ctrl_c = finished_trials(experiment)
    assert 0 < len(before_ctrl_c) < 6

    process = start_resume(storage, env, tmp_path / "killed.log")
    try:
        wait_until_a_finished_trial_is_in_tunes_snapshot(experiment, process, sweep="active_loop")
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and everything in its process group
        process.wait()
    before_kill = finished_trials(experiment)
    assert len(before_kill) < 6, "the resumed sweep finished before it could be killed"
    # Not every Ray worker is in the driver's process group. Those that outlive it exit on their own once
    # they notice the raylet is gone, which can take a minute; after a few seconds the test stops them.
    wait_until_gone(ray_tmpdir, timeout=5)
    stragglers = stop_processes(ray_tmpdir)
    check_no_ray_left(ray_tmpdir, "killed sweep")
    print(f"stopped {len(stragglers)} Ray processes that outlived the killed driver")

    resumed = resume(storage, env, "--verbose")
    check_resumed(experiment, {**before_kill, **before_ctrl_c}, resumed, {"supervised": 2, "kd": 2, "active_loop": 2})
    assert all(noise in resumed.stdout + resumed.stderr for noise in RAY_NOISE)
    assert not wait_until_gone(ray_tmpdir, timeout=20), "the resumed sweep left Ray processes behind"
