"""A sweep killed with SIGKILL mid-way resumes with Tuner.restore: every trial exactly once, no
finished trial re-run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

NUM_SAMPLES = 4


def finished_trials(experiment: Path) -> dict[str, str]:
    """trial folder -> result.json text, for trials whose last report ended them."""
    done = {}
    for result in experiment.glob("*/result.json"):
        lines = result.read_text().strip().splitlines()
        if lines and json.loads(lines[-1]).get("done"):
            done[result.parent.name] = result.read_text()
    return done


def reports(experiment: Path) -> int:
    return sum(len(p.read_text().strip().splitlines()) for p in experiment.glob("*/result.json"))


@pytest.mark.slow
def test_sigkill_then_resume_keeps_every_trial_once(tmp_path, session_cache):
    storage, name = tmp_path / "results", "killed"
    command = [sys.executable, str(ROOT / "tuning" / "run.py"), "--method", "active_loop", "--smoke-test",
               "--num-samples", str(NUM_SAMPLES), "--max-concurrent", "1", "--scheduler", "none",
               "--storage-path", str(storage), "--name", name]
    env = {**os.environ, "EXPERT_LOOP_CACHE": str(session_cache)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    experiment = storage / name
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not finished_trials(experiment):
            time.sleep(0.5)
        assert finished_trials(experiment), "no trial finished before the deadline"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and everything it started
        process.wait()
    before = finished_trials(experiment)
    assert len(before) < NUM_SAMPLES, "the sweep finished before it could be killed"

    resumed = run_cli("run.py", "--resume", "--name", name, "--storage-path", str(storage), cache=session_cache)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    after = finished_trials(experiment)
    assert len(after) == NUM_SAMPLES  # every trial, exactly once
    trial_ids = [json.loads(p.read_text().splitlines()[-1])["trial_id"] for p in experiment.glob("*/result.json")]
    assert len(set(trial_ids)) == len(trial_ids) == NUM_SAMPLES
    for folder, text in before.items():
        assert after[folder] == text  # finished before the kill: not re-run, not touched
