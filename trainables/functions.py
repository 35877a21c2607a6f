"""The thin Ray Tune trainable: the only module under trainables/ that imports ray.

Every method runs through `student_trial`; the trial's config names the method. Each report carries
a checkpoint (safetensors weights, tokenizer, run_config.json, trial state), and a trial restored
from a checkpoint continues where it stopped."""

from __future__ import annotations

import ctypes
import gc
import os
import tempfile

import ray
from ray import tune

from trainables.checkpoint import load_weights, read_trial_state, save_checkpoint
from trainables.config import TrialConfig
from trainables.expert_loop import run_active_loop
from trainables.methods import run_supervised_or_kd
from trainables.models import build_model
from trainables.prepared import Prepared
from trainables.study_arms import StudySettings, run_study_arm

# Set in every trial process: the driver's cache (tuning/assets.cache_dir) refuses to open when it is set,
# because data and teacher outputs must reach a trial through Ray's object store, never a local disk.
IN_TRIAL_ENV = "EXPERT_LOOP_IN_TRIAL"
NODE_ID = "node_id"  # the Ray node a report came from: shows where a sweep's trials ran
PRECISION = "precision"  # "bf16" or "fp32": what the trial's node decided (trainables/precision.py)


def precision_name(bf16: bool) -> str:
    return "bf16" if bf16 else "fp32"


def run_method(trial: TrialConfig, prepared: Prepared, report, resume=None, model=None) -> None:
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


def student_trial(config: dict, prepared: Prepared) -> None:
    release_memory_of_earlier_trials()
    os.environ[IN_TRIAL_ENV] = "1"
    trial = TrialConfig.from_dict(config)
    node_id = ray.get_runtime_context().get_node_id()

    def report(metrics: dict, model, state: dict) -> None:
        metrics = {**metrics, NODE_ID: node_id, PRECISION: precision_name(trial.bf16)}
        with tempfile.TemporaryDirectory(prefix="checkpoint-") as folder:
            save_checkpoint(folder, model, prepared, trial, metrics, state, resumable=True)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    resume, model = None, None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = read_trial_state(folder)
            model = _restored_model(prepared, trial, folder)
    run_method(trial, prepared, report, resume=resume, model=model)


STUDY_STATE = "study_state.json"


def study_trial(config: dict, prepared: Prepared) -> None:
    """One (arm, seed) of the budget study: one report per budget. Its checkpoint is small: the loop's
    state, plus the student's weights only where the next point needs them (to query, or a warm start)."""
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from safetensors.torch import save_file  # noqa: PLC0415

    release_memory_of_earlier_trials()
    os.environ[IN_TRIAL_ENV] = "1"
    study = StudySettings.from_dict(config)
    node_id = ray.get_runtime_context().get_node_id()

    def report(metrics: dict, model, state: dict) -> None:
        with tempfile.TemporaryDirectory(prefix="checkpoint-") as folder:
            (Path(folder) / STUDY_STATE).write_text(json.dumps(state), encoding="utf-8")
            if model is not None:
                save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                          f"{folder}/model.safetensors")
            tune.report({**metrics, NODE_ID: node_id, PRECISION: precision_name(study.recipe.bf16)},
                        checkpoint=tune.Checkpoint.from_directory(folder))

    resume, model = None, None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = json.loads((Path(folder) / STUDY_STATE).read_text(encoding="utf-8"))
            if (Path(folder) / "model.safetensors").is_file():
                model = _restored_model(prepared, study.recipe, folder)
    run_study_arm(study, prepared, report, resume=resume, model=model)


def _restored_model(prepared: Prepared, trial: TrialConfig, folder: str):
    model = build_model(prepared.student, trial.seed)
    load_weights(model, folder)  # strict: a key mismatch is an error, never a random head
    return model
