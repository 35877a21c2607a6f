"""Sections 4 and 5: a fixed small supervised sweep through the project's own Tune wiring
(tuning.sweep.search, tuning.trials: trainable, searcher, scheduler, run config), run as two concurrent 1-CPU
trials and as one 2-CPU trial at a time, in turns; memory of the trial processes and of the whole tree.

Ray's overhead per trial is Tune's `time_total_s` (the trial's time inside its worker) minus the
trial's own `train_seconds` (training and evaluation): building the student from the blueprint,
fetching the prepared data from the object store, checkpoints and reporting. Starting the worker
process itself happens before `time_total_s` starts; the slot overhead (wall time x concurrent slots
minus the trials' train_seconds, per trial) includes it and is reported beside."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import uuid

import numpy as np
import ray
from ray import tune

from benchmarks import common
from benchmarks.memory import TreeMemory
from benchmarks.timing import interleave, median, ratio, timed
from trainables import metrics as m
from trainables.functions import student_trial
from tuning.assets.prepare import DataSettings, load_data, prepare
from tuning.sweep.search import SweepSettings, make_scheduler, make_searcher, run_config
from tuning.sweep.spaces import build_space, to_tune
from tuning.trials.ray_session import start_ray
from tuning.trials.tuner import trainable

TRIAL_MARKER = "ImplicitFunc"  # Ray names a function trainable's actor process ray::ImplicitFunc
CONFIGS = {"concurrent_1cpu": (1, 2), "single_2cpu": (2, 1)}  # name -> (cpus per trial, trials at once)


def _prepared(train_examples: int, eval_examples: int):
    settings = DataSettings(validation_size=eval_examples, test_size=eval_examples,
                            max_train_examples=train_examples)
    data = load_data(settings, progress=common.quiet)
    return prepare(settings, need_teachers=False, data=data, progress=common.quiet)


def _tuner(prepared, cpus: int, concurrent: int, trials: int, storage: str):
    sweep = SweepSettings(method="supervised", name=f"bench-{cpus}cpu-{uuid.uuid4().hex[:8]}", storage_path=storage,
                          num_samples=trials, max_concurrent=concurrent, cpus_per_trial=cpus, seed=0, scheduler="none")
    # One epoch at batch 16 for every trial, so all trials cost the same; Optuna still proposes the
    # learning rate. Only one searched setting: OptunaSearch refuses a starting point (the original
    # research's settings, tuning.sweep.spaces.starting_points) that names fewer settings than the space searches.
    fixed = {"batch_size": common.BATCH_SIZE, "epochs": 1, "weight_decay": 0.01, "warmup_ratio": 0.1}
    space = build_space("supervised", smoke=False, fixed=fixed)
    return tune.Tuner(
        trainable(student_trial, dataclasses.replace(prepared, num_threads=cpus), cpus),
        param_space=to_tune(space),
        tune_config=tune.TuneConfig(search_alg=make_searcher(sweep, space, None),
                                    scheduler=make_scheduler(sweep, space), num_samples=trials),
        run_config=run_config(sweep, callbacks=[]),
    )


def _one_sweep(prepared, name: str, trials: int, storage: str, records: dict) -> float:
    cpus, concurrent = CONFIGS[name]
    tuner = _tuner(prepared, cpus, concurrent, trials, storage)
    with TreeMemory() as memory:
        grid, wall = timed(tuner.fit)
    if grid.num_errors:
        raise RuntimeError(f"{grid.num_errors} benchmark trial(s) failed: {grid.errors[0]}")
    results = [result.metrics for result in grid]
    records[name].append({
        "wall_seconds": wall,
        "time_total_s": [r["time_total_s"] for r in results],
        "train_seconds": [r[m.TRAIN_SECONDS] for r in results],
        "trial_peak_rss_mb": memory.peaks_mb(TRIAL_MARKER),
        "tree_peak_rss_mb": memory.peak_tree_kb / 1024,
    })
    return wall


def measure(train_examples: int, eval_examples: int, trials: int, repeat: int) -> tuple[dict, dict]:
    prepared = _prepared(train_examples, eval_examples)
    storage = tempfile.mkdtemp(prefix="bench-sweeps-")
    records = {name: [] for name in CONFIGS}
    try:
        _, init_seconds = timed(start_ray, None, False, num_cpus=common.THREADS)
        runs = {name: (lambda _round, name=name: _one_sweep(prepared, name, trials, storage, records))
                for name in CONFIGS}
        interleave(runs, repeat)
    finally:
        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    raw = {"runs": records, "ray_init_seconds": init_seconds, "trials_per_sweep": trials,
           "train_examples": len(prepared.encoded["train"]), "eval_examples": eval_examples,
           "configs": {name: {"cpus_per_trial": c, "max_concurrent": k} for name, (c, k) in CONFIGS.items()}}
    return _figures(records, trials), raw


def _figures(records: dict, trials: int) -> dict:
    throughput = {name: median([trials / run["wall_seconds"] * 3600 for run in runs]) for name, runs in records.items()}
    overhead = [total - train for runs in records.values() for run in runs
                for total, train in zip(run["time_total_s"], run["train_seconds"], strict=True)]
    slot = {name: median([(run["wall_seconds"] * CONFIGS[name][1] - sum(run["train_seconds"])) / trials
                          for run in runs]) for name, runs in records.items()}
    trial_peaks = [peak for runs in records.values() for run in runs for peak in run["trial_peak_rss_mb"]]
    return {
        "concurrency_throughput_ratio": ratio(throughput["concurrent_1cpu"], throughput["single_2cpu"]),
        "ray_overhead_seconds_per_trial": median(overhead),
        "peak_rss_mb_per_trial": max(trial_peaks) if trial_peaks else None,
        "peak_rss_mb_sweep": max(run["tree_peak_rss_mb"] for runs in records.values() for run in runs),
        "trials_per_hour_concurrent_1cpu": throughput["concurrent_1cpu"],
        "trials_per_hour_single_2cpu": throughput["single_2cpu"],
        "slot_overhead_seconds_per_trial_concurrent_1cpu": slot["concurrent_1cpu"],
        "slot_overhead_seconds_per_trial_single_2cpu": slot["single_2cpu"],
        "train_seconds_per_trial_concurrent_1cpu": median(_all(records["concurrent_1cpu"], "train_seconds")),
        "train_seconds_per_trial_single_2cpu": median(_all(records["single_2cpu"], "train_seconds")),
    }


def _all(runs: list[dict], key: str) -> list[float]:
    return list(np.concatenate([run[key] for run in runs])) if runs else []
