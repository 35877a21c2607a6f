"""Section 1: one training step of the student against this CPU's matrix-product peak, in float32
and under bfloat16 autocast, measured in turns in the same process with the same threads.

Also the before/after of loop.py's optimizer change: the same step with AdamW's foreach
implementation (the loop's optimizer before) against the fused one (the loop's optimizer now)."""

from __future__ import annotations

import time

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from benchmarks import common
from benchmarks.flops import matmul_flops, model_step_flops
from benchmarks.timing import interleave, median, ratio
from trainables.loop import LoopSettings, TrainingSet, _step, make_optimizer
from trainables.losses import cross_entropy_loss
from trainables.models import build_model

MATMUL_N = 2048  # large enough that the product runs at the kernel's full speed (about 0.1 s here)
MATMULS_PER_TURN = 3


def _supervised_loss(logits, batch):
    return cross_entropy_loss(logits, None, batch["labels"], 1.0, 0.0)


def _step_runner(blueprint, data: TrainingSet, positions: np.ndarray, bf16: bool, foreach: bool):
    """A fresh student with its optimizer; each call times one `_step` of the project's loop."""
    settings = LoopSettings(learning_rate=common.LEARNING_RATE, batch_size=common.BATCH_SIZE, epochs=1,
                            num_threads=common.THREADS, bf16=bf16)
    model = build_model(blueprint, seed=0)
    if foreach:  # the loop's optimizer before this change, kept here only to measure the change
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                      weight_decay=settings.weight_decay, foreach=True)
    else:
        optimizer = make_optimizer(model, settings)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, 1_000_000)  # a constant rate; the cost is the same

    def run(_round: int) -> float:
        started = time.perf_counter()
        _step(model, data, positions, _supervised_loss, optimizer, schedule, settings)
        return time.perf_counter() - started

    run(0)  # the first step allocates the optimizer state and warms oneDNN's kernel caches: not timed
    return model, run


def _one_thread(run):
    """The same step with one thread: how much the second thread buys bounds what two 1-CPU trials
    side by side can gain over one 2-CPU trial (section 4)."""
    def one_thread_run(round_number: int) -> float:
        torch.set_num_threads(1)
        try:
            return run(round_number)
        finally:
            torch.set_num_threads(common.THREADS)
    return one_thread_run


def _matmul_runner(dtype: torch.dtype):
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL_N, MATMUL_N, generator=generator).to(dtype)
    b = torch.randn(MATMUL_N, MATMUL_N, generator=generator).to(dtype)
    torch.matmul(a, b)  # warm-up

    def run(_round: int) -> float:
        # The mean of a few back-to-back products, about as long as a step: a best-of would compare the
        # step's typical moment with the matmul's luckiest one on a machine shared with other work.
        started = time.perf_counter()
        for _ in range(MATMULS_PER_TURN):
            torch.matmul(a, b)
        return (time.perf_counter() - started) / MATMULS_PER_TURN

    return run


def measure(repeat: int, with_foreach: bool, with_bf16: bool = True) -> tuple[dict, dict]:
    """(figures, raw timings). with_bf16=False (no native bfloat16): the bf16 runs are left out."""
    torch.set_num_threads(common.THREADS)
    data_splits = common.load(train=None)
    blueprint = common.blueprint(common.STUDENT, data_splits)
    encoded = common.full_length_batch(common.encode(blueprint, data_splits)["train"], common.BATCH_SIZE)
    data = TrainingSet.fully_labelled(encoded)
    positions = np.arange(common.BATCH_SIZE)  # fully_labelled: positions == rows
    model, step_fp32 = _step_runner(blueprint, data, positions, bf16=False, foreach=False)
    runs = {"step_fp32": step_fp32, "matmul_fp32": _matmul_runner(torch.float32)}
    if with_bf16:
        runs.update(step_bf16=_step_runner(blueprint, data, positions, bf16=True, foreach=False)[1],
                    matmul_bf16=_matmul_runner(torch.bfloat16))
    if with_foreach:
        runs["step_fp32_foreach_adamw"] = _step_runner(blueprint, data, positions, bf16=False, foreach=True)[1]
    runs["step_fp32_1thread"] = _one_thread(_step_runner(blueprint, data, positions, bf16=False, foreach=False)[1])
    runs["matmul_fp32_1thread"] = _one_thread(_matmul_runner(torch.float32))
    seconds = interleave(runs, repeat)
    flops, params = model_step_flops(model, common.BATCH_SIZE, common.MAX_LENGTH)
    return _figures(seconds, flops), {"seconds": seconds, "step_flops": flops, "parameters": params,
                                      "batch": common.BATCH_SIZE, "tokens": common.MAX_LENGTH,
                                      "threads": common.THREADS, "matmul_n": MATMUL_N}


def _figures(seconds: dict, step_flops: int) -> dict:
    """A precision that was not run (bf16 on a CPU without native support) gives None figures."""
    med = {name: median(values) for name, values in seconds.items()}
    figures = {
        # Two 1-CPU trials side by side can at best beat one 2-CPU trial by 2 / this (for the training part).
        "step_two_thread_speedup": ratio(med["step_fp32_1thread"], med["step_fp32"]),
        # One thread cannot be stalled waiting for a partner thread that other work has descheduled.
        "step_peak_fraction_fp32_1thread": ratio(step_flops / med["step_fp32_1thread"],
                                                 matmul_flops(MATMUL_N) / med["matmul_fp32_1thread"]),
        "step_bf16_speedup": ratio(med["step_fp32"], med.get("step_bf16")),
    }
    for dtype in ("fp32", "bf16"):
        step, matmul = med.get(f"step_{dtype}"), med.get(f"matmul_{dtype}")
        peak = ratio(matmul_flops(MATMUL_N), matmul)
        achieved = ratio(step_flops, step)
        figures[f"step_peak_fraction_{dtype}"] = ratio(achieved, peak)
        figures[f"step_examples_per_second_{dtype}"] = ratio(common.BATCH_SIZE, step)
        figures[f"step_gflops_{dtype}"] = None if achieved is None else achieved / 1e9
        figures[f"matmul_peak_gflops_{dtype}"] = None if peak is None else peak / 1e9
        # The same fraction from each side's fastest turn: on a machine shared with other work the medians
        # carry the contention (a 2-thread step suffers more from it than one large matmul does).
        figures[f"step_peak_fraction_{dtype}_best_turn"] = (
            None if step is None else (step_flops / min(seconds[f"step_{dtype}"]))
            / (matmul_flops(MATMUL_N) / min(seconds[f"matmul_{dtype}"])))
    if "step_fp32_foreach_adamw" in med:
        figures["fused_adamw_step_speedup"] = ratio(med["step_fp32_foreach_adamw"], med["step_fp32"])
    return figures
