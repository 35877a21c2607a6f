"""The teacher ensemble, prepared once per (teacher, data, split, settings) and cached on disk:
each teacher is fine-tuned with its own tokenizer on the labelled training split, then its logits
on every split are stored. A second sweep on the same data runs no teacher at all."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoTokenizer

from trainables import precision
from trainables.atomic import publish_folder, staging_folder
from trainables.checkpoint import RUN_CONFIG
from trainables.data import TaskData
from trainables.encode import SPLITS, encode_task, tokenizer_fingerprint
from trainables.errors import UsageError
from trainables.loop import LoopSettings, TrainingSet, epoch_steps, predict_logits, train
from trainables.losses import cross_entropy_loss
from trainables.metrics import classification_metrics
from trainables.models import ModelBlueprint, build_model, load_finetuned, make_blueprint
from trainables.prepared import TeacherOutputs

COMPLETE = ".complete"


@dataclass(frozen=True)
class TeacherSettings:
    epochs: int
    learning_rate: float
    batch_size: int
    max_length: int
    seed: int
    num_threads: int
    bf16: bool = False


@dataclass(frozen=True)
class TeacherJob:
    """One teacher to fine-tune, with everything the work needs and nothing of the driver's disk, so that
    it runs alike in this process or as a Ray task on another node (tuning/assets/teacher_tasks.py)."""

    name: str
    blueprint: ModelBlueprint
    encoded: dict  # split -> EncodedSplit, tokenized for this teacher
    settings: TeacherSettings
    train_rows: np.ndarray


# (jobs, progress) -> [(fine-tuned model, {split: logits})], in the jobs' order.
Runner = Callable[[list[TeacherJob], Callable], list[tuple[object, dict]]]


def run_in_process(jobs: list[TeacherJob], progress: Callable = print) -> list[tuple[object, dict]]:
    """One teacher after the other, in this process (no Ray)."""
    return [fine_tune_and_predict(job, progress) for job in jobs]


@dataclass(frozen=True)
class _Entry:
    name: str
    blueprint: ModelBlueprint
    folder: Path  # this settings' cache entry
    other: Path  # the same teacher fine-tuned in the other precision: valid too
    other_precision: str  # "bf16" or "fp32": the precision of `other`


def prepare_teachers(teachers: list[tuple[str, str]], data: TaskData, settings: TeacherSettings,
                     train_rows: np.ndarray, cache: Path, progress: Callable = print,
                     runner: Runner = run_in_process) -> TeacherOutputs:
    """teachers: (name, location) pairs. train_rows: which training examples the teachers learn from.
    `runner` fine-tunes the teachers the cache lacks (all of them at once: side by side as Ray tasks, or
    one after the other here); this process writes their cache entries, each under a lock, so two sweeps
    started at once on a cold cache fine-tune each teacher once."""
    for name, location in teachers:  # all checks before any teacher is fine-tuned
        check_teacher_checkpoint(name, location, data.num_labels)
    started = time.perf_counter()
    ready, entries = {}, []  # name -> (logits by split, fine-tuned on train_rows)
    for name, location in teachers:
        if (Path(location) / RUN_CONFIG).is_file():
            progress(f"teacher {name}: an already fine-tuned checkpoint, used as is")
            ready[name] = (_logits_of_checkpoint(Path(location), data, settings), False)
        else:
            entries.append(_entry(name, location, data, settings, train_rows, cache))
    with contextlib.ExitStack() as locks:
        missing = []
        for entry in in_lock_order(entries):
            logits = _cached_logits(entry, progress)
            if logits is None:
                locks.enter_context(_cache_lock(entry, progress))
                logits = _cached_logits(entry, progress)  # another process may have just written it
            if logits is None:
                missing.append(entry)
            else:
                ready[entry.name] = (logits, True)
        missing.sort(key=entries.index)  # fine-tuned in the order given
        ready.update(_fine_tune_missing(missing, data, settings, train_rows, cache, progress, runner))
    if entries:
        progress(f"teachers fine-tuned or read in {time.perf_counter() - started:.1f} s")
    return _assemble([name for name, _ in teachers], ready, data, train_rows, progress)


def _fine_tune_missing(missing: list[_Entry], data, settings, train_rows, cache, progress, runner) -> dict:
    jobs = []
    for entry in missing:
        progress(f"teacher {entry.name}: fine-tuning on {len(train_rows)} examples for {settings.epochs} epoch(s)")
        encoded = encode_task(entry.blueprint.tokenizer, data, settings.max_length, Path(cache) / "tokens")
        jobs.append(TeacherJob(entry.name, entry.blueprint, encoded, settings, np.asarray(train_rows)))
    ready = {}
    for entry, (model, logits) in zip(missing, runner(jobs, progress) if jobs else [], strict=True):
        shutil.rmtree(entry.folder, ignore_errors=True)  # no marker (killed mid-write): never trusted
        _write_atomically(entry.folder, model, entry.blueprint, logits)
        ready[entry.name] = (logits, True)
    return ready


def _assemble(names: list[str], ready: dict, data: TaskData, train_rows, progress) -> TeacherOutputs:
    stacked = {split: np.stack([ready[name][0][split] for name in names]).astype(np.float32) for split in SPLITS}
    _check_classes(stacked, data.num_labels, names)
    labels_seen = len(train_rows) if any(ready[name][1] for name in names) else 0
    accuracy = accuracy_table(tuple(names), stacked, data)
    outputs = TeacherOutputs(tuple(names), stacked, labels_seen, accuracy, train_rows=np.asarray(train_rows))
    for key, value in outputs.accuracy.items():
        progress(f"  teacher accuracy {key}: {value:.3f}")
    return outputs


def check_teacher_checkpoint(name: str, location: str, num_labels: int) -> None:
    """A teacher given as a fine-tuned checkpoint must predict exactly the data's classes."""
    folder = Path(location)
    if not (folder / RUN_CONFIG).is_file():
        return  # a pretrained model: it gets a new head with the data's number of classes
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    classes = len(config.get("id2label") or {}) or config.get("num_labels")
    if classes != num_labels:
        raise UsageError(f"teacher '{name}' is a fine-tuned checkpoint with {classes} classes "
                         f"but the data has {num_labels}")


def accuracy_table(names: tuple[str, ...], logits: dict, data: TaskData) -> dict[str, float]:
    """Each teacher's and the ensemble's (mean of softmax probabilities) accuracy, val and test."""
    table = {}
    for split, short in (("validation", "val"), ("test", "test")):
        gold = getattr(data, split).labels
        for name, teacher_logits in zip(names, logits[split], strict=True):
            table[f"{name}/{short}"] = classification_metrics(teacher_logits, gold, data.num_labels)["accuracy"]
        ensemble = TeacherOutputs(names, {split: logits[split]}, 0).ensemble_probs(split)
        table[f"ensemble/{short}"] = float((ensemble.argmax(1) == gold).mean())
    return table


def _check_classes(stacked: dict, num_labels: int, names: list[str]) -> None:
    classes = stacked["train"].shape[-1]
    if classes != num_labels:
        raise UsageError(f"teachers {', '.join(names)} give {classes} classes but the data has {num_labels}")


def _entry(name, location, data, settings, train_rows, cache) -> _Entry:
    blueprint = make_blueprint(name, location, data.task, data.num_labels)
    teachers = Path(cache) / "teachers"
    other = replace(settings, bf16=not settings.bf16)
    return _Entry(name, blueprint, teachers / _cache_key(blueprint, data, settings, train_rows),
                  teachers / _cache_key(blueprint, data, other, train_rows), precision.name(other.bf16))


def _cached_logits(entry: _Entry, progress) -> dict | None:
    """The logits of a complete cache entry in either precision (precision decides speed, not the
    task); a damaged entry is removed and None returned, so it is rebuilt."""
    for folder, how in ((entry.folder, ""), (entry.other, f" (fine-tuned in {entry.other_precision})")):
        if (folder / COMPLETE).is_file():
            try:
                logits = _read_logits(folder)
                progress(f"teacher {entry.name}: cache hit ({folder.name}){how}")
                return logits
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # np.load's ways to fail
                progress(f"teacher {entry.name}: cache entry damaged, rebuilding")
                shutil.rmtree(folder, ignore_errors=True)
    return None


def lock_name(entry: _Entry) -> str:
    """The lock file's name: one for both precisions of a teacher (see _cache_lock)."""
    return f"{min(entry.folder.name, entry.other.name)}.lock"


def in_lock_order(entries: list[_Entry]) -> list[_Entry]:
    """Entries in the order their locks are taken: by the lock's own name, the same in every process.
    Sorting by the entry's folder instead deadlocked two processes whose precision differed: each sorted
    by its own precision's keys, so they could take the two teachers' locks in opposite orders."""
    return sorted(entries, key=lock_name)


@contextlib.contextmanager
def _cache_lock(entry: _Entry, progress):
    """An exclusive lock beside the entry, held while it is built. flock is released when the file
    closes, also when the process dies: a killed sweep never blocks the next one. One lock for both
    precisions of a teacher: two processes whose `auto` precision came out differently (a measurement on
    a busy machine) must not both fine-tune it; the one that waits then reads the other's entry."""
    entry.folder.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.folder.parent / lock_name(entry), "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"teacher {entry.name}: another process is preparing it; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _cache_key(blueprint, data, settings, train_rows) -> str:
    digest = hashlib.sha256()
    for part in (blueprint.weights, _portable_config(blueprint.config),
                 tokenizer_fingerprint(blueprint.tokenizer).encode(), data.fingerprint().encode(),
                 json.dumps(settings.__dict__, sort_keys=True).encode(), np.asarray(train_rows).tobytes()):
        digest.update(hashlib.sha256(part).digest())
    return f"{blueprint.name.replace('/', '_')}-{digest.hexdigest()[:24]}"


def _portable_config(config: dict) -> bytes:
    """The model config without where it was loaded from: moving a cache or model folder must not
    invalidate fine-tuned teachers."""
    kept = {key: value for key, value in config.items() if key != "_name_or_path"}
    return json.dumps(kept, sort_keys=True, default=str).encode()


def flushed_print(*args) -> None:
    """A Ray worker's stdout is a pipe: without a flush its lines reach the driver late, in bursts. Here, not
    in tuning/: a teacher's Ray task receives it by reference, and cluster nodes get only trainables/."""
    print(*args, flush=True)


def fine_tune_and_predict(job: TeacherJob, progress: Callable = print, bar: Callable = tqdm) -> tuple[object, dict]:
    """Fine-tune one teacher and compute its logits on every split: (model, {split: logits}).
    Pure work on what the job carries, so it runs in any process. `bar(desc=, total=, unit=)` makes a
    progress bar (tqdm here; ray.experimental.tqdm_ray in a Ray task, which the driver draws)."""
    settings = job.settings
    model = build_model(job.blueprint, settings.seed)
    train_split, rows = job.encoded["train"], np.asarray(job.train_rows)
    training = TrainingSet(train_split, rows, train_split.labels[rows], np.ones(len(rows), bool))
    loop = LoopSettings(learning_rate=settings.learning_rate, batch_size=settings.batch_size,
                        epochs=settings.epochs, seed=settings.seed, num_threads=settings.num_threads,
                        bf16=settings.bf16)
    steps = settings.epochs * epoch_steps(len(rows), settings.batch_size)
    logit_examples = sum(len(job.encoded[split]) for split in SPLITS)
    meter = StepMeter(job.name, steps, settings.batch_size, logit_examples, progress,
                      bar(desc=f"{job.name} fine-tuning", total=steps, unit="step"))

    def loss(logits, batch):
        meter.step()  # the loop calls the loss once per step: the per-step hook it offers
        return cross_entropy_loss(logits, None, batch["labels"], 1.0, 0.0)

    def on_epoch(epoch, stats):
        progress(f"teacher {job.name} epoch {epoch}/{settings.epochs}: train loss {stats['train_loss']:.3f} "
                 f"({stats['epoch_seconds']:.0f} s)")

    try:
        train(model, training, loss, loop, on_epoch)
    finally:
        meter.close()
    return model, logits_with_bar(model, job.encoded, settings.bf16,
                                  bar(desc=f"{job.name} logits", total=logit_examples, unit="ex"))


# How many steps the estimate waits for. The first step is not timed (it selects and loads kernels).
ESTIMATE_STEPS = 3
# Inference costs a third of training per token (2 against 6 FLOPs per parameter and token).
INFERENCE_COST = 1 / 3
# Rows per call to predict_logits: the bar moves every chunk; rows are sorted by length first, so the
# chunks cost no extra padding.
LOGIT_CHUNK = 512


class StepMeter:
    """Moves a progress bar one step at a time and, after the first few timed steps, says how long the
    whole fine-tuning and the logits will take (one line, before most of the work starts)."""

    def __init__(self, name: str, steps: int, batch_size: int, logit_examples: int, progress, progress_bar):
        self.name, self.steps, self.batch_size, self.logit_examples = name, steps, batch_size, logit_examples
        self.progress, self.bar = progress, progress_bar
        self.done, self.first_step_at = 0, None

    def step(self) -> None:
        now = time.perf_counter()
        self.done += 1
        self.bar.update(1)
        if self.done == 1:
            self.first_step_at = now
        elif self.done == 1 + ESTIMATE_STEPS:
            seconds_per_step = (now - self.first_step_at) / ESTIMATE_STEPS
            self.progress(estimate_text(self.name, self.steps, seconds_per_step, self.batch_size,
                                        self.logit_examples))

    def close(self) -> None:
        self.bar.close()


def estimate_text(name: str, steps: int, seconds_per_step: float, batch_size: int, logit_examples: int) -> str:
    """The line that says how long a teacher takes, from the time of one training step."""
    logits_seconds = logit_examples * seconds_per_step / batch_size * INFERENCE_COST
    return (f"teacher {name}: about {format_duration(steps * seconds_per_step)} to fine-tune ({steps} steps "
            f"at {seconds_per_step:.2f} s) and {format_duration(logits_seconds)} for the logits of "
            f"{logit_examples} examples (estimated from steps 2-{1 + ESTIMATE_STEPS})")


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def logits_with_bar(model, encoded: dict, bf16: bool, progress_bar) -> dict:
    """predict_logits on every split, in chunks of length-sorted rows so that the bar moves."""
    out = {}
    try:
        for split in SPLITS:
            order = np.argsort(encoded[split].lengths(), kind="stable")
            pieces = []
            for start in range(0, len(order), LOGIT_CHUNK):
                pieces.append(predict_logits(model, encoded[split], order[start : start + LOGIT_CHUNK], bf16=bf16))
                progress_bar.update(len(pieces[-1]))
            logits = np.concatenate(pieces) if pieces else np.empty((0, 0), np.float32)
            out[split] = np.empty_like(logits)
            out[split][order] = logits
    finally:
        progress_bar.close()
    return out


def _logits_of_checkpoint(folder: Path, data: TaskData, settings: TeacherSettings) -> dict:
    model = load_finetuned(folder, data.task)
    torch.set_num_threads(settings.num_threads)
    encoded = encode_task(AutoTokenizer.from_pretrained(folder), data, settings.max_length, None)
    return {split: predict_logits(model, encoded[split], bf16=settings.bf16) for split in SPLITS}


def _write_atomically(folder: Path, model, blueprint, outputs: dict) -> None:
    with staging_folder(folder) as staging:
        model.save_pretrained(staging)
        blueprint.tokenizer.save_pretrained(staging)
        with open(staging / "logits.npz", "wb") as stream:
            np.savez(stream, **outputs)
        (staging / COMPLETE).write_text("ok\n")  # written last: its presence means the entry is whole
        # Another process preparing the same teacher may have published it first: theirs is as good.
        publish_folder(staging, folder, finished=lambda entry: (entry / COMPLETE).is_file())


def _read_logits(folder: Path) -> dict:
    with np.load(folder / "logits.npz", allow_pickle=False) as stored:
        return {split: stored[split] for split in SPLITS}
