"""The thin Ray Tune trainable: the only module under trainables/ that imports ray.

One wrapper, `run_trial`, for the sweep's trials (`student_trial`: every method, the config names it; a
checkpoint with safetensors weights, tokenizer, run_config.json and trial state) and the budget study's
(`study_trial`: one arm and seed, a report per budget, a small checkpoint). Each report carries a
checkpoint, and a trial restored from a checkpoint continues where it stopped."""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from safetensors.torch import save_file

from trainables import precision
from trainables.checkpoint import load_weights, read_trial_state, save_checkpoint
from trainables.config import TrialConfig
from trainables.expert_loop import run_active_loop
from trainables.methods import run_supervised_or_kd
from trainables.metrics import PRECISION
from trainables.models import build_model
from trainables.prepared import Prepared
from trainables.study_arms import StudySettings, run_study_arm

# Set in every trial process: the driver's cache (tuning/assets.cache_dir) refuses to open when it is set,
# because data and teacher outputs must reach a trial through Ray's object store, never a local disk.
IN_TRIAL_ENV = "EXPERT_LOOP_IN_TRIAL"
NODE_ID = "node_id"  # the Ray node a report came from: shows where a sweep's trials ran


def run_method(trial: TrialConfig, prepared: Prepared, report, resume=None, model=None) -> None:
    trial = trial.decided()
    runner = run_active_loop if trial.method == "active_loop" else run_supervised_or_kd
    runner(trial, prepared, report, resume=resume, model=model)


def release_memory_of_earlier_trials() -> None:
    """Trials reuse their worker process (Tune's reuse_actors): collect what the previous trial left in
    reference cycles and give freed heap pages back to the operating system, so a worker does not keep
    the high-water mark of every trial it ran. Measured on the default data (3 supervised + 3 kd_all study
    trials, 2 workers): peak worker memory 2.50-2.58 GB without this, 1.77-1.95 GB with it, 1.3-1.9 GB with a
    fresh process per trial; a --quick study's two workers had grown to 4.1 and 5.4 GB without it."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the collection alone


@dataclass(frozen=True)
class TrialKind:
    """What differs between the sweep's trials and the study's: how a Tune config becomes the trial's
    settings, how a checkpoint is written and read back, and what trains. `run_trial` does the rest, once."""

    settings: Callable[[dict], Any]  # Tune's config -> the trial's frozen settings
    recipe: Callable[[Any], TrialConfig]  # the settings -> the TrialConfig that builds and trains the student
    save: Callable[[Path, Any, Prepared, Any, dict, dict], None]  # (folder, model, prepared, settings, metrics, state)
    restore: Callable[[Path, Prepared, Any], tuple[dict | None, Any]]  # folder -> (resume state, model or None)
    run: Callable[..., None]  # (settings, prepared, report, resume=, model=)


def run_trial(kind: TrialKind, config: dict, prepared: Prepared) -> None:
    """The one Ray Tune trainable: each report carries a checkpoint (and where the trial ran, in which
    precision), and a trial restored from a checkpoint continues where it stopped."""
    release_memory_of_earlier_trials()
    os.environ[IN_TRIAL_ENV] = "1"
    settings = kind.settings(config)
    node_id = ray.get_runtime_context().get_node_id()
    trained_in = precision.name(kind.recipe(settings).bf16)

    def report(metrics: dict, model, state: dict) -> None:
        metrics = {**metrics, NODE_ID: node_id, PRECISION: trained_in}
        with tempfile.TemporaryDirectory(prefix="checkpoint-") as folder:
            kind.save(Path(folder), model, prepared, settings, metrics, state)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    resume, model = None, None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume, model = kind.restore(Path(folder), prepared, settings)
    kind.run(settings, prepared, report, resume=resume, model=model)


# ---------------------------------------------------------------- a sweep's trial: one method, one config

def _save_student(folder: Path, model, prepared: Prepared, trial: TrialConfig, metrics: dict, state: dict) -> None:
    save_checkpoint(folder, model, prepared, trial, metrics, state, resumable=True)


def _restore_student(folder: Path, prepared: Prepared, trial: TrialConfig) -> tuple[dict | None, Any]:
    return read_trial_state(folder), _restored_model(prepared, trial, folder)


def _run_student(trial: TrialConfig, prepared: Prepared, report, resume=None, model=None) -> None:
    run_method(trial, prepared, report, resume=resume, model=model)  # looked up here: tests wrap run_method


def _student_settings(config: dict) -> TrialConfig:
    return TrialConfig.from_dict(config).decided()  # "auto" precision decided where the trial runs


STUDENT = TrialKind(settings=_student_settings, recipe=lambda trial: trial, save=_save_student,
                    restore=_restore_student, run=_run_student)


def student_trial(config: dict, prepared: Prepared) -> None:
    """A sweep's trial: every method runs through it; the config names the method."""
    run_trial(STUDENT, config, prepared)


# ---------------------------------------------------------------- a study's trial: one (arm, seed)

STUDY_STATE = "study_state.json"


def _study_settings(config: dict) -> StudySettings:
    """The study's Tune config is {"template": the settings every trial shares, "point": its arm and seed}."""
    point = config["point"]
    study = StudySettings.from_dict({**config["template"], "arm": point["arm"], "seed": point["seed"]})
    return dataclasses.replace(study, recipe=study.recipe.decided())  # precision decided where the trial runs


def _save_study(folder: Path, model, prepared: Prepared, study: StudySettings, metrics: dict, state: dict) -> None:
    """Small: the loop's state, plus the student's weights only where the next point needs them (to
    query, or a warm start)."""
    (folder / STUDY_STATE).write_text(json.dumps(state), encoding="utf-8")
    if model is not None:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{folder}/model.safetensors")


def _restore_study(folder: Path, prepared: Prepared, study: StudySettings) -> tuple[dict | None, Any]:
    resume = json.loads((folder / STUDY_STATE).read_text(encoding="utf-8"))
    model = _restored_model(prepared, study.recipe, folder) if (folder / "model.safetensors").is_file() else None
    return resume, model


STUDY = TrialKind(settings=_study_settings, recipe=lambda study: study.recipe, save=_save_study,
                  restore=_restore_study, run=run_study_arm)


def study_trial(config: dict, prepared: Prepared) -> None:
    """One (arm, seed) of the budget study: one report per budget."""
    run_trial(STUDY, config, prepared)


def _restored_model(prepared: Prepared, trial: TrialConfig, folder: str):
    model = build_model(prepared.student, trial.seed)
    load_weights(model, folder)  # strict: a key mismatch is an error, never a random head
    return model
