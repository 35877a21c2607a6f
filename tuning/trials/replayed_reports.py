"""Each epoch (or round) of a trial logged once, also when the trial resumes.

Tune writes a report to the trial's result.json and progress.csv when it arrives, and registers the
report's checkpoint a moment later (a separate step of its controller). An interruption between the two
(Ctrl-C, a killed driver, a failed trial) leaves a logged report that the checkpoint Tune restores from does
not cover: the resumed trial trains that epoch again and reports it a second time. Measured: Ctrl-C during
a smoke sweep logged epoch 2 of a trial twice (tests/test_resume.py). TrimReplayedReports removes, when a
trial starts, the logged reports its checkpoint does not cover; they are reported again, so every epoch is
logged exactly once. (TensorBoard's event files are append-only: for a step logged twice it shows the later
value, which is the one the trial continued from.) Logs on remote storage (an s3:// or gs:// --storage-path)
are left as they are."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from urllib.parse import urlsplit

from ray import tune

from trainables.atomic import write_text

ITERATION = "training_iteration"  # Tune's count of a trial's reports, restored with its checkpoint


class TrimReplayedReports(tune.Callback):
    """Listed before the loggers (Ray appends its default loggers after the run's callbacks): a restored
    trial's JSON and CSV loggers copy its logs from the storage folder into Ray's staging folder and append
    there, so the copy in the storage folder is trimmed before they read it. `storage_path`: the run's
    (RunConfig.storage_path); only a local one is trimmed."""

    # A callback pickled before `local` existed (a sweep or study begun under the previous version and resumed
    # under this one: Tuner.restore unpickles it) has none: its trials' storage path then decides.
    local: bool | None = None

    def __init__(self, storage_path: str):
        self.local = is_local(storage_path)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        # A local storage path is absolute in Ray's trial; a remote one has its scheme stripped (bucket/...).
        if self.local if self.local is not None else Path(trial.path).is_absolute():
            keep_through = restored_iteration(trial)
            for folder in {trial.path, trial.local_path}:  # storage, and Ray's staging folder if it has a copy
                trim_trial_logs(Path(folder), keep_through)


def is_local(storage_path: str) -> bool:
    """A folder on this machine: a path, or a file:// URI (as Ray's storage reads them); not s3://, gs://, ..."""
    return urlsplit(str(storage_path)).scheme in ("", "file")


def restored_iteration(trial) -> int:
    """The training_iteration of the checkpoint the trial starts from; 0 when it starts from scratch.
    Trial.latest_checkpoint_result is Ray's (Tune's Trial is a DeveloperAPI; no public API names the result
    a trial's checkpoint was saved with): pyproject.toml pins Ray to the minor versions tested, and
    tests/test_pinned_internals.py fails by name when the attribute is gone."""
    result = trial.latest_checkpoint_result
    return int(result.metrics.get(ITERATION, 0)) if result is not None and result.metrics else 0


def trim_trial_logs(folder: Path, keep_through: int) -> None:
    """Drop the reports after iteration `keep_through` from result.json and progress.csv (a no-op for a
    new trial, whose folder holds neither)."""
    trim_json_lines(folder / "result.json", keep_through)
    trim_csv(folder / "progress.csv", keep_through)


def trim_json_lines(path: Path, keep_through: int) -> None:
    if not path.is_file():
        return
    lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _json_iteration(line) <= keep_through]
    if len(kept) < len(lines):
        write_text(path, "".join(kept))


def _json_iteration(line: str) -> int:
    """A half-written last line (the driver killed mid-write) counts as after every checkpoint: dropped."""
    try:
        return int(json.loads(line)[ITERATION])
    except (ValueError, KeyError, TypeError):
        return 1 << 62


def trim_csv(path: Path, keep_through: int) -> None:
    if not path.is_file():
        return
    text = path.read_bytes().decode("utf-8")  # as written: rows end with "\r\n"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or ITERATION not in rows[0]:
        return
    column = rows[0].index(ITERATION)
    kept = [rows[0]] + [row for row in rows[1:] if _csv_iteration(row, column) <= keep_through]
    if len(kept) < len(rows):
        out = io.StringIO(newline="")
        # Ray's csv.DictWriter ends rows with "\r\n"; keep whatever the file has.
        csv.writer(out, lineterminator="\r\n" if "\r\n" in text else "\n").writerows(kept)
        write_text(path, out.getvalue())


def _csv_iteration(row: list[str], column: int) -> int:
    try:
        return int(row[column])
    except (ValueError, IndexError):
        return 1 << 62
