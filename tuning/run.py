"""Sweep one method (or all three) with Ray Tune and print the best settings found.

    python tuning/run.py --method active_loop            # the embedded default data and models
    python tuning/run.py --method all --smoke-test       # seconds: a tiny model on generated data
    python tuning/run.py --resume --name NAME             # continue an interrupted sweep
    python tuning/run.py --resume --name NAME --retry-errored   # ... and run its errored trials again
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

from trainables import precision  # light: torch is imported when the CPU is asked
from trainables.config import METHODS
from trainables.errors import UsageError
from tuning.cli import (
    DEFAULT_STORAGE,
    Parser,
    add_data_arguments,
    add_expert_arguments,
    add_verbose_argument,
    check_can_create,
    check_cpus_fit,
    check_name,
    closing_hints,
    data_settings,
    expert_assignments,
    main_guard,
    parse_assignments,
    parse_with_explicit,
    ray_settings,
    refuse_ignored_on_resume,
    resume_command,
)
from tuning.tracking.settings import add_tracker_arguments, describe, tracking_settings
from tuning.trials.ray_session import RaySession  # light: Ray is imported when a session starts

# Ray, torch and transformers are imported once the arguments are parsed (main, new_sweep): --help answers at once.
SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc")
# The flags a resumed sweep uses (resume, resume_sweep): which experiment, where, how Ray is reached, and whether
# its errored trials run again. Every other flag defines the sweep, which continues as it started.
KEPT_ON_RESUME = frozenset({"--resume", "--name", "--storage-path", "--address", "--dashboard", "--verbose",
                            "--retry-errored"})


def parse_args(argv=None):
    parser = Parser(prog="tuning/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="active_loop", choices=(*METHODS, "all"),
                        help="the method to sweep, or all three one after the other")
    parser.add_argument("--num-samples", type=int, default=None,
                        help="trials per method (default: 8, or 2 with --smoke-test)")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="trials at once (default: CPUs / cpus-per-trial)")
    parser.add_argument("--storage-path", default=DEFAULT_STORAGE,
                        help="where results go: a folder or a URI such as s3://bucket/path")
    parser.add_argument("--name", default=None, help="experiment name (default: METHOD-DATE-TIME)")
    parser.add_argument("--address", default=None,
                        help="an existing Ray cluster: auto, or the head's HOST:6379 (default: a new local Ray "
                             "instance on this machine's CPUs)")
    parser.add_argument("--resume", action="store_true", help="continue the experiment --name")
    parser.add_argument("--retry-errored", action="store_true",
                        help="with --resume: run errored trials again from their last checkpoint (default: they "
                             "stay errored, so a resumed sweep never silently re-runs them)")
    parser.add_argument("--space", default=None,
                        help="YAML/JSON file overriding search-space entries (default: search_spaces/METHOD.py as is)")
    parser.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                        help="fix one setting for every trial (repeatable); with every setting fixed, the one "
                             "configuration runs --num-samples times with seeds 0..N-1")
    parser.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="Optuna sampler")
    parser.add_argument("--scheduler", default="asha", choices=("asha", "none"),
                        help="asha stops trials that trail the others at the same epoch/round; none lets all finish")
    parser.add_argument("--grace-period", type=int, default=1, help="epochs/rounds before ASHA may stop a trial")
    parser.add_argument("--max-failures", type=int, default=0,
                        help="retries of a failed trial from its checkpoint; -1: retry without limit")
    parser.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1")
    add_expert_arguments(parser, kinds="teachers, oracle, llm:<preset or .gguf file> or openai")
    add_verbose_argument(parser)
    add_tracker_arguments(parser, "sweep")
    add_data_arguments(parser)
    return parse_with_explicit(parser, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    check_counts(args)
    if args.retry_errored and not args.resume:
        raise UsageError("--retry-errored goes with --resume (it re-runs the errored trials of a sweep)")
    if args.resume:
        if not args.name:
            raise UsageError("--resume needs --name (the experiment to continue)")
        check_name(args.name)  # the same names as on creation: nothing outside --storage-path
        # The sweep's settings, space, data, expert and tracking are restored as saved (sweep.json, tuner.pkl).
        refuse_ignored_on_resume(args, KEPT_ON_RESUME, f"sweep {args.name}")
        return resume(args)
    return new_sweep(args)


def check_counts(args) -> None:
    """Counts Ray would otherwise refuse with an assertion once the sweep's record is written (ASHA's grace
    period), or take to mean something else (FailureConfig reads any negative max_failures as "retry forever").
    A grace period is checked with --scheduler none too, which ignores it: a count of epochs below 1 is a typo."""
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.grace_period < 1:
        raise UsageError(f"--grace-period must be >= 1 (epochs, or Expert-Loop rounds, before ASHA may stop a "
                         f"trial), got {args.grace_period}")
    if args.max_failures < -1:
        raise UsageError(f"--max-failures must be >= 0, or -1 to retry without limit, got {args.max_failures}")


def resume(args) -> int:
    from tuning.sweep.experiment import print_best, resume_sweep  # noqa: PLC0415 (Ray, torch: once parsed)

    root = Path(args.storage_path).expanduser().resolve() / args.name
    results, prepared, spaces = resume_sweep(root, RaySession(ray_settings(args)), args.retry_errored, args.verbose,
                                             resume_command(args, args.name))
    print_best(results, prepared, spaces)
    print_hints(args, args.name, results)
    return 0


def new_sweep(args) -> int:
    from tuning.sweep.experiment import (  # noqa: PLC0415 (Ray, torch: once the arguments are parsed)
        default_name,
        experiment_dirs,
        is_uri,
        new_experiment,
        prepare_once,
        print_best,
        run_sweeps,
    )
    from tuning.sweep.search import SweepSettings  # noqa: PLC0415 (Ray, optuna, torch: once parsed)
    from tuning.sweep.spaces import build_space, read_space_file, replicate_seeds  # noqa: PLC0415 (Ray)

    methods = list(METHODS) if args.method == "all" else [args.method]
    num_samples = args.num_samples if args.num_samples is not None else (2 if args.smoke_test else 8)
    if num_samples < 1:
        raise UsageError(f"--num-samples must be >= 1, got {num_samples}")
    settings = data_settings(args)
    check_cpus_fit(settings.cpus_per_trial, args.address)  # a local Ray would wait for the CPUs forever
    name = check_name(args.name or default_name(args.method))
    if not is_uri(args.storage_path):
        check_can_create(args.storage_path, "--storage-path")
    tracking = tracking_settings(args, name, args.storage_path)
    overrides = read_space_file(args.space) if args.space else {}
    fixed = {**parse_assignments(args.fix, "--fix"), **expert_assignments(args, allow_human=False)}
    spaces = {method: build_space(method, args.smoke_test, overrides, fixed) for method in methods}
    for space in spaces.values():
        replicate_seeds(space, num_samples)  # every setting fixed, the seed too: refused here, not in Ray
    max_concurrent = args.max_concurrent or max(1, _local_cpus() // settings.cpus_per_trial)
    dirs = experiment_dirs(args.storage_path, name, methods)  # method -> (storage path, experiment name)
    sweeps = [SweepSettings(method=method, name=dirs[method][1], storage_path=dirs[method][0],
                            num_samples=num_samples, max_concurrent=max_concurrent,
                            cpus_per_trial=settings.cpus_per_trial, seed=settings.split_seed,
                            scheduler=args.scheduler,
                            sampler=args.sampler, grace_period=args.grace_period, max_failures=args.max_failures,
                            tracking=tracking)
              for method in methods]
    print(f"students' precision here: {describe_precision(spaces)}; each trial worker decides again where it runs",
          flush=True)
    if tracking is not None:
        print(describe(tracking), flush=True)
    session = RaySession(ray_settings(args))  # started by the teachers' tasks or the first sweep
    hint = resume_command(args, name)
    with new_experiment(args.storage_path, name, hint):  # the driver lock, before Ray starts
        prepared = prepare_once(settings, methods, spaces, session)
        results = run_sweeps(sweeps, spaces, prepared, settings, session, args.verbose, hint)
    print_best(results, prepared, spaces)
    print_hints(args, name, results)
    return 0


def print_hints(args, name: str, results: dict) -> None:
    errored = any(grid.num_errors for grid in results.values())
    print("\n" + "\n".join(closing_hints(args, name, errored)))


def describe_precision(spaces: dict) -> str:
    fixed = {str(space.get("bf16")) for space in spaces.values() if "bf16" in space}
    return f"forced by --fix bf16={fixed.pop()}" if len(fixed) == 1 else precision.choice().describe()


def _local_cpus() -> int:
    return os.cpu_count() or 1


if __name__ == "__main__":
    main_guard(main)
