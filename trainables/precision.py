"""Precision chosen by the hardware where the work runs: bfloat16 autocast only on a CPU that computes
bfloat16 natively AND is measured faster with it; float32 everywhere else.

Why measure and not only ask: a CPU without native bfloat16 (AVX2 only) emulates it, and a bf16 matmul
there ran 78x slower than float32; a CPU with native support (AVX512-BF16, AMX) was 1.5x faster. A
cluster's nodes may differ, so every process decides for itself (once: the answer is cached)."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

AUTO = "auto"
# The bf16 path must beat float32 by this factor to be chosen: a near tie is not worth the rounding.
REQUIRED_SPEEDUP = 1.1


def parse(value) -> bool | str:
    """'auto' stays 'auto'; true/false (bools, 1/0, yes/no, on/off) become bools."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == AUTO:
        return AUTO
    if text in ("1", "true", "yes", "on", "bf16", "bfloat16"):
        return True
    if text in ("0", "false", "no", "off", "fp32", "float32"):
        return False
    raise ValueError("expected auto, true or false")


def resolve(value) -> bool:
    """The precision a run uses: value forced (True/False), or the auto rule on this machine."""
    value = parse(value)
    return choice().bf16 if value == AUTO else value


def native_bf16() -> bool:
    """Whether oneDNN computes bfloat16 natively here. torch.ops.mkldnn._is_mkldnn_bf16_supported is private,
    and no public API answers the same question: torch.cpu.get_capabilities() describes the CPU, not the
    instruction set oneDNN is allowed to use (ONEDNN_MAX_CPU_ISA=AVX2 turns this False, not that). pyproject.toml
    pins torch to the minor version tested; tests/test_pinned_internals.py fails by name when the op is gone."""
    import torch  # noqa: PLC0415 (parse() serves the command line's --help, which must not wait for torch)

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def name(bf16: bool) -> str:
    """The one spelling of a precision in reports, logs and cache keys."""
    return "bf16" if bf16 else "fp32"


@dataclass(frozen=True)
class Choice:
    bf16: bool
    native: bool  # the CPU computes bfloat16 natively
    speedup: float | None  # measured float32 time / bf16 time (None: not measured)
    reason: str

    def describe(self) -> str:
        return f"{name(self.bf16)} ({self.reason})"


# Set by the driver of a local Ray instance for its workers ("1" bf16, "0" float32): one decision for every trial
# of a run on this machine, instead of one per worker process measured under whatever load the others make.
DECIDED_ENV = "EXPERT_LOOP_AUTO_BF16"
# A busy machine can make one measurement lie (0.51x once on a CPU measured 2.04x faster quiet): a native CPU's
# "slower" is measured again, and the best of these rounds counts.
MEASURE_ROUNDS = 3


@functools.cache
def choice() -> Choice:
    """The auto rule, once per process: the driver's decision when it passed one (DECIDED_ENV), else measured."""
    decided = os.environ.get(DECIDED_ENV)
    if decided in ("0", "1"):
        return Choice(decided == "1", native_bf16(), None, "auto: decided once for this machine by the run's driver")
    if not native_bf16():
        return Choice(False, False, None, "auto: this CPU has no native bfloat16")
    speedup = 0.0
    for _ in range(MEASURE_ROUNDS):
        speedup = max(speedup, measured_speedup())
        if speedup >= REQUIRED_SPEEDUP:
            return Choice(True, True, speedup, f"auto: native bfloat16, measured {speedup:.2f}x faster")
    return Choice(False, True, speedup, f"auto: native bfloat16 but measured only {speedup:.2f}x faster")


def decided_env() -> dict[str, str]:
    """This process's auto decision, as the environment a local Ray instance gives its workers."""
    return {DECIDED_ENV: "1" if choice().bf16 else "0"}


def measured_speedup(repeats: int = 7) -> float:
    """float32 time / bf16-autocast time of a matmul shaped like a small BERT's feed-forward layer
    (512 tokens x 384 -> 1536), on this process's threads, about 0.1 s. The two are timed in turns and
    the best of each is kept, so a burst of load on a busy machine hits both alike."""
    import torch  # noqa: PLC0415 (as in native_bf16)

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(512, 384, generator=generator)
    weights = torch.randn(384, 1536, generator=generator)

    def once(bf16: bool) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            (inputs @ weights).float().sum().item()
        return time.perf_counter() - started

    once(True), once(False)  # warm-up: the first calls select and load kernels
    times = {True: [], False: []}
    for _ in range(repeats):
        for bf16 in (False, True):
            times[bf16].append(once(bf16))
    return min(times[False]) / min(times[True])
