"""Measure the training loop, the distillation cache and Ray sweeps; write benchmarks/results/latest.json
and latest.md.

    python benchmarks/run.py --quick                 # under 3 minutes: small sizes, one round each
    python benchmarks/run.py                         # under 15 minutes: more data, two rounds each
    python benchmarks/run.py --with-default-sweep    # also the default Expert-Loop sweep (about 15 min more)
    python benchmarks/run.py --with-study            # also `tuning/study.py --quick` (about 20 min more)
    python benchmarks/run.py --only full_study --with-full-study  # the full study alone (hours)
    python benchmarks/run.py --only full_study --with-full-study --full-study-from ray_results/NAME
                                                     # a full study already run, from its logged runs

Every figure is a ratio of two things measured in turns in the same run (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from a checkout, like tuning/run.py

from benchmarks.results import REQUIRED_KEYS, machine_info, today, write_results  # noqa: E402
from trainables import precision  # noqa: E402 (light: torch is imported when the CPU is asked)

# Sizes per mode. Train sizes are training-split examples (stratified subsets of the default data).
# --quick checks that everything runs: its sizes are too small for the ratios to mean much (fixed costs
# such as building a model or starting a Ray worker dominate), so targets are judged on the full mode.
QUICK = {"step_repeat": 2, "epoch_train": 96, "epoch_validation": 100, "epoch_repeat": 1, "kd_train": 48,
         "kd_repeat": 1, "sweep_train": 16, "sweep_eval": 16, "sweep_trials": 4, "sweep_repeat": 1,
         "teacher_train": 32, "teacher_eval": 32, "teacher_repeat": 1}
FULL = {"step_repeat": 5, "epoch_train": 800, "epoch_validation": 500, "epoch_repeat": 2, "kd_train": 256,
        "kd_repeat": 2, "sweep_train": 128, "sweep_eval": 28, "sweep_trials": 4, "sweep_repeat": 2,
        "teacher_train": 400, "teacher_eval": 200, "teacher_repeat": 1}
SECTIONS = ("step", "epoch", "kd", "sweeps", "teachers", "default_sweep", "study", "full_study")
# Figures that need bfloat16 runs: on a CPU without native bfloat16 those runs are skipped (emulated, they
# are tens of times slower) and these are written as null with the reason, never counted as missed.
BF16_KEYS = ("step_peak_fraction_bf16", "step_peak_fraction_bf16_best_turn", "step_examples_per_second_bf16",
             "step_gflops_bf16", "matmul_peak_gflops_bf16", "step_bf16_speedup", "bf16_epoch_speedup",
             "bf16_accuracy_delta", "bf16_meets_default_rule", "epoch_time_ratio_vs_trainer_bf16",
             "accuracy_delta_vs_trainer_bf16", "precision_auto_regret")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round per comparison (< 3 min)")
    parser.add_argument("--with-default-sweep", action="store_true",
                        help="also time the default `tuning/run.py --method active_loop` (full mode only)")
    parser.add_argument("--with-study", action="store_true",
                        help="also time `tuning/study.py --quick` (study_quick_seconds, study_points_per_hour, "
                             "study_overhead_fraction; full mode only)")
    parser.add_argument("--with-full-study", action="store_true",
                        help="also time the full `tuning/study.py` (study_full_seconds; hours; full mode only)")
    parser.add_argument("--full-study-from", metavar="FOLDER", default=None,
                        help="with --with-full-study: time a full study already run (over several sessions: each "
                             "start and --resume is logged in its study.json) instead of running one")
    parser.add_argument("--keep-study", metavar="STORAGE_PATH", default=None,
                        help="with --with-study / --with-full-study: keep the studies' folders (report, study.csv) "
                             "under this path (names bench-study-quick, bench-study-full)")
    parser.add_argument("--only", action="append", choices=SECTIONS, default=None,
                        help="run only this section (repeatable); the others are written as null")
    parser.add_argument("--output-dir", default=str(ROOT / "benchmarks" / "results"),
                        help="where latest.json and latest.md go")
    return parser.parse_args(argv)


def _sections(args, sizes: dict, native_bf16: bool) -> dict:
    """name -> a function returning (figures, raw). Imports happen inside: --help stays instant."""
    def step():
        from benchmarks import step_peak  # noqa: PLC0415
        return step_peak.measure(sizes["step_repeat"], with_foreach=True, with_bf16=native_bf16)

    def epoch():
        from benchmarks import epoch_vs_trainer  # noqa: PLC0415
        return epoch_vs_trainer.measure(sizes["epoch_train"], sizes["epoch_validation"], sizes["epoch_repeat"],
                                        with_bf16=native_bf16)

    def kd():
        from benchmarks import kd_cache  # noqa: PLC0415
        return kd_cache.measure(sizes["kd_train"], sizes["kd_repeat"])

    def sweeps():
        from benchmarks import ray_sweeps  # noqa: PLC0415
        return ray_sweeps.measure(sizes["sweep_train"], sizes["sweep_eval"], sizes["sweep_trials"],
                                  sizes["sweep_repeat"])

    def teachers():
        from benchmarks import teacher_prep  # noqa: PLC0415
        return teacher_prep.measure(sizes["teacher_train"], sizes["teacher_eval"], sizes["teacher_repeat"])

    def default_sweep():
        from benchmarks import default_sweep as section  # noqa: PLC0415
        return section.measure()

    def study():
        from benchmarks import study_overhead  # noqa: PLC0415
        return study_overhead.measure(args.keep_study, full=False)

    def full_study():
        from benchmarks import common, study_overhead  # noqa: PLC0415
        if args.full_study_from:
            return study_overhead.logged(Path(args.full_study_from), common.THREADS)
        return study_overhead.measure(args.keep_study, full=True)

    chosen = {"step": step, "epoch": epoch, "kd": kd, "sweeps": sweeps, "teachers": teachers}
    if args.with_default_sweep and not args.quick:
        chosen["default_sweep"] = default_sweep
    if args.with_study and not args.quick:
        chosen["study"] = study
    if args.with_full_study and not args.quick:
        chosen["full_study"] = full_study
    return {name: fn for name, fn in chosen.items() if args.only is None or name in args.only}


def _notes(args, results: dict) -> list[str]:
    notes = []
    if args.quick:
        notes.append("default_sweep_seconds_warm is null: --quick never runs the default sweep (about 15 min).")
    elif not args.with_default_sweep:
        notes.append("default_sweep_seconds_warm is null: run with --with-default-sweep to time the default "
                     "Expert-Loop sweep (about 15 min).")
    if not (args.with_study and not args.quick):
        notes.append("study_quick_seconds, study_points_per_hour and study_overhead_fraction are null: run the "
                     "full mode with --with-study to time `tuning/study.py --quick` (about 20 min).")
    if not (args.with_full_study and not args.quick):
        notes.append("study_full_seconds is null: run the full mode with --with-full-study to time the full "
                     "`tuning/study.py` (hours), or add --full-study-from FOLDER to time one already run.")
    if results.get("raw", {}).get("epoch", {}).get("trainer_included") is False:
        notes.append("Trainer comparison skipped: accelerate is not installed (pip install -e '.[bench]').")
    for reason in sorted(set((results.get("null_reasons") or {}).values())):
        notes.append(f"bf16 figures are null: {reason}.")
    for name, error in results.get("errors", {}).items():
        notes.append(f"section {name} failed: {error.splitlines()[-1] if error else '?'}")
    return notes


def precision_figures() -> dict:
    """Whether this CPU computes bfloat16 natively and what bf16=auto chooses on it (trainables/precision.py)."""
    choice = precision.choice()
    return {"cpu_native_bf16": choice.native, "precision_auto_choice": precision.name(choice.bf16),
            "precision_auto_speedup_measured": choice.speedup}


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sizes = QUICK if args.quick else FULL
    results = {"date": today(), "mode": "quick" if args.quick else "full", "machine": machine_info(),
               **dict.fromkeys(REQUIRED_KEYS), "raw": {"sizes": sizes}, "section_seconds": {}, "errors": {},
               **precision_figures()}
    native = results["cpu_native_bf16"]
    for name, measure in _sections(args, sizes, native).items():
        print(f"[benchmarks] {name} ...", flush=True)
        started = time.perf_counter()
        try:
            figures, raw = measure()
            results.update(figures)
            results["raw"][name] = raw
            if raw.get("error"):
                results["errors"][name] = raw["error"]
        except Exception:  # noqa: BLE001 (one failed section must not lose the others' figures)
            results["errors"][name] = traceback.format_exc()
            print(results["errors"][name], file=sys.stderr, flush=True)
        results["section_seconds"][name] = round(time.perf_counter() - started, 1)
        print(f"[benchmarks] {name} done in {results['section_seconds'][name]} s", flush=True)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if not native:
        reason = "this CPU has no native bfloat16: bf16 runs skipped (emulated, they are tens of times slower)"
        results.update(dict.fromkeys(BF16_KEYS))
        results["null_reasons"] = dict.fromkeys(BF16_KEYS, reason)
    results["notes"] = _notes(args, results)
    json_path, md_path = write_results(results, Path(args.output_dir))
    print(md_path.read_text(encoding="utf-8"))
    print(f"[benchmarks] wrote {json_path} and {md_path}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
