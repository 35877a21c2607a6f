"""Everything a sweep does once, in the driver, before any trial: fetch assets, load and split the
data, tokenize it for the student, and (for kd / active_loop) prepare the teacher ensemble."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainables import precision
from trainables.atomic import publish_folder, staging_folder
from trainables.checkpoint import RUN_CONFIG
from trainables.data import TaskData, load_task_data, smoke_task_data
from trainables.encode import encode_task
from trainables.models import TINY_MODELS, make_blueprint, make_tiny_model_folder
from trainables.prepared import Prepared, TeacherOutputs
from trainables.sampling import stratified_subset
from trainables.teachers import TeacherSettings, prepare_teachers, run_in_process
from tuning.assets import catalog as assets
from tuning.assets.experts import expert_context
from tuning.assets.settings import DEFAULT_TEACHERS, SMOKE_SETTINGS, DataSettings  # noqa: F401 (their old home)
from tuning.assets.teacher_tasks import ray_runner


def load_data(settings: DataSettings, progress=print) -> TaskData:
    # The smoke data too goes through load_task_data: it keeps its fixed split but checks the sizes given and
    # applies --max-train-examples (they were ignored, bad values included).
    return load_task_data(
        settings.dataset, seed=settings.split_seed, validation_size=settings.validation_size,
        test_size=settings.test_size, max_train_examples=settings.max_train_examples,
        preset_files=lambda name: assets.fetch_dataset(name, progress=progress),
    )


def resolve_model(name: str, progress=print) -> str:
    """A folder (or hub name) for a model argument; tiny models are made locally for smoke tests."""
    if name in TINY_MODELS:
        return str(_tiny_model(name))
    return assets.resolve_model(name, progress=progress)


def _tiny_model(name: str) -> Path:
    words = sorted({w for text in smoke_task_data(0).train.text for w in re.findall(r"[a-z]+", text.lower())})
    seed = TINY_MODELS.index(name)
    folder = assets.cache_dir() / "tiny" / f"{name}-{len(words)}-{seed}"
    if not (folder / "config.json").is_file():
        with staging_folder(folder, prefix=".building-") as staging:  # a killed build leaves only this
            make_tiny_model_folder(staging / "model", words, seed)
            # another process may have finished it first
            publish_folder(staging / "model", folder, finished=lambda built: (built / "config.json").is_file())
    return folder


def fine_tuned_here(teacher: str) -> bool:
    """A teacher given as an already fine-tuned checkpoint of this tool (a folder with run_config.json)
    is used as is; any other (preset, tiny model, pretrained folder or hub name) is fine-tuned here."""
    return not (Path(teacher) / RUN_CONFIG).is_file()


def teacher_rows(settings: DataSettings, data: TaskData) -> np.ndarray:
    """The training examples the teachers learn from here: all of them, or a stratified share when the
    user studies experts built on data the student never gets (the pool then excludes it); none when
    every teacher is an already fine-tuned checkpoint, which learns nothing here (--teacher-split then
    takes nothing from the pool)."""
    n = len(data.train)
    if not any(fine_tuned_here(name) for name in settings.teachers):
        return np.arange(0)
    if settings.teacher_split == 0:
        return np.arange(n)
    return stratified_subset(data.train.labels, max(1, round(settings.teacher_split * n)), settings.split_seed)


def prepare_teacher_ensemble(settings: DataSettings, data: TaskData, progress=print,
                             start_ray: Callable[[], None] | None = None,
                             teacher_threads: int | None = None) -> TeacherOutputs:
    """The ensemble's logits, from the cache or fine-tuned now. With `start_ray` (a function that starts
    or joins Ray), teachers to fine-tune run as Ray tasks of `cpus_per_trial` CPUs each, side by side;
    without it, one after the other in this process with `teacher_threads` threads (default: every core;
    tests on a shared machine give 1)."""
    started = time.perf_counter()
    teacher_settings = TeacherSettings(
        epochs=settings.teacher_epochs, learning_rate=settings.teacher_learning_rate,
        batch_size=settings.teacher_batch_size, max_length=settings.max_length, seed=settings.split_seed,
        num_threads=teacher_threads or os.cpu_count() or 1, bf16=precision.resolve(settings.bf16),
    )
    progress(f"teachers' precision: {precision.name(teacher_settings.bf16)}"
             + (f" ({precision.choice().reason})" if settings.bf16 == precision.AUTO else " (forced)"))
    located = [(name, resolve_model(name, progress)) for name in settings.teachers]
    runner = run_in_process if start_ray is None else ray_runner(settings.cpus_per_trial, start_ray)
    if settings.teacher_split > 0 and not any(fine_tuned_here(name) for name in settings.teachers):
        progress("--teacher-split takes nothing from the pool: every teacher is an already fine-tuned checkpoint")
    outputs = prepare_teachers(located, data, teacher_settings, teacher_rows(settings, data),
                               assets.cache_dir(), progress, runner)
    progress(f"teacher ensemble ready in {time.perf_counter() - started:.1f} s")
    return outputs


def prepare(settings: DataSettings, need_teachers: bool, data: TaskData | None = None,
            progress=print, start_ray: Callable[[], None] | None = None, teacher_threads: int | None = None,
            expert: str = "teachers", human_folder: Path | str = "") -> Prepared:
    """start_ray, teacher_threads: see prepare_teacher_ensemble (teachers as Ray tasks, or here). expert,
    human_folder: an expert that reads text gets it (tuning/assets/experts.py); llm's model is fetched here."""
    data = data or load_data(settings, progress)
    context = expert_context(expert, data, human_folder, progress)
    progress(f"data: {data.summary()}")
    student_location = resolve_model(settings.student, progress)
    student = make_blueprint(settings.student, student_location, data.task, data.num_labels)
    encoded = encode_task(student.tokenizer, data, settings.max_length, assets.cache_dir() / "tokens")
    teachers = prepare_teacher_ensemble(settings, data, progress, start_ray, teacher_threads) if need_teachers else None
    provenance = {"data": settings.to_dict(), "data_fingerprint": data.fingerprint(),
                  "student_location": student_location,
                  "split_sizes": {split: len(encoded[split]) for split in encoded}}  # for the model card
    return Prepared(data.name, data.task, data.label_names, encoded, student, teachers,
                    settings.cpus_per_trial, provenance, context)
