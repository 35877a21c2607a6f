"""The teacher ensemble, prepared once per (teacher, data, split, settings) and cached on disk:
each teacher is fine-tuned with its own tokenizer on the labelled training split, then its logits
on every split are stored. A second sweep on the same data runs no teacher at all."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from trainables.checkpoint import RUN_CONFIG
from trainables.data import TaskData
from trainables.encode import SPLITS, encode_task, tokenizer_fingerprint
from trainables.errors import UsageError
from trainables.loop import LoopSettings, TrainingSet, predict_logits, train
from trainables.losses import cross_entropy_loss
from trainables.metrics import classification_metrics
from trainables.models import build_model, load_finetuned, make_blueprint
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


def prepare_teachers(teachers: list[tuple[str, str]], data: TaskData, settings: TeacherSettings,
                     train_rows: np.ndarray, cache: Path, progress: Callable = print) -> TeacherOutputs:
    """teachers: (name, location) pairs. train_rows: which training examples the teachers learn from."""
    for name, location in teachers:  # all checks before any teacher is fine-tuned
        check_teacher_checkpoint(name, location, data.num_labels)
    logits, labels_seen = {split: [] for split in SPLITS}, 0
    for name, location in teachers:
        started = time.perf_counter()
        outputs, fine_tuned_here = _one_teacher(name, location, data, settings, train_rows, cache, progress)
        progress(f"teacher {name}: ready in {time.perf_counter() - started:.1f} s")
        for split in SPLITS:
            logits[split].append(outputs[split])
        labels_seen = max(labels_seen, len(train_rows) if fine_tuned_here else 0)
    stacked = {split: np.stack(values).astype(np.float32) for split, values in logits.items()}
    _check_classes(stacked, data.num_labels, [name for name, _ in teachers])
    names = tuple(name for name, _ in teachers)
    accuracy = accuracy_table(names, stacked, data)
    outputs = TeacherOutputs(names, stacked, labels_seen, accuracy, train_rows=np.asarray(train_rows))
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


def _one_teacher(name, location, data, settings, train_rows, cache, progress):
    if (Path(location) / RUN_CONFIG).is_file():
        progress(f"teacher {name}: an already fine-tuned checkpoint, used as is")
        return _logits_of_checkpoint(Path(location), data, settings), False
    blueprint = make_blueprint(name, location, data.task, data.num_labels)
    folder = Path(cache) / "teachers" / _cache_key(blueprint, data, settings, train_rows)
    # The same teacher fine-tuned in the other precision stays valid: precision decides speed, not the task.
    other = Path(cache) / "teachers" / _cache_key(blueprint, data, replace(settings, bf16=not settings.bf16),
                                                  train_rows)
    for entry, how in ((folder, ""), (other, f" (fine-tuned in {'fp32' if settings.bf16 else 'bf16'})")):
        if (entry / COMPLETE).is_file():
            try:
                progress(f"teacher {name}: cache hit ({entry.name}){how}")
                return _read_logits(entry), True
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # np.load's ways to fail
                progress(f"teacher {name}: cache entry damaged, rebuilding")
                shutil.rmtree(entry, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)  # no marker (killed mid-write): never trusted
    progress(f"teacher {name}: fine-tuning on {len(train_rows)} examples for {settings.epochs} epoch(s)")
    model, outputs = _fine_tune_and_predict(blueprint, data, settings, train_rows, cache, progress)
    _write_atomically(folder, model, blueprint, outputs)
    return outputs, True


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


def _fine_tune_and_predict(blueprint, data, settings, train_rows, cache, progress):
    encoded = encode_task(blueprint.tokenizer, data, settings.max_length, Path(cache) / "tokens")
    model = build_model(blueprint, settings.seed)
    train_split = encoded["train"]
    rows = np.asarray(train_rows)
    training = TrainingSet(train_split, rows, train_split.labels[rows], np.ones(len(rows), bool))
    loop = LoopSettings(learning_rate=settings.learning_rate, batch_size=settings.batch_size,
                        epochs=settings.epochs, seed=settings.seed, num_threads=settings.num_threads,
                        bf16=settings.bf16)

    def on_epoch(epoch, stats):
        progress(f"  epoch {epoch}/{settings.epochs}: train loss {stats['train_loss']:.3f} "
                 f"({stats['epoch_seconds']:.0f} s)")

    train(model, training, lambda logits, batch: cross_entropy_loss(logits, None, batch["labels"], 1.0, 0.0),
          loop, on_epoch)
    outputs = {split: predict_logits(model, encoded[split], bf16=settings.bf16) for split in SPLITS}
    return model, outputs


def _logits_of_checkpoint(folder: Path, data: TaskData, settings: TeacherSettings) -> dict:
    from transformers import AutoTokenizer  # noqa: PLC0415

    model = load_finetuned(folder, data.task)
    torch.set_num_threads(settings.num_threads)
    encoded = encode_task(AutoTokenizer.from_pretrained(folder), data, settings.max_length, None)
    return {split: predict_logits(model, encoded[split], bf16=settings.bf16) for split in SPLITS}


def _write_atomically(folder: Path, model, blueprint, outputs: dict) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".staging-"))
    try:
        model.save_pretrained(staging)
        blueprint.tokenizer.save_pretrained(staging)
        with open(staging / "logits.npz", "wb") as stream:
            np.savez(stream, **outputs)
        (staging / COMPLETE).write_text("ok\n")  # written last: its presence means the entry is whole
        os.replace(staging, folder)
    except OSError:
        if not (folder / COMPLETE).is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read_logits(folder: Path) -> dict:
    with np.load(folder / "logits.npz", allow_pickle=False) as stored:
        return {split: stored[split] for split in SPLITS}
