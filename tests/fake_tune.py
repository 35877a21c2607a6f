"""A stand-in for the parts of ray.tune a trainable uses (get_checkpoint, report, Checkpoint.from_directory),
keeping every checkpoint folder, so trainables/functions.py's trials run and resume here without Ray (with the
fake_ray fixture of tests/conftest.py). Shared by tests/test_failures.py and tests/test_exact_resume.py (each
had its own copy)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import trainables.functions as functions


class Killed(Exception):
    """Stands in for SIGKILL: the trial stops right after a report, its checkpoint already saved."""


class FakeCheckpoint:
    def __init__(self, folder: Path):
        self.folder = folder

    @contextlib.contextmanager
    def as_directory(self):
        yield str(self.folder)


class FakeTune:
    """`kill_after`: raise Killed after that many reports."""

    def __init__(self, store: Path, checkpoint: FakeCheckpoint | None = None, kill_after: int | None = None):
        self.store, self.checkpoint, self.kill_after, self.reports = store, checkpoint, kill_after, []
        self.Checkpoint = SimpleNamespace(from_directory=self._keep)

    def _keep(self, folder: str) -> FakeCheckpoint:  # the trial deletes its folder after reporting
        kept = self.store / f"checkpoint-{len(self.reports)}"
        shutil.copytree(folder, kept)
        return FakeCheckpoint(kept)

    def get_checkpoint(self):
        return self.checkpoint

    def report(self, metrics: dict, checkpoint: FakeCheckpoint) -> None:
        self.reports.append((metrics, checkpoint))
        if self.kill_after is not None and len(self.reports) == self.kill_after:
            raise Killed


def run_fake_trial(monkeypatch, store: Path, config: dict, prepared, checkpoint: FakeCheckpoint | None = None,
                   kill_after: int | None = None) -> FakeTune:
    """A sweep's trial (student_trial) with this stand-in for ray.tune; a kill after `kill_after` reports ends
    it as SIGKILL would, its last checkpoint saved."""
    fake = FakeTune(store, checkpoint, kill_after)
    monkeypatch.setattr(functions, "tune", fake)
    with contextlib.suppress(Killed):
        functions.student_trial(config, prepared)
    return fake
