"""Section 6 (with --with-study, about 20 minutes; --with-full-study, hours: the target is 3): the budget study's
`--quick` run (or the full study) end to end, its points per hour, and the share of its wall time not
spent training students. `--full-study-from FOLDER` times a full study already run instead, over however many
sessions it took: its wall time is the sum of its runs (a start and each --resume, from Ray's start to the
report), which study.py logs in study.json; the work lost to a pause (points in flight) is inside that sum.

    study_overhead_fraction = 1 - sum over points of train_seconds / (wall seconds x trial slots)

train_seconds is what each point reports: its query scoring, building the student, its training steps and
the per-epoch selection scoring of early stopping. Everything else counts as overhead: Ray and worker
start, the teachers and data (warm caches: read, not built), fetching the prepared data from the object
store, the final validation and test evaluation, checkpoints and reports. `study_in_trial_fraction` (sum of Tune's
time_this_iter_s over the same denominator) tells what happens inside trials from what happens
between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from tuning.budget_study import carry

ROOT = Path(__file__).resolve().parents[1]
NAMES = {False: "bench-study-quick", True: "bench-study-full"}


def point_reports(folder: Path) -> list[dict]:
    """Every report of every trial of a Tune experiment folder (each trial's result.json, a line each)."""
    reports = []
    for path in sorted(folder.glob("*/result.json")):
        reports += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return reports


def overhead(reports: list[dict], wall_seconds: float, slots: int, full: bool = False) -> dict:
    """The quick study's wall time, points per hour and overhead shares; the full study's wall time."""
    if full:
        return {"study_full_seconds": wall_seconds, "study_full_points_per_hour": len(reports) / wall_seconds * 3600}
    capacity = wall_seconds * slots
    trained = sum(report.get("train_seconds", 0.0) for report in reports)
    in_trial = sum(report.get("time_this_iter_s", 0.0) for report in reports)
    return {"study_quick_seconds": wall_seconds, "study_points_per_hour": len(reports) / wall_seconds * 3600,
            "study_overhead_fraction": 1 - trained / capacity if capacity else None,
            "study_in_trial_fraction": in_trial / capacity if capacity else None}


def logged(folder: Path, slots: int) -> tuple[dict, dict]:
    """The full study's figures from a study folder: the summed seconds of its logged runs, its points. A study
    not yet finished has no such figure (its time so far would pass for the whole study's)."""
    try:
        record = json.loads((folder / "study.json").read_text(encoding="utf-8"))
        runs, planned = record["runs"], len(record["plan"]["arms"]) * len(record["plan"]["seeds"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return {}, {"error": f"{folder} is not a study folder with logged runs (study.json 'runs'): {error}"}
    ended = runs[-1].get("trials_ended", 0) if runs else 0
    if ended < planned:
        return {}, {"error": f"{folder.name} is not finished: {ended} of {planned} trials ended (resume it first)"}
    # A study carried over machines holds its earlier machines' points only in its ledger (every point, once).
    reports = carry.read_points(folder) or point_reports(folder)
    raw = {"study": folder.name, "runs": runs, "points": len(reports), "slots": slots}
    return overhead(reports, sum(run["seconds"] for run in runs), slots, full=True), raw


def measure(keep_in: str | None = None, full: bool = False) -> tuple[dict, dict]:
    """keep_in: a storage folder that keeps the study (report, study.csv) afterwards; a temporary one if None."""
    slots = common.THREADS  # 1-CPU trials, as many at once as there are cores (the study's default)
    name = NAMES[full]
    with tempfile.TemporaryDirectory(prefix="bench-study-") as scratch:
        storage = keep_in or scratch
        command = [sys.executable, str(ROOT / "tuning" / "study.py"), *([] if full else ["--quick"]),
                   "--storage-path", storage, "--name", name, "--max-concurrent", str(slots)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        wall = time.perf_counter() - started
        reports = point_reports(Path(storage) / name)
    raw = {"command": command[1:], "returncode": done.returncode, "points": len(reports), "slots": slots,
           "output_tail": done.stdout.splitlines()[-20:]}
    if done.returncode != 0:
        raw["error"] = done.stderr[-2000:] or "study.py failed"
        return {}, raw
    return overhead(reports, wall, slots, full), raw
