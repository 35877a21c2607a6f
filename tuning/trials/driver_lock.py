"""One driver per experiment folder. Two processes running the same sweep or study (a `--resume` typed while
the first run still trains, in another terminal) would both restore and rewrite its experiment state, trial
folders and report. The driver holds an exclusive flock on a file in the folder for as long as it runs; flock is
released when the process ends, killed or not, so a crashed run never blocks its own --resume."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
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


def holds_more_than_a_lock(folder: Path) -> bool:
    """Whether the folder holds an experiment: anything but a driver lock (which a driver killed before it wrote
    anything leaves behind; it blocks no name)."""
    return folder.is_dir() and any(entry.name != LOCK_FILE for entry in folder.iterdir())


def refuse_existing(folder: Path, kind: str) -> None:
    """A sweep or study (`kind`) is never overwritten; a folder holding only a driver lock is none."""
    if holds_more_than_a_lock(folder):
        raise UsageError(f"{kind} {folder} already exists: use --resume --name {folder.name} or another --name")


@contextlib.contextmanager
def new_experiment_folder(folder: Path, kind: str, resume_hint: str, begun: Callable[[], bool]) -> Iterator[None]:
    """one_driver for an experiment being created (a sweep's, a study's): its folder is made and locked before Ray
    starts and before anything is written in it, and held until the body ends. `kind`: "sweep" or "study". It is
    refused if it exists, again under the lock (another new one of that name may have got there since the command
    looked). If the body fails before `begun()` (the experiment's record is written: bad data found while preparing,
    Ctrl-C), the lock and the folders made for it are removed, so that its name stays free."""
    folder = Path(folder)
    made = [path for path in folder.parents if not path.exists()]  # innermost first
    with one_driver(folder, f"{kind} {folder.name}", resume_hint):
        refuse_existing(folder, kind)
        try:
            yield
        except BaseException:
            if not begun():
                (folder / LOCK_FILE).unlink(missing_ok=True)
                for path in (folder, *made):  # the folder too if it held only a stale lock
                    try:
                        path.rmdir()
                    except OSError:  # not empty: something not ours is in it, kept (and so are its parents)
                        break
            raise


def nothing_to_resume(folder: Path, kind: str, record: str) -> UsageError:
    """The error for a --resume of a name that holds no `kind` (no `record` file, e.g. sweep.json), naming those
    that can be resumed beside it (for a typo) or saying there are none."""
    here = sorted({path.relative_to(folder.parent).parts[0] for depth in ("*", "*/*")
                   for path in folder.parent.glob(f"{depth}/{record}")})
    kinds = {"study": "studies"}.get(kind, f"{kind}s")
    there = (f"{kinds} that can be resumed in {folder.parent}: {', '.join(here)}" if here else
             f"no {kind} in {folder.parent} can be resumed")
    return UsageError(f"no {kind} to resume at {folder} (no {record}); {there}")
