"""Ray Tune wiring: the cluster connection, the searcher, the scheduler, the Tuner."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from trainables import metrics as m
from trainables.functions import student_trial
from trainables.prepared import Prepared
from tuning.spaces import largest, starting_points, to_tune

OPTUNA_JOURNAL = "optuna_journal.log"


@dataclass(frozen=True)
class SweepSettings:
    method: str
    name: str
    storage_path: str  # absolute path or a URI (s3://, gs://) that pyarrow understands
    num_samples: int
    max_concurrent: int
    cpus_per_trial: int
    seed: int
    scheduler: str = "asha"  # or "none"
    sampler: str = "tpe"
    grace_period: int = 1  # epochs (rounds for the Expert-Loop) every trial gets before ASHA may stop it
    max_failures: int = 0


def start_ray(address: str | None, dashboard: bool, num_cpus: int | None = None) -> None:
    """Connect to a cluster (`address`) or start a local instance on this machine's CPUs.
    The dashboard stays off unless asked for, and then listens on loopback only."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    # One checkpoint per epoch is the design; Ray's warning about frequent snapshots is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    project_root = str(Path(__file__).resolve().parents[1])
    runtime_env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}
    if address:
        # Code travels with the job, so cluster nodes need only the dependencies, not this checkout.
        runtime_env["py_modules"] = [os.path.join(project_root, p) for p in ("trainables", "search_spaces")]
    ray.init(address=address or "local", num_cpus=None if address else num_cpus,
             include_dashboard=dashboard, dashboard_host="127.0.0.1",
             runtime_env=runtime_env, log_to_driver=True, configure_logging=True, logging_level="warning")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "gp": optuna.samplers.GPSampler, "cmaes": optuna.samplers.CmaEsSampler,
                "qmc": optuna.samplers.QMCSampler}
    return samplers[name](seed=seed)


def journal_storage(experiment_dir: Path):
    """An Optuna journal file inside the experiment folder: optuna-dashboard opens it, and a resumed
    sweep continues the same study."""
    from optuna.storages import JournalStorage  # noqa: PLC0415
    from optuna.storages.journal import JournalFileBackend  # noqa: PLC0415

    experiment_dir.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(experiment_dir / OPTUNA_JOURNAL)))


def make_searcher(sweep: SweepSettings, space: dict, experiment_dir: Path | None):
    storage = journal_storage(experiment_dir) if experiment_dir is not None else None
    searcher = OptunaSearch(metric=m.METRIC, mode=m.MODE, points_to_evaluate=starting_points(sweep.method, space),
                            sampler=make_sampler(sweep.sampler, sweep.seed), seed=None,
                            storage=storage, study_name=sweep.name)
    # TPE learns from finished trials: too many at once and it degrades to random proposals.
    return ConcurrencyLimiter(searcher, max_concurrent=sweep.max_concurrent)


def make_scheduler(sweep: SweepSettings, space: dict):
    if sweep.scheduler == "none":
        return FIFOScheduler()
    if sweep.method == "active_loop":
        max_t = int(largest(space, "max_iterations")) + 1  # one report per round, round 0 included
    else:
        max_t = int(largest(space, "epochs"))
    return ASHAScheduler(metric=m.METRIC, mode=m.MODE, time_attr="training_iteration", max_t=max_t,
                         grace_period=min(sweep.grace_period, max_t), reduction_factor=2)


def trainable(prepared: Prepared, cpus_per_trial: int):
    return tune.with_resources(tune.with_parameters(student_trial, prepared=prepared), {"cpu": cpus_per_trial})


def run_config(sweep: SweepSettings, callbacks: list) -> tune.RunConfig:
    return tune.RunConfig(
        name=sweep.name,
        storage_path=sweep.storage_path,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=m.METRIC,
                                                checkpoint_score_order=m.MODE),
        failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
        callbacks=callbacks,
        verbose=0,  # ProgressLines prints one line per report instead of full tables
    )


def make_tuner(sweep: SweepSettings, space: dict, prepared: Prepared, experiment_dir: Path | None):
    return tune.Tuner(
        trainable(prepared, sweep.cpus_per_trial),
        param_space=to_tune(space),
        tune_config=tune.TuneConfig(search_alg=make_searcher(sweep, space, experiment_dir),
                                    scheduler=make_scheduler(sweep, space), num_samples=sweep.num_samples),
        run_config=run_config(sweep, [ProgressLines(sweep.num_samples)]),
    )


class ProgressLines(tune.Callback):
    """One short line per report, so a long sweep shows where it is without Ray's full tables."""

    def __init__(self, total: int):
        self.started = time.perf_counter()
        self.total = total  # the sweep's trials: Tune's list holds only those created so far

    def on_trial_result(self, iteration, trials, trial, result, **info):
        step = f"round {result[m.ROUND]}" if m.ROUND in result else f"epoch {result.get(m.EPOCH)}"
        done = sum(t.status == "TERMINATED" for t in trials)
        print(f"[{time.perf_counter() - self.started:6.0f} s] {trial.trial_id} {step}: "
              f"val_accuracy {result[m.VAL_ACCURACY]:.3f}, labels_used {result[m.LABELS_USED]}, "
              f"expert_queries {result[m.EXPERT_QUERIES]} ({done}/{self.total} trials finished)", flush=True)
