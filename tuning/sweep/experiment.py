"""One sweep from start to finish: folders, preparation, Ray, the Tuner, the printed summary, resume."""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

from ray import tune

from trainables import metrics as m
from trainables.atomic import write_text
from trainables.errors import UsageError
from trainables.experts.spec import parse_expert
from trainables.functions import student_trial
from trainables.prepared import Prepared
from tuning.assets.prepare import DataSettings, load_data, prepare, teacher_rows
from tuning.cli import check_cpus_fit
from tuning.records import SWEEP_FILE
from tuning.sweep.search import REUSE_ACTORS, SweepSettings, make_tuner, run_config, sweep_progress
from tuning.sweep.spaces import largest, replicate_seeds, searched_names, to_tune
from tuning.trials.driver_lock import (
    holds_more_than_a_lock,
    new_experiment_folder,
    nothing_to_resume,
    one_driver,
    refuse_existing,
)
from tuning.trials.ray_session import RaySession
from tuning.trials.tuner import SweepInterrupted, fit, trainable


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
    if not is_uri(root):
        refuse_existing(Path(root) / name, "sweep")
    return dirs


def new_experiment(storage_path: str, name: str, resume_hint: str):
    """The driver lock of a new experiment's folder (STORAGE/NAME: the sweep's, or `--method all`'s of three),
    held for the whole sweep (new_experiment_folder). A URI (s3://) has no flock: there, one driver at a time is
    the user's to keep."""
    if is_uri(storage_path):
        return contextlib.nullcontext()
    folder = Path(storage_path).expanduser().resolve() / name
    return new_experiment_folder(folder, "sweep", resume_hint, begun=lambda: holds_more_than_a_lock(folder))


def prepare_once(settings: DataSettings, methods: list[str], spaces: dict, session: RaySession | None = None
                 ) -> Prepared:
    """Load and check the data, check the Expert-Loop's sizes against it, then do the expensive part
    (tokenizing, teachers) once for every method of the sweep. With a Ray `session`, teachers to fine-tune
    start it and run as Ray tasks."""
    data = load_data(settings)
    check_sizes(spaces, settings, data)
    expert = str(spaces.get("active_loop", {}).get("expert", "teachers"))
    need_teachers = "kd" in methods or ("active_loop" in methods and parse_expert(expert).needs_teachers)
    return prepare(settings, need_teachers, data, start_ray=session.start if session is not None else None,
                   expert=expert)


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
        trainable(student_trial, prepared, sweep.cpus_per_trial),
        param_space={**to_tune(space), "seed": tune.grid_search(seeds)},
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=sweep.max_concurrent,
                                    reuse_actors=REUSE_ACTORS),
        run_config=run_config(sweep, [sweep_progress(len(seeds))]),
    )


def run_sweeps(sweeps: list[SweepSettings], spaces: dict, prepared: Prepared, settings: DataSettings,
               session: RaySession, verbose: bool, resume_hint: str) -> dict:
    """Every method's sweep, one after the other, in the session's Ray (ended here when it started it).
    `resume_hint`: the command that continues the experiment, said when Ctrl-C stops it."""
    results = {}
    with session:  # Ray reached first: a cluster that never answers leaves no record that --resume would refuse
        for sweep in sweeps:  # every method's record first: --resume then also starts those not begun yet
            if not is_uri(sweep.storage_path):
                write_sweep_file(Path(sweep.storage_path) / sweep.name, sweep, spaces[sweep.method], settings)
        for sweep in sweeps:
            local = None if is_uri(sweep.storage_path) else Path(sweep.storage_path) / sweep.name
            print(f"sweeping {sweep.method}: {sweep.num_samples} trials, {sweep.max_concurrent} at a time, "
                  f"results in {sweep.storage_path}/{sweep.name}", flush=True)
            results[sweep.method] = fit(build_tuner(sweep, spaces[sweep.method], prepared, local), verbose)
            check_complete(results[sweep.method], sweep.method, sweep.num_samples, resume_hint)
    return results


def resume_sweep(root: Path, session: RaySession, retry_errored: bool, verbose: bool, resume_hint: str
                 ) -> tuple[dict, Prepared, dict]:
    """Continue the experiment at `root` (one method's, or a `--method all` folder of them): (results,
    the prepared data, each method's space). Errored trials stay errored unless `retry_errored`."""
    folders = [root] if (root / SWEEP_FILE).is_file() else sorted(p.parent for p in root.glob(f"*/{SWEEP_FILE}"))
    if not folders:
        raise nothing_to_resume(root, "sweep", SWEEP_FILE)
    records = [json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8")) for folder in folders]
    settings = DataSettings.from_dict(records[0]["data"])
    check_cpus_fit(settings.cpus_per_trial, session.settings.address)  # started on a cluster, resumed here
    spaces = {record["sweep"]["method"]: record["space"] for record in records}
    # The lock of the folder the sweep was started in (new_experiment), held until this resume ends: a second
    # driver would restore and rewrite the same experiment state and trial folders.
    with one_driver(root, f"sweep {root.name}", resume_hint):
        prepared = prepare_once(settings, list(spaces), spaces, session)
        results = continue_sweeps(folders, records, prepared, session, retry_errored, verbose, resume_hint)
    return results, prepared, spaces


def continue_sweeps(folders: list[Path], records: list[dict], prepared: Prepared, session: RaySession,
                    retry_errored: bool, verbose: bool, resume_hint: str) -> dict:
    """Each method's sweep restored from its folder, or started there when it never began (`--method all`)."""
    results = {}
    with session:
        for folder, record in zip(folders, records, strict=True):
            sweep = replace(SweepSettings(**record["sweep"]), storage_path=str(folder.parent), name=folder.name)
            if tune.Tuner.can_restore(str(folder)):
                print(f"resuming {folder}", flush=True)
                # Errored trials stay errored unless asked: re-running them silently changes what was measured.
                tuner = tune.Tuner.restore(str(folder), trainable=trainable(student_trial, prepared,
                                                                            sweep.cpus_per_trial),
                                           resume_unfinished=True, resume_errored=retry_errored)
            else:  # interrupted before this method's sweep began (`--method all`)
                print(f"starting {folder}", flush=True)
                tuner = build_tuner(sweep, record["space"], prepared, folder)
            results[sweep.method] = fit(tuner, verbose)
            check_complete(results[sweep.method], sweep.method, sweep.num_samples, resume_hint)
    return results


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
