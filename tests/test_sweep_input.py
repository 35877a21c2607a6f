"""run.py's input checks that come before Ray and before anything is written: flags a resume would ignore, counts
out of range, folders under a file, trials that cannot fit, and one driver per experiment folder."""

from __future__ import annotations

import pytest

from tests.conftest import exit_and_line
from tuning import run
from tuning.cli import typed_flags


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
    assert code == 2 and line == f"error: no sweep to resume at {tmp_path / 'x'} (no sweep.json)"  # past the flags
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
