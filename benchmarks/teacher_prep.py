"""Section 5: a cold preparation of the default teacher ensemble (fine-tuning and logits, the work a
cold cache costs), against its arithmetic and against this machine's matrix-product peak; and the two
teachers as Ray tasks side by side (1 CPU each, what a sweep does) against one after the other in this
process (every core, what the driver did before).

FLOPs: benchmarks/flops.teacher_prep_flops on the real token counts (6 x parameters x tokens per epoch
for fine-tuning, 2 x parameters x tokens for the logits, attention added; padding not counted, so it
shows as waste). Peak: the same-dtype 2048 x 2048 matmul of section 1 with the whole machine's threads.
    teacher_prep_peak_fraction = FLOPs / (seconds x peak)"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks import common
from benchmarks.flops import matmul_flops, teacher_prep_flops
from benchmarks.step_peak import MATMUL_N, _matmul_runner
from benchmarks.timing import interleave, median, ratio
from trainables import precision
from trainables.encode import SPLITS
from trainables.models import build_model
from trainables.teachers import TeacherJob, TeacherSettings, run_in_process
from tuning.assets.teacher_tasks import ray_runner

EPOCHS = 1  # the default is 2; one epoch measures the same rate in half the time


def _jobs(train: int, evaluate: int, bf16: bool) -> list[TeacherJob]:
    data = common.load(train=train, validation=evaluate, test=evaluate)
    settings = TeacherSettings(epochs=EPOCHS, learning_rate=common.LEARNING_RATE, batch_size=common.BATCH_SIZE,
                               max_length=common.MAX_LENGTH, seed=0, num_threads=common.THREADS, bf16=bf16)
    jobs = []
    for name in common.TEACHERS:
        blueprint = common.blueprint(name, data)
        jobs.append(TeacherJob(name, blueprint, common.encode(blueprint, data), settings,
                               np.arange(len(data.train))))
    return jobs


def _flops(jobs: list[TeacherJob]) -> int:
    total = 0
    for job in jobs:
        logit_lengths = np.concatenate([job.encoded[split].lengths() for split in SPLITS])
        total += teacher_prep_flops(build_model(job.blueprint, 0), job.encoded["train"].lengths()[job.train_rows],
                                    job.settings.epochs, logit_lengths)
    return total


def _padded_share(jobs: list[TeacherJob]) -> float:
    """Tokens the logits pass pads, as a share of real ones (rows sorted by length, batches of 64)."""
    real = padded = 0
    for job in jobs:
        for split in SPLITS:
            lengths = np.sort(job.encoded[split].lengths())
            for start in range(0, len(lengths), 64):
                chunk = lengths[start : start + 64]
                real, padded = real + int(chunk.sum()), padded + int(chunk.max()) * len(chunk)
    return padded / real - 1 if real else 0.0


def measure(train: int, evaluate: int, repeat: int) -> tuple[dict, dict]:
    import ray  # noqa: PLC0415 (Ray starts only for this section's Ray-task half)

    torch.set_num_threads(common.THREADS)
    bf16 = precision.resolve(precision.AUTO)  # the teachers' default
    jobs = _jobs(train, evaluate, bf16)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address="local", num_cpus=common.THREADS, include_dashboard=False, logging_level="error",
                 log_to_driver=False)
    try:
        on_ray = ray_runner(cpus=1, start_ray=lambda: None)

        def timed_run(runner):
            def run(_round: int) -> float:
                started = time.perf_counter()
                runner(jobs, lambda *a: None)
                return time.perf_counter() - started
            return run

        dtype = torch.bfloat16 if bf16 else torch.float32
        seconds = interleave({"ray_tasks": timed_run(on_ray), "in_process": timed_run(run_in_process),
                              "matmul": _matmul_runner(dtype)}, repeat)
    finally:
        if started_here:
            ray.shutdown()
        torch.set_num_threads(common.THREADS)
    flops = _flops(jobs)
    raw = {"seconds": seconds, "flops": flops, "precision": precision.name(bf16), "epochs": EPOCHS,
           "train_examples": len(jobs[0].train_rows), "logit_examples": sum(len(jobs[0].encoded[s]) for s in SPLITS),
           "teachers": list(common.TEACHERS), "logits_padding_share": _padded_share(jobs)}
    return figures(seconds, flops), raw


def figures(seconds: dict, flops: int) -> dict:
    med = {name: median(values) for name, values in seconds.items()}
    peak = matmul_flops(MATMUL_N) / med["matmul"]
    return {
        "teacher_prep_seconds": med["ray_tasks"],
        "teacher_prep_peak_fraction": ratio(flops, med["ray_tasks"] * peak),
        "teacher_prep_peak_fraction_in_process": ratio(flops, med["in_process"] * peak),
        "teacher_parallel_speedup": ratio(med["in_process"], med["ray_tasks"]),
        "teacher_prep_gflops": ratio(flops / 1e9, med["ray_tasks"]),
    }
