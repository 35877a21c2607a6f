"""One sweep from start to finish: folders, preparation, Ray, the Tuner, the printed summary, resume."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import ray
from ray import tune

from trainables import metrics as m
from trainables.atomic import write_text
from trainables.errors import UsageError
from trainables.prepared import Prepared
from tuning.assets.prepare import DataSettings, load_data, prepare, teacher_rows
from tuning.assets.teacher_tasks import ray_starter, started_for_teachers
from tuning.cli import DEFAULT_STORAGE, command_words
from tuning.records import SWEEP_FILE
from tuning.sweep.search import REUSE_ACTORS, ProgressLines, SweepSettings, make_tuner, run_config, start_ray, trainable
from tuning.sweep.spaces import largest, replicate_seeds, searched_names, to_tune


def default_name(method: str) -> str:
    return f"{method}-{time.strftime('%Y%m%d-%H%M%S')}"


def is_uri(path: str) -> bool:
    return "://" in str(path)


def experiment_dirs(storage_path: str, name: str, methods: list[str]) -> dict[str, tuple[str, str]]:
    """method -> (storage path for Ray, experiment name). `--method all` nests one experiment per
    method under NAME. An existing experiment is never overwritten: resume it or pick another name."""
    root = storage_path if is_uri(storage_path) else str(Path(storage_path).expanduser().resolve())
    if len(methods) == 1:
        dirs = {methods[0]: (root, name)}
    else:
        dirs = {method: (f"{root}/{name}", method) for method in methods}
    if not is_uri(root) and (Path(root) / name).exists():
        raise UsageError(f"experiment {Path(root) / name} already exists: use --resume or another --name")
    return dirs


def prepare_once(settings: DataSettings, methods: list[str], spaces: dict, ray_args=None) -> Prepared:
    """Load and check the data, check the Expert-Loop's sizes against it, then do the expensive part
    (tokenizing, teachers) once for every method of the sweep. With `ray_args` (the CLI's --address,
    --dashboard), teachers to fine-tune start Ray and run as Ray tasks."""
    data = load_data(settings)
    check_sizes(spaces, settings, data)
    need_teachers = any(method != "supervised" for method in methods)
    return prepare(settings, need_teachers, data, start_ray=ray_starter(ray_args) if ray_args else None)


def check_sizes(spaces: dict, settings: DataSettings, data) -> None:
    """Expert-Loop sizes that cannot fit the training split are bad input, found before Ray starts
    and before any teacher is fine-tuned."""
    space = spaces.get("active_loop")
    if space is None:
        return
    teachers_only = len(teacher_rows(settings, data)) if settings.teacher_split > 0 else 0
    available = len(data.train) - teachers_only
    initial, query = int(largest(space, "initial_pool_size")), int(largest(space, "query_size"))
    if initial >= available:
        raise UsageError(f"initial_pool_size up to {initial} leaves no pool: the training split offers "
                         f"{available} examples to the student")
    if query > available - initial:
        raise UsageError(f"query_size up to {query} is larger than the pool left after an initial pool of "
                         f"{initial} ({available - initial} examples)")


def write_sweep_file(folder: Path, sweep: SweepSettings, space: dict, settings: DataSettings) -> None:
    record = {"sweep": asdict(sweep), "space": space, "data": settings.to_dict()}
    write_text(folder / SWEEP_FILE, json.dumps(record, indent=2, default=str))


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a sweep: Ray Tune catches it, saves the experiment and returns early; the
    entry point then exits with status 130 and says how to resume, instead of reporting a partial sweep."""


def check_complete(grid: tune.ResultGrid, method: str, num_samples: int, resume_hint: str) -> None:
    """A sweep whose trials did not all end (finished or errored) was interrupted: stop here, so that
    `--method all` does not go on to the next method after Ctrl-C. Neither of Tune's two views suffices
    alone: after Ctrl-C it marks the trials it stopped TERMINATED in memory, while the state it saved just
    before (the one --resume continues) still says PENDING or RUNNING; but a trial whose worker process
    died is ERROR in memory only (Ray 2.60 does not save that status)."""
    saved = tune.ExperimentAnalysis(grid.experiment_path, storage_filesystem=grid.filesystem)
    ended_trials = {trial.path for trial in saved.trials if trial.status in ("TERMINATED", "ERROR")}
    ended_trials |= {result.path for result in grid if result.error is not None}
    ended = len(ended_trials)
    if ended < num_samples:
        raise SweepInterrupted(f"{ended} of {num_samples} {method} trials ended; continue with: {resume_hint}")


def fit(tuner: tune.Tuner, verbose: bool = False) -> tune.ResultGrid:
    """Tuner.fit, then the Ctrl-C handler as it was before: Tune leaves its own installed after a run that
    was not interrupted, and that one would swallow the next Ctrl-C (between two methods of `--method all`,
    or while the summary prints). Unless `verbose`, Tune's own reporter stays silent (library_output)."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        with library_output(verbose):
            return tuner.fit()
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)


NEW_OUTPUT = "RAY_AIR_NEW_OUTPUT"  # Ray's switch between its two progress reporters, read by Tuner.fit


@contextlib.contextmanager
def library_output(verbose: bool):
    """Tune's newer reporter prints an experiment table and a TensorBoard hint into Ray's temporary
    session folder even at verbose=0; the older one (RAY_AIR_NEW_OUTPUT=0) prints nothing at verbose=0.
    Optuna logs each study it creates at INFO. ProgressLines and the closing hints say what matters;
    --verbose brings the libraries' own output back."""
    before, optuna_level = os.environ.get(NEW_OUTPUT), optuna.logging.get_verbosity()
    os.environ[NEW_OUTPUT] = "1" if verbose else "0"
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(optuna_level)
        if before is None:
            os.environ.pop(NEW_OUTPUT, None)
        else:
            os.environ[NEW_OUTPUT] = before


def build_tuner(sweep: SweepSettings, space: dict, prepared: Prepared, experiment_dir: Path | None) -> tune.Tuner:
    """Optuna's search and the scheduler when a setting is left to search; else the one configuration,
    once per seed."""
    seeds = replicate_seeds(space, sweep.num_samples)
    if seeds is None:
        return make_tuner(sweep, space, prepared, experiment_dir)
    return replicate_tuner(sweep, space, seeds, prepared)


def replicate_tuner(sweep: SweepSettings, space: dict, seeds: list[int], prepared: Prepared) -> tune.Tuner:
    """Every setting fixed: Tune's own BasicVariantGenerator runs a grid over the trial seed. No scheduler
    (FIFO): the trials differ only by seed, so stopping some early would choose on noise."""
    return tune.Tuner(
        trainable(prepared, sweep.cpus_per_trial),
        param_space={**to_tune(space), "seed": tune.grid_search(seeds)},
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=sweep.max_concurrent,
                                    reuse_actors=REUSE_ACTORS),
        run_config=run_config(sweep, [ProgressLines(len(seeds))]),
    )


def resume_command(args, name: str, *extra: str, script: str = "run") -> str:
    """The command that continues experiment (or study, script="study") `name` as this one ran: the same
    storage path and cluster, shell-quoted, through the installed command if that started it."""
    words = [*command_words(script), "--resume", "--name", name, "--storage-path", args.storage_path]
    if args.address:
        words += ["--address", args.address]
    return shlex.join([*words, *extra])


def closing_hints(args, name: str, errored: bool = False) -> list[str]:
    """What to run next, naming the experiment's own folder (where its trials' TensorBoard event files
    are, not Ray's temporary session folder); --storage-path when the user gave one."""
    folder = f"{args.storage_path.rstrip('/')}/{name}"
    analyze = [*command_words("analyze"), folder]
    if args.storage_path != DEFAULT_STORAGE:
        analyze += ["--storage-path", args.storage_path]
    hints = [f"compare the methods:   {shlex.join(analyze)}",
             f"curves in TensorBoard: tensorboard --logdir {shlex.quote(folder)}"]
    if errored:
        hints.append(f"re-run errored trials: {resume_command(args, name, '--retry-errored')}")
    return hints


def print_hints(args, name: str, results: dict) -> None:
    errored = any(grid.num_errors for grid in results.values())
    print("\n" + "\n".join(closing_hints(args, name, errored)))


def run_sweeps(sweeps: list[SweepSettings], spaces: dict, prepared: Prepared, dirs: dict, args,
               settings: DataSettings, name: str) -> dict:
    sweeps = [replace(sweep, storage_path=dirs[sweep.method][0], name=dirs[sweep.method][1]) for sweep in sweeps]
    for sweep in sweeps:  # every method's record first: --resume then also starts those not begun yet
        if not is_uri(sweep.storage_path):
            write_sweep_file(Path(sweep.storage_path) / sweep.name, sweep, spaces[sweep.method], settings)
    started_here = not ray.is_initialized() or started_for_teachers(args)
    start_ray(args.address, args.dashboard, verbose=args.verbose)
    results = {}
    try:
        for sweep in sweeps:
            local = None if is_uri(sweep.storage_path) else Path(sweep.storage_path) / sweep.name
            print(f"sweeping {sweep.method}: {sweep.num_samples} trials, {sweep.max_concurrent} at a time, "
                  f"results in {sweep.storage_path}/{sweep.name}", flush=True)
            results[sweep.method] = fit(build_tuner(sweep, spaces[sweep.method], prepared, local), args.verbose)
            check_complete(results[sweep.method], sweep.method, sweep.num_samples, resume_command(args, name))
    finally:
        if started_here:
            ray.shutdown()
    return results


def resume_sweep(args) -> int:
    root = Path(args.storage_path).expanduser().resolve() / args.name
    folders = [root] if (root / SWEEP_FILE).is_file() else sorted(p.parent for p in root.glob(f"*/{SWEEP_FILE}"))
    if not folders:
        raise UsageError(f"no sweep to resume at {root} (no {SWEEP_FILE})")
    records = [json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8")) for folder in folders]
    data = records[0]["data"]
    settings = DataSettings.from_dict(data)
    methods = [record["sweep"]["method"] for record in records]
    prepared = prepare_once(settings, methods, {}, ray_args=args)
    started_here = not ray.is_initialized() or started_for_teachers(args)
    start_ray(args.address, args.dashboard, verbose=args.verbose)
    results = {}
    try:
        for folder, record in zip(folders, records, strict=True):
            sweep = replace(SweepSettings(**record["sweep"]), storage_path=str(folder.parent), name=folder.name)
            if tune.Tuner.can_restore(str(folder)):
                print(f"resuming {folder}", flush=True)
                # Errored trials stay errored unless asked: re-running them silently changes what was measured.
                tuner = tune.Tuner.restore(str(folder), trainable=trainable(prepared, sweep.cpus_per_trial),
                                           resume_unfinished=True, resume_errored=args.retry_errored)
            else:  # interrupted before this method's sweep began (`--method all`)
                print(f"starting {folder}", flush=True)
                tuner = build_tuner(sweep, record["space"], prepared, folder)
            results[sweep.method] = fit(tuner, args.verbose)
            check_complete(results[sweep.method], sweep.method, sweep.num_samples, resume_command(args, args.name))
    finally:
        if started_here:
            ray.shutdown()
    print_best(results, prepared, {record["sweep"]["method"]: record["space"] for record in records})
    print_hints(args, args.name, results)
    return 0


def print_best(results: dict, prepared: Prepared, spaces: dict) -> None:
    """The best trial per method on val_accuracy (its last report), with its label counts and the
    settings its sweep searched (those fixed by --fix or the space are the same for every trial)."""
    if prepared.teachers is not None:
        shown = ", ".join(f"{key} {value:.3f}" for key, value in prepared.teachers.accuracy.items())
        print(f"\nteacher accuracy: {shown}")
    print(f"\n{'method':<12} {'val_acc':>7} {'test_acc':>8} {'labels':>6} {'queries':>7} {'teach_lb':>8}  settings")
    for method, grid in results.items():
        errors = f" ({grid.num_errors} errored)" if grid.num_errors else ""
        try:
            best = grid.get_best_result(metric=m.METRIC, mode=m.MODE, scope="last")
        except RuntimeError:
            best = None
        if best is None or m.VAL_ACCURACY not in best.metrics:  # e.g. one trial, errored before reporting
            print(f"{method:<12} no finished trial{errors}")
            continue
        r, config = best.metrics, best.config
        settings = ", ".join(f"{k}={_short(config.get(k))}" for k in shown_settings(spaces[method]))
        print(f"{method:<12} {r[m.VAL_ACCURACY]:>7.3f} {r[m.TEST_ACCURACY]:>8.3f} {r[m.LABELS_USED]:>6} "
              f"{r[m.EXPERT_QUERIES]:>7} {r[m.TEACHER_LABELS]:>8}  {settings}{errors}")
    print("\n(chosen on val_accuracy; test_accuracy is for the record)")


def shown_settings(space: dict) -> list[str]:
    """The settings to show for a trial: those searched; with everything fixed, the seed (the one thing
    a replicate sweep varies)."""
    return searched_names(space) or ["seed"]


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if not math.isnan(value) else "nan"
    return str(value)
