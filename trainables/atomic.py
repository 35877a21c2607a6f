"""Files and folders that appear whole or not at all: written under a temporary name beside their final
place, then renamed into it with os.replace.

The temporary lies in the same folder because os.replace is atomic only within one file system. A reader
(another process, a resumed sweep, a concurrent cache user) therefore sees either the old version or the
new one, never half of one; a kill or an exception part-way leaves at most the temporary, which is removed
when the exception passes through here. No fsync: the callers guard against crashes of the process, not
power loss, and a sweep's report files are rewritten often."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def write_file(path: Path | str, write: Callable[[Path], object]) -> Path:
    """write(temporary) fills a file beside `path` (text or binary: the caller opens it), which then
    replaces `path`. If write raises, `path` is left as it was and the temporary is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, and unique per call (pid for processes, uuid for threads); created by `write` itself, so
    # the file gets the usual permissions (mkstemp's would be 0600).
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_text(path: Path | str, text: str) -> Path:
    return write_file(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


@contextmanager
def staging_folder(final: Path, prefix: str = ".staging-") -> Iterator[Path]:
    """A fresh, empty folder beside `final`, to fill and then move into place with publish_folder or
    replace_folder; removed on the way out (after a successful move there is nothing left to remove)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=prefix))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_folder(built: Path, final: Path, finished: Callable[[Path], bool]) -> None:
    """Rename the finished folder `built` to `final`. For caches that several processes may fill at once:
    when the rename fails because another process got there first, its copy is kept if finished(final)
    says it is whole; otherwise the error is raised."""
    try:
        os.replace(built, final)
    except OSError:
        if not finished(final):
            raise


def replace_folder(built: Path, final: Path) -> None:
    """Rename `built` to `final`, replacing an existing `final` (a checkpoint rewritten every epoch): the
    old folder is first renamed aside, since os.replace cannot overwrite a non-empty folder, and deleted
    once the new one is in place."""
    old = final.with_name(f".{final.name}-old")
    shutil.rmtree(old, ignore_errors=True)  # left by a run killed between the two renames
    if final.exists():
        os.replace(final, old)
    os.replace(built, final)
    shutil.rmtree(old, ignore_errors=True)
