"""A sweep's Ray Tune wiring: its settings, the Optuna searcher, the scheduler, the Tuner and its progress lines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from trainables import metrics as m
from trainables.functions import student_trial
from trainables.prepared import Prepared
from tuning.records import MODEL_BASED, OPTUNA_JOURNAL, reached_the_end
from tuning.sweep.spaces import largest, starting_points, to_tune
from tuning.tracking.callbacks import tracker_callbacks
from tuning.tracking.settings import Tracking
from tuning.trials.progress import ProgressLines
from tuning.trials.replayed_reports import TrimReplayedReports
from tuning.trials.tuner import REUSE_ACTORS, trainable


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
    # Random proposals before TPE/GP model the finished trials; filled from num_samples when not given.
    # Recorded in sweep.json so the report can say whether the search was in effect random.
    startup_trials: int | None = None
    tracking: Tracking | None = None  # --tracker: where every trial is logged (None: nowhere but Ray's folders)

    def __post_init__(self):
        if isinstance(self.tracking, dict):  # read back from sweep.json
            object.__setattr__(self, "tracking", Tracking(**self.tracking))
        if self.startup_trials is None and self.sampler in MODEL_BASED:
            object.__setattr__(self, "startup_trials", startup_trials(self.num_samples))


def startup_trials(num_samples: int) -> int:
    """A quarter of the budget, at least 3: Optuna's default of 10 turns a sweep of 8 trials into a
    random search, while fewer than 3 finished trials give TPE nothing to split into good and bad."""
    return max(3, math.ceil(num_samples / 4))


def make_sampler(name: str, seed: int, num_samples: int, startup: int | None = None) -> optuna.samplers.BaseSampler:
    """`startup`: random trials before TPE/GP use their model (default: startup_trials(num_samples))."""
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "gp": optuna.samplers.GPSampler, "cmaes": optuna.samplers.CmaEsSampler,
                "qmc": optuna.samplers.QMCSampler}
    if name in MODEL_BASED:
        return samplers[name](seed=seed, n_startup_trials=startup or startup_trials(num_samples))
    return samplers[name](seed=seed)


def journal_storage(experiment_dir: Path):
    """An Optuna journal file inside the experiment folder: optuna-dashboard opens it, and a resumed
    sweep continues the same study."""
    experiment_dir.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(experiment_dir / OPTUNA_JOURNAL)))


def make_searcher(sweep: SweepSettings, space: dict, experiment_dir: Path | None):
    storage = journal_storage(experiment_dir) if experiment_dir is not None else None
    sampler = make_sampler(sweep.sampler, sweep.seed, sweep.num_samples, sweep.startup_trials)
    searcher = PruningOptunaSearch(metric=m.METRIC, mode=m.MODE,
                                   points_to_evaluate=starting_points(sweep.method, space),
                                   sampler=sampler, seed=None, storage=storage, study_name=sweep.name)
    # TPE learns from finished trials: too many at once and it degrades to random proposals.
    return ConcurrencyLimiter(searcher, max_concurrent=sweep.max_concurrent)


class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch that tells the study which trials ASHA stopped. Ray's OptunaSearch reports each result
    as an intermediate value (trial.report(val_accuracy, training_iteration)), except the one the scheduler
    stopped the trial on, and tells every trial that ends without an error COMPLETE: a trial ASHA stopped
    after one epoch then looks finished in optuna_journal.log (optuna-dashboard) and to TPE. Here the last
    result is reported too, and a trial that ended before its planned epochs/rounds is told PRUNED (Optuna
    then takes its last intermediate value as its value, as for trials its own pruners stop).

    Only OptunaSearch's public searcher methods are used: the last result goes through on_trial_result, and a
    trial to prune is completed without its metric, which OptunaSearch tells Optuna as PRUNED (no value, no
    error). Tested against the journal in tests/test_search.py."""

    def on_trial_result(self, trial_id: str, result: dict):
        super().on_trial_result(trial_id, result)
        self._steps_reported().setdefault(trial_id, set()).add(result.get("training_iteration"))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        ended_before = trial_id in self._ended()
        self._ended().add(trial_id)
        if error or not result or ended_before:  # OptunaSearch's own answer: FAIL, PRUNED, or a warning
            return super().on_trial_complete(trial_id, result, error)
        self._report_last(trial_id, result)
        config = _config_of(result)
        if reached_the_end(config.get("method", ""), config, result):
            return super().on_trial_complete(trial_id, result, error)
        return super().on_trial_complete(trial_id, {k: v for k, v in result.items() if k != self.metric}, error)

    def _report_last(self, trial_id: str, result: dict) -> None:
        step, value = result.get("training_iteration"), result.get(self.metric)
        if step is None or not isinstance(value, int | float) or step in self._steps_reported().get(trial_id, ()):
            return
        self.on_trial_result(trial_id, result)

    # Created on first use: a searcher restored from an older sweep's pickle lacks the attributes.
    def _steps_reported(self) -> dict:
        if not hasattr(self, "_reported_steps"):
            self._reported_steps = {}
        return self._reported_steps

    def _ended(self) -> set:
        if not hasattr(self, "_ended_trials"):
            self._ended_trials = set()
        return self._ended_trials


def _config_of(result: dict) -> dict:
    """The trial's config out of a result, nested or (as Tune passes it to searchers) flattened."""
    if isinstance(result.get("config"), dict):
        return result["config"]
    return {key.removeprefix("config/"): value for key, value in result.items() if key.startswith("config/")}


def make_scheduler(sweep: SweepSettings, space: dict):
    if sweep.scheduler == "none":
        return FIFOScheduler()
    if sweep.method == "active_loop":
        max_t = int(largest(space, "max_iterations")) + 1  # one report per round, round 0 included
    else:
        max_t = int(largest(space, "epochs"))
    return ASHAScheduler(metric=m.METRIC, mode=m.MODE, time_attr="training_iteration", max_t=max_t,
                         grace_period=min(sweep.grace_period, max_t), reduction_factor=2)


def run_config(sweep: SweepSettings, callbacks: list) -> tune.RunConfig:
    return tune.RunConfig(
        name=sweep.name,
        storage_path=sweep.storage_path,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=m.METRIC,
                                                checkpoint_score_order=m.MODE),
        failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
        callbacks=[*callbacks, TrimReplayedReports(sweep.storage_path), *tracker_callbacks(sweep.tracking)],
        verbose=0,  # ProgressLines prints one line per report instead of full tables
    )


def make_tuner(sweep: SweepSettings, space: dict, prepared: Prepared, experiment_dir: Path | None):
    return tune.Tuner(
        trainable(student_trial, prepared, sweep.cpus_per_trial),
        param_space=to_tune(space),
        tune_config=tune.TuneConfig(search_alg=make_searcher(sweep, space, experiment_dir),
                                    scheduler=make_scheduler(sweep, space), num_samples=sweep.num_samples,
                                    reuse_actors=REUSE_ACTORS),
        run_config=run_config(sweep, [sweep_progress(sweep.num_samples)]),
    )


def sweep_progress(total: int) -> ProgressLines:
    """One line per report of a sweep of `total` trials."""
    return ProgressLines(total, describe_report)


def describe_report(trial, result: dict) -> tuple[str, bool]:
    """A sweep's progress line for one report, and whether the trial ended with it: run to its end, or
    stopped by the scheduler (`done` on a report the trial did not plan as its last)."""
    step = f"round {result[m.ROUND]}" if m.ROUND in result else f"epoch {result.get(m.EPOCH)}"
    finished = reached_the_end(trial.config.get("method", ""), trial.config, result)
    stopped = bool(result.get("done")) and not finished  # done: the scheduler's decision to stop it
    note = ", stopped by the scheduler" if stopped else ""
    return (f"{trial.trial_id} {step}: val_accuracy {result[m.VAL_ACCURACY]:.3f}, labels_used "
            f"{result[m.LABELS_USED]}, expert_queries {result[m.EXPERT_QUERIES]}{note}", finished or stopped)
