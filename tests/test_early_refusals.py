"""The shared checks that refuse bad input before Ray starts or anything is written: one driver per experiment
folder, folders that can be written in, and trials that fit a local Ray instance."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT
from trainables.errors import UsageError
from tuning.cli import check_can_create, check_cpus_fit
from tuning.trials.driver_lock import LOCK_FILE, nothing_to_resume, one_driver


def test_a_second_driver_of_the_same_folder_is_refused_until_the_first_ends(tmp_path):
    folder = tmp_path / "sweep"
    with one_driver(folder, "sweep s"):
        with pytest.raises(UsageError, match=r"sweep s is already running in another process .*continue it with: "
                                             r"python tuning/run.py --resume --name s"):
            with one_driver(folder, "sweep s", "python tuning/run.py --resume --name s"):
                pass
        with one_driver(tmp_path / "other", "sweep t"):  # another folder: no conflict
            pass
    with one_driver(folder, "sweep s"):  # released when the first ended
        pass
    assert (folder / LOCK_FILE).is_file()


def test_a_killed_driver_leaves_no_lock_behind(tmp_path):
    holder = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from tuning.trials.driver_lock import one_driver
        with one_driver(Path({str(tmp_path)!r}), "study x"):
            print("held", flush=True)
            time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", holder], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert process.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match="study x is already running"):
            with one_driver(tmp_path, "study x"):
                pass
    finally:
        process.kill()
        process.wait(timeout=30)
    with one_driver(tmp_path, "study x"):
        pass


def test_a_folder_under_a_file_or_a_file_itself_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert check_can_create(tmp_path / "new" / "deeper", "--storage-path") == tmp_path / "new" / "deeper"
    assert check_can_create(tmp_path, "--out") == tmp_path
    with pytest.raises(UsageError, match=f"--storage-path {afile}/x: {afile} is a file, not a folder"):
        check_can_create(afile / "x", "--storage-path")
    with pytest.raises(UsageError, match=f"--out {afile}: {afile} is a file, not a folder"):
        check_can_create(afile, "--out")


def test_more_cpus_per_trial_than_a_local_ray_has_is_refused(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    check_cpus_fit(2, None)
    check_cpus_fit(8, "10.0.0.5:6379")  # a cluster's size is not known here
    with pytest.raises(UsageError, match="--cpus-per-trial 3: this machine has 2 CPU"):
        check_cpus_fit(3, None)


def test_nothing_to_resume_names_what_can_be_resumed_beside_it(tmp_path):
    for record in ("alpha/sweep.json", "all3/kd/sweep.json", "all3/supervised/sweep.json", "beta/study.json"):
        (tmp_path / record).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / record).write_text("{}")
    (tmp_path / "empty").mkdir()
    assert str(nothing_to_resume(tmp_path / "alpah", "sweep", "sweep.json")) == (
        f"no sweep to resume at {tmp_path / 'alpah'} (no sweep.json); sweeps that can be resumed in {tmp_path}: "
        "all3, alpha")  # a --method all sweep by its own name, once
    assert str(nothing_to_resume(tmp_path / "x", "study", "study.json")).endswith(
        f"(no study.json); studies that can be resumed in {tmp_path}: beta")
    assert str(nothing_to_resume(tmp_path / "empty" / "x", "study", "study.json")).endswith(
        f"no study in {tmp_path / 'empty'} can be resumed")
