"""One driver per experiment folder. Two processes running the same sweep or study (a `--resume` typed while
the first run still trains, in another terminal) would both restore and rewrite its experiment state, trial
folders and report. The driver holds an exclusive flock on a file in the folder for as long as it runs; flock is
released when the process ends, killed or not, so a crashed run never blocks its own --resume."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from trainables.errors import UsageError

LOCK_FILE = ".driver.lock"


@contextlib.contextmanager
def one_driver(folder: Path, what: str, resume_hint: str = "") -> Iterator[None]:
    """Hold the folder's driver lock while the body runs; if another process holds it, a UsageError (exit 2)
    before anything is started or written. `what` names the experiment ("sweep NAME", "study NAME")."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            after = f", then continue it with: {resume_hint}" if resume_hint else ""
            raise UsageError(f"{what} is already running in another process (it holds {folder / LOCK_FILE}); "
                             f"wait for it to end, or stop it with Ctrl-C{after}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
