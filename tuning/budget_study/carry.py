"""A study made portable: its points and its teachers' outputs in two files, without Ray's.

The full study runs for hours longer than one machine may be had (about 14 hours on 2 cores), and Ray Tune's
experiment folder (checkpoints, absolute paths, pickled state) does not travel. Two files do:
- points.jsonl.gz: every point measured so far, as its trial reported it (predictions and query log included),
  with `done` on a trial's last point;
- teacher_logits.npz: the teacher ensemble's logits, from which every expert label and read of the study comes, so
  that trials run later elsewhere ask the very same experts (teachers fine-tuned again on another machine can
  differ in their last bits, and cost minutes).
Every study writes both into its folder; `tuning/study.py --export DIR --name NAME` copies them, study.json and
the report into DIR (to commit, or to carry); in another machine's --storage-path, `--resume --name NAME` then
runs only the trials that have not ended and writes the report over all of them.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np

from trainables.atomic import write_file
from trainables.encode import SPLITS
from trainables.errors import UsageError
from trainables.prepared import TeacherOutputs
from trainables.study_settings import BUDGET

POINTS = "points.jsonl.gz"
TEACHERS = "teacher_logits.npz"


def write_points(folder: Path, rows: list[dict]) -> Path:
    """rows as gzip-compressed JSON lines, sorted by arm, seed and budget, each row's keys in the order reported
    (study.csv's columns follow it); the same rows give the same bytes (no time stamp in the gzip header), so a
    committed copy changes only when a point does."""
    ordered = sorted(rows, key=lambda row: (row["arm"], row["seed"], row[BUDGET]))
    text = "".join(json.dumps(row) + "\n" for row in ordered)
    data = gzip.compress(text.encode("utf-8"), mtime=0)
    return write_file(folder / POINTS, lambda temporary: temporary.write_bytes(data))


def read_points(folder: Path) -> list[dict]:
    """The points a study folder carries ([] when it has none: a study of before 2026-12-07, or a new one)."""
    path = folder / POINTS
    if not path.is_file():
        return []
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]


def ended_trials(rows: list[dict]) -> set[tuple[str, int]]:
    """(arm, seed) of every trial whose last point is among rows."""
    return {(row["arm"], int(row["seed"])) for row in rows if row.get("done")}


def save_teachers(folder: Path, teachers: TeacherOutputs) -> Path:
    """The ensemble's names, logits per split, gold-label count, accuracy and training rows (plain arrays:
    read back without unpickling)."""
    arrays = {f"logits/{split}": teachers.logits[split] for split in SPLITS}
    arrays.update(names=np.array(teachers.names), teacher_labels=np.array(teachers.teacher_labels),
                  accuracy=np.array(json.dumps(teachers.accuracy, sort_keys=True)))
    if teachers.train_rows is not None:
        arrays["train_rows"] = np.asarray(teachers.train_rows)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_file(folder / TEACHERS, lambda temporary: temporary.write_bytes(buffer.getvalue()))


def load_teachers(folder: Path) -> TeacherOutputs | None:
    """The teachers saved by save_teachers, or None when the folder holds none."""
    path = folder / TEACHERS
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as stored:
        return TeacherOutputs(names=tuple(str(name) for name in stored["names"]),
                              logits={split: stored[f"logits/{split}"] for split in SPLITS},
                              teacher_labels=int(stored["teacher_labels"]),
                              accuracy=json.loads(str(stored["accuracy"])),
                              train_rows=stored["train_rows"] if "train_rows" in stored.files else None)


def check_teachers_fit(teachers: TeacherOutputs, split_sizes: dict[str, int]) -> None:
    """Refuse saved teachers whose logits do not cover this data's splits (another data set or version)."""
    for split, size in split_sizes.items():
        if teachers.logits[split].shape[1] != size:
            raise UsageError(f"{TEACHERS} holds the teachers' logits for {teachers.logits[split].shape[1]} {split} "
                             f"examples, but this study's data has {size}: it belongs to another data set or version")
