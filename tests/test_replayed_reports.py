"""A resumed trial's logs keep only the reports its checkpoint covers (tuning/trials/replayed_reports.py). The race
itself (Ctrl-C between a report and its checkpoint's registration) is exercised end to end by
tests/test_resume.py::test_ctrl_c_then_sigkill_then_resume_runs_every_trial_once, which logged an epoch twice
before the fix."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from tuning.sweep.search import SweepSettings, run_config
from tuning.trials.replayed_reports import TrimReplayedReports, is_local, trim_csv, trim_json_lines

CSV_HEADER = "val_accuracy,epoch,training_iteration,trial_id\r\n"


def write_logs(folder: Path, iterations: list[int], half_line: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"val_accuracy": i / 10, "epoch": i, "training_iteration": i}) + "\n" for i in iterations]
    (folder / "result.json").write_text("".join(lines) + ('{"val_accuracy": 0.' if half_line else ""))
    rows = [f"{i / 10},{i},{i},abc\r\n" for i in iterations]
    (folder / "progress.csv").write_bytes((CSV_HEADER + "".join(rows)).encode())


def logged(folder: Path) -> tuple[list[int], list[str]]:
    epochs = [json.loads(line)["epoch"] for line in (folder / "result.json").read_text().splitlines()]
    return epochs, (folder / "progress.csv").read_bytes().decode().split("\r\n")


def test_reports_after_the_checkpoint_are_dropped_and_the_rest_kept_byte_for_byte(tmp_path):
    write_logs(tmp_path, [1, 2, 3])
    before = (tmp_path / "result.json").read_text().splitlines(keepends=True)
    trim_json_lines(tmp_path / "result.json", 1)
    trim_csv(tmp_path / "progress.csv", 1)
    assert (tmp_path / "result.json").read_text() == before[0]
    assert (tmp_path / "progress.csv").read_bytes() == (CSV_HEADER + "0.1,1,1,abc\r\n").encode()


def test_from_scratch_keeps_the_csv_header_and_no_report(tmp_path):
    write_logs(tmp_path, [1, 2])
    trim_json_lines(tmp_path / "result.json", 0)
    trim_csv(tmp_path / "progress.csv", 0)
    assert logged(tmp_path) == ([], [CSV_HEADER.strip(), ""])


def test_a_half_written_last_line_is_dropped_and_covered_logs_are_not_rewritten(tmp_path):
    write_logs(tmp_path, [1, 2], half_line=True)
    trim_json_lines(tmp_path / "result.json", 2)
    assert logged(tmp_path)[0] == [1, 2]
    stamp = (tmp_path / "result.json").stat().st_mtime_ns, (tmp_path / "progress.csv").stat().st_mtime_ns
    trim_json_lines(tmp_path / "result.json", 2)
    trim_csv(tmp_path / "progress.csv", 5)
    assert ((tmp_path / "result.json").stat().st_mtime_ns, (tmp_path / "progress.csv").stat().st_mtime_ns) == stamp


def fake_trial(storage: Path, staging: Path, checkpoint_iteration: int | None):
    result = None if checkpoint_iteration is None else SimpleNamespace(
        metrics={"training_iteration": checkpoint_iteration, "epoch": checkpoint_iteration})
    return SimpleNamespace(path=str(storage), local_path=str(staging), latest_checkpoint_result=result)


def test_the_callback_trims_the_storage_copy_and_the_staging_copy_to_the_checkpoint(tmp_path):
    storage, staging = tmp_path / "results" / "trial", tmp_path / "ray" / "trial"
    write_logs(storage, [1, 2, 3])
    write_logs(staging, [1, 2, 3])
    TrimReplayedReports(str(tmp_path / "results")).on_trial_start(0, [], fake_trial(storage, staging, 2))
    for folder in (storage, staging):
        epochs, rows = logged(folder)
        assert epochs == [1, 2] and rows == [CSV_HEADER.strip(), "0.1,1,1,abc", "0.2,2,2,abc", ""]


def test_logs_on_remote_storage_are_left_as_they_are(tmp_path):
    """An s3:// or gs:// storage path: Ray's staging copy is not trimmed either (as before: only a local
    storage folder is)."""
    storage, staging = tmp_path / "results" / "trial", tmp_path / "ray" / "trial"
    for folder in (storage, staging):
        write_logs(folder, [1, 2, 3])
    TrimReplayedReports("s3://bucket/results").on_trial_start(0, [], fake_trial(storage, staging, 2))
    assert logged(storage)[0] == logged(staging)[0] == [1, 2, 3]
    assert [is_local(path) for path in ("/data/r", "ray_results", "file:///data/r", "s3://b/r", "gs://b/r")] == [
        True, True, True, False, False]


def test_a_callback_pickled_by_the_previous_version_still_resumes(tmp_path, monkeypatch):
    """Tuner.restore unpickles the callback saved when the run began; one saved before it took a storage path
    has no `local` (found when a sweep begun under the old code was resumed under the new: AttributeError).
    Ray's trial path then decides: absolute on local storage, bucket/... on remote storage."""
    old = TrimReplayedReports.__new__(TrimReplayedReports)  # as unpickled: no __init__, no instance attribute
    storage, staging = tmp_path / "results" / "trial", tmp_path / "ray" / "trial"
    write_logs(storage, [1, 2, 3])
    old.on_trial_start(0, [], fake_trial(storage, storage, 1))
    assert logged(storage)[0] == [1]
    monkeypatch.chdir(tmp_path)  # "results/trial" as Ray names a trial on s3://results: relative
    write_logs(staging, [1, 2, 3])
    old.on_trial_start(0, [], fake_trial(Path("results/trial"), staging, 1))
    assert logged(staging)[0] == [1, 2, 3] and logged(storage)[0] == [1]


def test_a_new_trial_without_logs_is_left_alone(tmp_path):
    TrimReplayedReports(str(tmp_path)).on_trial_start(0, [], fake_trial(tmp_path / "new", tmp_path / "staging", None))
    assert not (tmp_path / "new").exists() and not (tmp_path / "staging").exists()


def test_sweeps_run_with_the_callback():
    sweep = SweepSettings(method="kd", name="x", storage_path="/tmp/x", num_samples=2, max_concurrent=1,
                          cpus_per_trial=1, seed=0)
    assert any(isinstance(c, TrimReplayedReports) for c in run_config(sweep, []).callbacks)
