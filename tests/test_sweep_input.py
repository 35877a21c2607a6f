"""run.py's input checks that come before Ray and before anything is written: flags a resume would ignore, counts
out of range, folders under a file, trials that cannot fit, and one driver per experiment folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import exit_and_line
from tests.test_hostile_input import snapshot
from tuning import run
from tuning.cli import typed_flags
from tuning.trials.driver_lock import LOCK_FILE, one_driver


def test_typed_flags_are_the_flags_on_the_command_line_once_each_in_order():
    argv = ["--fix=alpha=0.5", "--name", "x", "--fix", "epochs=2", "--grace-period", "-1", "--sampler", "tpe",
            "--", "--not-a-flag"]
    assert typed_flags(argv) == ["--fix", "--name", "--grace-period", "--sampler"]


def test_resume_refuses_every_flag_that_would_be_ignored_naming_them(tmp_path, capsys, no_ray):
    # --sampler tpe is the default value, yet typed: on a random-search sweep it would be ignored all the same.
    argv = ["--resume", "--name", "x", "--storage-path", str(tmp_path), "--fix", "alpha=0.5", "--num-samples", "3",
            "--sampler", "tpe", "--cpus-per-trial", "1", "--smoke-test", "--max-concurrent", "2"]
    code, line = exit_and_line(run.main, argv, capsys)
    assert code == 2
    assert line == ("error: --resume continues sweep x as it started: --fix, --num-samples, --sampler, "
                    "--cpus-per-trial, --smoke-test, --max-concurrent cannot change on --resume (they would be "
                    "ignored); start a new sweep to change them")
    assert list(tmp_path.iterdir()) == []


def test_resume_accepts_the_flags_it_uses(tmp_path, capsys, no_ray):
    argv = ["--resume", "--name", "x", "--storage-path", str(tmp_path), "--address", "10.0.0.5:6379", "--dashboard",
            "--verbose", "--retry-errored"]
    code, line = exit_and_line(run.main, argv, capsys)
    assert code == 2 and line == (f"error: no sweep to resume at {tmp_path / 'x'} (no sweep.json); no sweep in "
                                  f"{tmp_path} can be resumed")  # past the flags
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["--grace-period", "0"], "--grace-period must be >= 1 (epochs, or Expert-Loop rounds, before ASHA may stop a "
                              "trial), got 0"),
    (["--grace-period", "-3", "--scheduler", "none"], "--grace-period must be >= 1"),
    (["--max-failures", "-2"], "--max-failures must be >= 0, or -1 to retry without limit, got -2"),
])
def test_counts_out_of_range_exit_2_before_anything(argv, message, tmp_path, capsys, no_ray, session_cache):
    storage = tmp_path / "results"
    code, line = exit_and_line(run.main, ["--smoke-test", "--storage-path", str(storage), *argv], capsys)
    assert code == 2 and message in line, line
    assert not storage.exists()


def test_max_failures_minus_one_retries_without_limit(monkeypatch):
    """Ray's FailureConfig reads -1 as "retry forever": accepted, and passed on as it is."""
    monkeypatch.setattr(run, "new_sweep", lambda args: args.max_failures)
    assert run.main(["--smoke-test", "--max-failures", "-1"]) == -1


def afile(tmp_path) -> str:
    path = tmp_path / "afile"
    path.write_text("keep me")
    return str(path)


@pytest.mark.parametrize(("argv", "message"), [
    (["--storage-path", "{afile}/results"], "--storage-path {afile}/results: {afile} is a file, not a folder"),
    (["--storage-path", "{afile}"], "--storage-path {afile}: {afile} is a file, not a folder"),
    (["--tracker", "mlflow", "--tracking-uri", "sqlite:///{afile}/x.db"],
     "--tracking-uri {afile}: {afile} is a file, not a folder"),
    (["--tracker", "mlflow", "--tracking-uri", "{afile}/store"],
     "--tracking-uri {afile}/store: {afile} is a file, not a folder"),
    (["--tracker", "mlflow", "--storage-path", "{tmp}"],  # the default store: {tmp}/mlruns
     "--tracking-uri {tmp}/mlruns: {tmp}/mlruns is a file, not a folder"),
])
def test_a_folder_under_a_file_is_refused_before_ray(argv, message, tmp_path, capsys, no_ray, session_cache):
    values = {"{afile}": afile(tmp_path), "{tmp}": str(tmp_path)}
    (tmp_path / "mlruns").write_text("not a store")

    def filled(text: str) -> str:
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    argv = [filled(arg) for arg in argv]
    if "--storage-path" not in argv:
        argv += ["--storage-path", str(tmp_path / "results")]
    code, line = exit_and_line(run.main, ["--smoke-test", *argv], capsys)
    assert code == 2 and line == f"error: {filled(message)}", line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mlruns"]  # nothing written
    assert (tmp_path / "afile").read_text() == "keep me"


def test_more_cpus_per_trial_than_this_machine_has_is_refused_without_a_cluster(monkeypatch, tmp_path, capsys,
                                                                                no_ray):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    storage = tmp_path / "results"
    code, line = exit_and_line(run.main, ["--smoke-test", "--cpus-per-trial", "3", "--storage-path", str(storage)],
                               capsys)
    assert code == 2 and line.startswith("error: --cpus-per-trial 3: this machine has 2 CPU(s)"), line
    assert not storage.exists()


def test_a_sweep_started_on_a_cluster_is_not_resumed_on_too_few_local_cpus(monkeypatch, tmp_path, capsys, no_ray):
    from tuning.assets.settings import DataSettings  # noqa: PLC0415

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    folder = tmp_path / "x"
    folder.mkdir()
    record = {"sweep": {"method": "supervised"}, "space": {}, "data": DataSettings(cpus_per_trial=8).to_dict()}
    (folder / "sweep.json").write_text(json.dumps(record))
    before = snapshot(tmp_path)
    code, line = exit_and_line(run.main, ["--resume", "--name", "x", "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and line.startswith("error: --cpus-per-trial 8: this machine has 2 CPU(s)"), line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("argv", "space", "message"), [
    (["--fix", "expert=human"], None, "--expert human pauses the run for a person"),
    ([], "expert: human\n", "--expert human pauses the run for a person"),
    (["--method", "kd"], "epochs: {type: choice, values: 8}\n", "epochs: choice values must be a list, got 8"),
    ([], "learning_rate: {type: uniform, low: 1, high: x}\n", "uniform needs finite numbers for low and high"),
    ([], "learning_rate: {type: loguniform, low: 1.0e-4, high: .inf}\n", "loguniform needs finite numbers"),
])
def test_a_bad_space_or_fix_exits_2_in_one_line(argv, space, message, tmp_path, capsys, no_ray, session_cache):
    if space is not None:
        (tmp_path / "space.yaml").write_text(space)
        argv = [*argv, "--space", str(tmp_path / "space.yaml")]
    storage = tmp_path / "results"
    code, line = exit_and_line(run.main, ["--smoke-test", "--storage-path", str(storage), *argv], capsys)
    assert code == 2 and message in line, line
    assert not storage.exists()


# ---------------------------------------------------------------- one driver per experiment folder


def started_sweep(storage: Path, name: str = "x") -> Path:
    """The folder of a sweep as its first run leaves it (what matters here: its record and a trial's file)."""
    from tuning.assets.settings import SMOKE_SETTINGS, DataSettings  # noqa: PLC0415

    folder = storage / name
    (folder / "trial_0").mkdir(parents=True)
    (folder / "trial_0" / "result.json").write_text('{"val_accuracy": 0.5}\n')
    record = {"sweep": {"method": "supervised"}, "space": {}, "data": DataSettings(**SMOKE_SETTINGS).to_dict()}
    (folder / "sweep.json").write_text(json.dumps(record))
    return folder


def test_resume_while_the_sweep_runs_is_refused_and_touches_nothing(tmp_path, capsys, no_ray):
    folder = started_sweep(tmp_path)
    with one_driver(folder, "sweep x"):  # the first run (or another resume), still going
        before = snapshot(tmp_path)
        code, line = exit_and_line(run.main, ["--resume", "--name", "x", "--storage-path", str(tmp_path)], capsys)
        assert code == 2, line
        assert line.startswith(f"error: sweep x is already running in another process (it holds {folder / LOCK_FILE})")
        assert line.endswith(f"continue it with: python tuning/run.py --resume --name x --storage-path {tmp_path}")
        assert snapshot(tmp_path) == before


def test_a_new_sweep_of_a_name_another_driver_holds_is_refused(tmp_path, capsys, no_ray, session_cache):
    """Two new sweeps of one --name: the second finds only the first's lock (it writes its record once Ray is
    reached), so the lock, not the folder's files, refuses it."""
    folder = tmp_path / "x"
    with one_driver(folder, "sweep x"):
        code, line = exit_and_line(run.main, ["--smoke-test", "--method", "supervised", "--name", "x",
                                              "--storage-path", str(tmp_path)], capsys)
        assert code == 2 and line.startswith("error: sweep x is already running in another process"), line
        assert [p.name for p in folder.iterdir()] == [LOCK_FILE]


def test_a_sweep_that_never_reaches_ray_writes_nothing_and_frees_its_name(tmp_path, capsys, no_ray, session_cache):
    """The tripwire stands for a cluster that never answers (--address 127.0.0.1:1), which the user ends with
    Ctrl-C: nothing was written, so the name is free again (before, sweep.json was written first and then blocked
    both a new sweep, "already exists", and --resume)."""
    storage = tmp_path / "results"
    (storage / "x").mkdir(parents=True)
    (storage / "x" / LOCK_FILE).write_bytes(b"")  # the lock a killed driver left: no experiment, no obstacle
    argv = ["--smoke-test", "--method", "supervised", "--name", "x", "--storage-path", str(storage)]
    with pytest.raises(AssertionError, match="Ray was started"):
        run.main(argv)
    assert list(storage.iterdir()) == []  # the experiment folder holding only a lock is gone
    capsys.readouterr()
