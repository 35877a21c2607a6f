"""Finding and stopping the Ray processes one test started, and only those.

Other Ray instances may run on the same machine, so `ray stop` (which stops every Ray process of the
user) is never used. A test gives each Ray it starts a unique, short temporary folder (`RAY_TMPDIR` in the
environment, `--temp-dir` on the command line); a process belongs to the test when that folder appears
in its command line or in its environment. Workers renamed to `ray::ImplicitFunc` have lost the folder
from their command line but keep the environment they inherited."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import psutil


def short_temp_dir(prefix: str) -> str:
    """A fresh folder directly under /tmp: Ray's socket paths inside it must stay under 107 bytes."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def processes_of(marker: str) -> list[psutil.Process]:
    """Live processes of this user whose command line or environment mentions `marker`."""
    found, me = [], os.getpid()
    for process in psutil.process_iter(["pid", "cmdline", "uids"]):
        try:
            if process.pid == me or process.info["uids"].real != os.getuid():
                continue
            if marker in " ".join(process.info["cmdline"] or []) or \
                    any(marker in value for value in process.environ().values()):
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_until_gone(marker: str, timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` seconds for every process of `marker` to exit; those still alive."""
    deadline = time.monotonic() + timeout
    left = processes_of(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = processes_of(marker)
    return left


def stop_processes(marker: str, grace: float = 5.0) -> list[str]:
    """SIGTERM every process of `marker`, SIGKILL those alive after `grace` seconds. Returns a
    description of each process that had to be stopped (empty when none was left)."""
    left = processes_of(marker)
    described = []
    for process in left:
        try:
            described.append(f"{process.pid} {' '.join(process.cmdline())[:160]}")
            process.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(left, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)
    return described


def remove_temp_dir(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
