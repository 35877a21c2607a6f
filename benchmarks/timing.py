"""Interleaved timing: on a shared machine the load changes from minute to minute, so two things
compared are measured in turns (A B B A ...) and each figure is a ratio of medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable, *args, **kwargs) -> tuple[object, float]:
    """(fn's result, wall seconds)."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def interleaved_order(names: list[str], repeat: int) -> list[str]:
    """Each round runs every name once; odd rounds reverse the order (A B, B A, A B, ...), so neither
    side always runs first, right after the other's cache-warming or right before a load spike."""
    order = []
    for round_number in range(repeat):
        order.extend(names if round_number % 2 == 0 else list(reversed(names)))
    return order


def interleave(runs: dict[str, Callable[[int], float]], repeat: int) -> dict[str, list[float]]:
    """Call runs[name](round_number) in interleaved_order; each call returns its own seconds."""
    seconds = {name: [] for name in runs}
    rounds = dict.fromkeys(runs, 0)
    for name in interleaved_order(list(runs), repeat):
        seconds[name].append(runs[name](rounds[name]))
        rounds[name] += 1
    return seconds


def median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator
