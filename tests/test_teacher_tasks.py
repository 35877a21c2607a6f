"""Teachers as Ray tasks (tuning/assets/teacher_tasks.py), the per-entry lock of the teacher cache (two cold
preparations at once fine-tune each teacher once), and the progress the fine-tuning shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import trainables.teachers as teachers
from tests.conftest import ROOT, SUBPROCESS_WARNINGS, TEACHER_THREADS
from trainables.encode import encode_task
from trainables.models import make_blueprint
from trainables.teachers import StepMeter, TeacherJob, TeacherSettings, estimate_text, format_duration
from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, load_data, prepare_teacher_ensemble, resolve_model

SETTINGS = DataSettings(**SMOKE_SETTINGS)  # two tiny teachers, 96 training examples, 24 + 24 to evaluate


def prepare_here(cache, patch, lines=None, start_ray=None):
    patch.setenv("EXPERT_LOOP_CACHE", str(cache))
    progress = (lines.append if lines is not None else lambda *a: None)
    return prepare_teacher_ensemble(SETTINGS, load_data(SETTINGS), progress=progress, start_ray=start_ray,
                                    teacher_threads=TEACHER_THREADS)


def entry_names(cache) -> set[str]:
    return {p.name for p in (cache / "teachers").iterdir() if re.fullmatch(r"tiny-bert(-2)?-[0-9a-f]{24}", p.name)}


def test_teachers_as_ray_tasks_give_the_in_process_logits_and_cache_entries(ray_session, tmp_path, monkeypatch):
    here = prepare_here(tmp_path / "in-process", monkeypatch)
    lines, starts = [], []
    on_ray = prepare_here(tmp_path / "ray", monkeypatch, lines, start_ray=lambda: starts.append("started"))
    assert starts == ["started"]
    assert "teachers: 2 Ray task(s) of 1 CPU(s) each, 2 CPU(s) in Ray" in lines
    # Seeded, one thread each side: the same teachers, whichever process trained them.
    for split in ("train", "validation", "test"):
        np.testing.assert_allclose(on_ray.logits[split], here.logits[split], atol=1e-5)
    assert on_ray.teacher_labels == here.teacher_labels == 96
    assert entry_names(tmp_path / "ray") == entry_names(tmp_path / "in-process")  # the same keys
    assert all((tmp_path / "ray" / "teachers" / name / teachers.COMPLETE).is_file()
               for name in entry_names(tmp_path / "ray"))

    def must_not_start():
        raise AssertionError("Ray was started although every teacher is cached")

    again = prepare_here(tmp_path / "ray", monkeypatch, start_ray=must_not_start)
    assert np.array_equal(again.logits["train"], on_ray.logits["train"])


# Two preparations started at the same moment (a file barrier) on one cold cache.
RACE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    import tuning.assets.prepare as prepare
    barrier, me, out, bf16 = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    settings = prepare.DataSettings(**{**prepare.SMOKE_SETTINGS, "bf16": bf16})
    data = prepare.load_data(settings)
    (barrier / me).touch()
    while len(list(barrier.iterdir())) < 2:
        time.sleep(0.01)
    outputs = prepare.prepare_teacher_ensemble(settings, data, progress=lambda line: print(line, flush=True),
                                               teacher_threads=1)
    np.savez(out, **outputs.logits)
""")


@pytest.mark.slow
@pytest.mark.parametrize("precisions", [("false", "false"), ("true", "false")])
def test_two_cold_preparations_at_once_fine_tune_each_teacher_once(tmp_path, precisions):
    """Also when the two processes' precision differs (bf16=auto measured on a busy machine can come out
    either way): both then fine-tuned every teacher, each under its own lock."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "EXPERT_LOOP_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "PYTHONWARNINGS": SUBPROCESS_WARNINGS, "TOKENIZERS_PARALLELISM": "false"}
    # Output to files, not pipes: reading one process's pipes to its end while the other fills its own 64 KB
    # pipe buffer (progress bars) and blocks, holding the teacher lock the first waits for, hung CI for 600 s.
    logs = {name: (tmp_path / f"{name}.out", tmp_path / f"{name}.err") for name in ("a", "b")}
    runs = []
    for name, bf16 in zip(("a", "b"), precisions, strict=True):
        with open(logs[name][0], "w") as out, open(logs[name][1], "w") as err:
            runs.append(subprocess.Popen(
                [sys.executable, "-c", RACE, str(barrier), name, str(tmp_path / f"{name}.npz"), bf16],
                cwd=ROOT, env=env, stdout=out, stderr=err, text=True))
    try:
        for run in runs:
            run.wait(timeout=600)
    finally:  # a hung run (a deadlock) must not outlive the test
        for run in runs:
            run.kill()
    outputs = [(out.read_text(), err.read_text()) for out, err in logs.values()]
    for run, (_, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
    fine_tuned = [re.findall(r"teacher (\S+): fine-tuning on", out) for out, _ in outputs]
    assert sorted(fine_tuned, key=len) == [[], ["tiny-bert", "tiny-bert-2"]]  # one process, each teacher once
    waiter = outputs[fine_tuned.index([])][0]
    assert "another process is preparing it; waiting for it" in waiter
    assert len(re.findall(r"teacher tiny-bert(-2)?: cache hit", waiter)) == 2
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        for split in ("train", "validation", "test"):
            assert np.array_equal(a[split], b[split])


def test_two_processes_of_different_precision_take_the_teachers_locks_in_one_order():
    """The deadlock CI met: a bf16 process and an fp32 process each sorted the teachers by its own
    precision's cache key, and these keys can order two teachers oppositely (here: by bf16 key tiny-bert-2
    comes first, by fp32 key tiny-bert). Each took one lock and waited for the other's forever."""
    def entry(name, key, other_key):
        return teachers._Entry(name, None, Path("cache") / key, Path("cache") / other_key, "")

    as_bf16 = [entry("tiny-bert", "c-bf16", "a-fp32"), entry("tiny-bert-2", "b-bf16", "d-fp32")]
    as_fp32 = [entry("tiny-bert", "a-fp32", "c-bf16"), entry("tiny-bert-2", "d-fp32", "b-bf16")]
    # the old order, by each process's own folder: opposite
    assert [e.name for e in sorted(as_bf16, key=lambda e: e.folder.name)] == ["tiny-bert-2", "tiny-bert"]
    assert [e.name for e in sorted(as_fp32, key=lambda e: e.folder.name)] == ["tiny-bert", "tiny-bert-2"]
    for entries in (as_bf16, as_fp32):  # by the shared lock's name: one order, whoever asks
        ordered = teachers.in_lock_order(entries)
        assert [e.name for e in ordered] == ["tiny-bert", "tiny-bert-2"]
        assert [teachers.lock_name(e) for e in ordered] == ["a-fp32.lock", "b-bf16.lock"]


# ---------------------------------------------------------------- progress and the estimate


class RecordingBar:
    made = []

    def __init__(self, desc, total, unit):
        self.desc, self.total, self.unit, self.count, self.closed = desc, total, unit, 0, False
        RecordingBar.made.append(self)

    def update(self, n=1):
        self.count += n

    def close(self):
        self.closed = True


def test_format_duration():
    assert format_duration(12.4) == "12 s"
    assert format_duration(59.6) == "1 min 00 s"
    assert format_duration(9 * 60 + 40) == "9 min 40 s"
    assert format_duration(3725) == "1 h 02 min"


def test_estimate_text_by_hand():
    # 600 steps x 0.5 s = 300 s; logits: 4800 examples x 0.5 s / 16 per step / 3 = 50 s.
    assert estimate_text("t", 600, 0.5, 16, 4800) == (
        "teacher t: about 5 min 00 s to fine-tune (600 steps at 0.50 s) and 50 s for the logits of 4800 "
        "examples (estimated from steps 2-4)")


def test_step_meter_says_the_estimate_once_after_three_timed_steps(monkeypatch):
    clock = iter([100.0, 103.0, 104.5, 106.0, 108.0, 110.0, 112.0])
    monkeypatch.setattr(teachers.time, "perf_counter", lambda: next(clock))
    lines, bar = [], RecordingBar("x", 10, "step")
    meter = StepMeter("x", steps=10, batch_size=8, logit_examples=24, progress=lines.append, progress_bar=bar)
    for _ in range(7):
        meter.step()
    meter.close()
    # steps 2-4 took 106 - 100 = 6 s: 2 s a step; 10 steps 20 s; logits 24 x 2 / 8 / 3 = 2 s.
    assert lines == [estimate_text("x", 10, 2.0, 8, 24)]
    assert "about 20 s to fine-tune" in lines[0] and "2 s for the logits" in lines[0]
    assert bar.count == 7 and bar.closed


def test_a_real_fine_tuning_moves_both_bars_to_their_totals_and_estimates(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path))
    data = load_data(SETTINGS)
    blueprint = make_blueprint("tiny-bert", resolve_model("tiny-bert", progress=lambda *a: None), data.task,
                               data.num_labels)
    settings = TeacherSettings(epochs=2, learning_rate=3e-3, batch_size=8, max_length=32, seed=0, num_threads=1)
    job = TeacherJob("tiny-bert", blueprint, encode_task(blueprint.tokenizer, data, 32, None), settings,
                     np.arange(len(data.train)))
    RecordingBar.made = []
    lines = []
    _, logits = teachers.fine_tune_and_predict(job, lines.append, RecordingBar)
    steps, logits_bar = RecordingBar.made
    assert (steps.desc, steps.total, steps.count, steps.unit) == ("tiny-bert fine-tuning", 2 * 12, 24, "step")
    assert (logits_bar.total, logits_bar.count) == (96 + 24 + 24, 144) and steps.closed and logits_bar.closed
    assert sum(line.startswith("teacher tiny-bert: about ") for line in lines) == 1
    assert {split: values.shape for split, values in logits.items()} == {
        "train": (96, 4), "validation": (24, 4), "test": (24, 4)}
