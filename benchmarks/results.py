"""The results file: required keys as plain numbers, raw timings beside them, targets checked, and a
short Markdown table. Pure functions apart from reading /proc/cpuinfo and writing the two files."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from trainables.atomic import write_text

REQUIRED_KEYS = (
    "step_peak_fraction_fp32", "step_peak_fraction_bf16",
    "epoch_time_ratio_vs_trainer", "accuracy_delta_vs_trainer",
    "kd_cache_time_ratio",
    "concurrency_throughput_ratio", "ray_overhead_seconds_per_trial",
    "peak_rss_mb_per_trial", "peak_rss_mb_sweep",
    "default_sweep_seconds_warm",
    "cpu_native_bf16", "precision_auto_choice", "precision_auto_regret",
    "teacher_prep_seconds", "teacher_prep_peak_fraction", "teacher_parallel_speedup",
    "study_quick_seconds", "study_overhead_fraction", "study_full_seconds", "study_points_per_hour",
)


@dataclass(frozen=True)
class Target:
    key: str
    op: str  # ">=", "<=" or "<"
    bound: float
    text: str  # as the issue states it

    def status(self, value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "not measured"
        met = {">=": value >= self.bound, "<=": value <= self.bound, "<": value < self.bound}[self.op]
        return "met" if met else "missed"


TARGETS = (
    Target("step_peak_fraction_fp32", ">=", 0.60, "training step >= 60% of float32 matmul peak"),
    Target("step_peak_fraction_bf16", ">=", 0.60, "training step >= 60% of bfloat16 matmul peak"),
    Target("epoch_time_ratio_vs_trainer", "<=", 0.60, "supervised epoch <= 0.6 x Trainer's"),
    # "within 1 point": ours may be better by any amount, worse by at most 0.01.
    Target("accuracy_delta_vs_trainer", ">=", -0.01, "accuracy within 1 point of Trainer's"),
    Target("kd_cache_time_ratio", "<=", 0.50, "KD with cached logits <= 0.5 x without"),
    Target("concurrency_throughput_ratio", ">=", 1.60, "2 x 1-CPU trials >= 1.6 x throughput of 1 x 2-CPU"),
    Target("ray_overhead_seconds_per_trial", "<", 3.0, "Ray overhead per trial < 3 s"),
    Target("precision_auto_regret", "<=", 0.05, "auto precision's epoch <= 1.05 x the faster forced one"),
    Target("teacher_prep_peak_fraction", ">=", 0.50, "teacher preparation >= 50% of matmul peak"),
    Target("study_overhead_fraction", "<=", 0.15, "study --quick: <= 15% of wall time outside training"),
    Target("study_quick_seconds", "<=", 20 * 60, "study --quick in <= 20 minutes on 2 cores"),
    Target("study_full_seconds", "<=", 3 * 3600, "the full study (10 seeds) in <= 3 hours on 2 cores"),
)


def check_targets(results: dict) -> dict[str, str]:
    """A figure null for a stated reason (e.g. no native bfloat16) is "not applicable", never missed."""
    reasons = results.get("null_reasons") or {}
    return {target.key: f"not applicable: {reasons[target.key]}"
            if results.get(target.key) is None and target.key in reasons else target.status(results.get(target.key))
            for target in TARGETS}


def cpu_model(cpuinfo: str) -> str:
    """The first 'model name' line of /proc/cpuinfo's text ('unknown' when there is none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        cpuinfo = ""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {
        "cpu_model": cpu_model(cpuinfo),
        "cores": os.cpu_count(),
        "bf16_instructions": [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags],
        "python": platform.python_version(),
        **{package: _version(package) for package in ("torch", "ray", "transformers", "accelerate")},
        # Other work on the machine slows both sides of every ratio, but not always equally: say how busy it was.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def today() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _format(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


NOT_FIGURES = ("date", "mode", "machine", "raw", "notes", "errors", "targets", "section_seconds", "null_reasons")


def _is_figure(value) -> bool:
    return value is None or isinstance(value, bool | int | float)


def markdown(results: dict) -> str:
    """The required figures, each with its target and whether it was met."""
    targets = {target.key: target for target in TARGETS}
    status = check_targets(results)
    machine = results.get("machine", {})
    flags = ", ".join(machine.get("bf16_instructions") or []) or "none"
    lines = [
        f"# Benchmark results ({results.get('mode', '?')} mode, {results.get('date', '?')})",
        "",
        f"{machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores, native bfloat16 "
        f"{_format(results.get('cpu_native_bf16'))} (flags: {flags}), "
        f"torch {machine.get('torch')}, "
        f"ray {machine.get('ray')}, transformers {machine.get('transformers')}; load average at start "
        f"{machine.get('load_average_at_start')}, at end {machine.get('load_average_at_end')}.",
        "",
        "| figure | value | target | status |",
        "|---|---|---|---|",
    ]
    for key in REQUIRED_KEYS:
        target = targets.get(key)
        lines.append(f"| `{key}` | {_format(results.get(key))} | {target.text if target else '-'} | "
                     f"{status.get(key, '-')} |")
    lines += ["", "| other figure | value |", "|---|---|"]
    for key, value in results.items():
        if key not in REQUIRED_KEYS and key not in NOT_FIGURES and _is_figure(value):
            lines.append(f"| `{key}` | {_format(value)} |")
    notes = results.get("notes", [])
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def write_results(results: dict, folder: Path) -> tuple[Path, Path]:
    """latest.json (every key, raw timings included) and latest.md, each written whole then renamed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = {**results, "targets": check_targets(results)}
    paths = (folder / "latest.json", folder / "latest.md")
    texts = (json.dumps(results, indent=2, sort_keys=False, default=_json_default) + "\n", markdown(results))
    for path, text in zip(paths, texts, strict=True):
        write_text(path, text)
    return paths


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
