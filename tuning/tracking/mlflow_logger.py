"""One MLflow run per trial, logged from the driver: the trial's config as parameters, each report's numbers as
metrics at step training_iteration, its last checkpoint as the artifact folder `checkpoint`.

Built on Ray Tune's public LoggerCallback and MLflow's client, not on Ray's MLflowLoggerCallback: continuing
a resumed trial's run there meant writing into its private `_trial_runs`. What it does, and why:
- a run per trial, named and tagged (trial_name) after the trial, as Ray's callback names them;
- a local store's experiment is created with its artifact root inside the store (MLflow would otherwise put it
  in ./mlruns of whatever folder the sweep was started from);
- the artifact is the trial's last checkpoint, in the artifact folder `checkpoint` (the one analyze.py names
  in best_configs.json);
- a trial resumed by --resume continues its own run instead of starting a second one;
- a report's metrics go in one batch (one database transaction: a call per metric took 0.5-0.8 s per report
  on 2 busy cores and made Tune warn), and neither the config (already the parameters) nor text values are
  metrics: a study report's predictions are a string of digits that float() would turn into one
  meaningless number."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray.tune.logger import LoggerCallback
from ray.tune.result import TIMESTEPS_TOTAL, TRAINING_ITERATION

from tuning.tracking.settings import Tracking

CHECKPOINT_ARTIFACT = "checkpoint"
TRIAL_NAME = "trial_name"  # the tag that finds a trial's run again on --resume
# Creating a store's tables logs a dozen INFO lines (MLflow, alembic): library noise in a sweep's output.
QUIET = ("mlflow", "alembic")


class TrialLogger(LoggerCallback):
    """Runs on the driver. Tuner.restore brings it back by unpickling; `setup` starts it afresh, and a
    resumed trial's run is found again by its trial_name tag."""

    def __init__(self, tracking: Tracking):
        self.tracking = tracking
        self.experiment_id: str | None = None  # set by setup
        self.runs: dict[str, str] = {}  # str(trial) -> MLflow run id, for the trials started since setup

    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking.uri)

    def setup(self, *args, **kwargs):
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
        if self.tracking.uri.startswith("sqlite:///") and "?" not in self.tracking.uri:
            # SQLite creates the database file, not its folder (MLflow 3.17 does, older versions do not).
            Path(self.tracking.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.experiment_id, self.runs = self._experiment(), {}

    def _experiment(self) -> str:
        """The experiment's id, created (with the store's artifact root, when there is one) if missing."""
        client = self.client()
        found = client.get_experiment_by_name(self.tracking.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(self.tracking.experiment, artifact_location=self.tracking.artifact_location)
        except MlflowException:  # created meanwhile by another sweep on the same store
            found = client.get_experiment_by_name(self.tracking.experiment)
            if found is None:
                raise
            return found.experiment_id

    def log_trial_start(self, trial):
        name = str(trial)
        client = self.client()
        if name not in self.runs:
            resumed = self._run_of(name)
            if resumed is not None:
                client.update_run(resumed, status="RUNNING")
                self.runs[name] = resumed
            else:
                self.runs[name] = client.create_run(self.experiment_id, run_name=name,
                                                    tags={TRIAL_NAME: name}).info.run_id
        # As Ray's callback logged them (each value as str()); MLflow's client splits a long list into batches.
        params = [Param(key, str(value)) for key, value in flatten(trial.config).items()]
        client.log_batch(self.runs[name], params=params)

    def _run_of(self, name: str) -> str | None:
        """The run an earlier process opened for this trial (a trial keeps its name across --resume)."""
        runs = self.client().search_runs([self.experiment_id], filter_string=f"tags.{TRIAL_NAME} = '{name}'",
                                         max_results=1)
        return runs[0].info.run_id if runs else None

    def log_trial_result(self, iteration: int, trial, result: dict):
        step = result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION]
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in numbers(result)]
        self.client().log_batch(self.runs[str(trial)], metrics=metrics)

    def log_trial_end(self, trial, failed: bool = False):
        run_id, client = self.runs[str(trial)], self.client()
        checkpoint = trial.checkpoint  # the latest: the one the trial's last val_accuracy was measured on
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:  # a local folder, or a download from a storage URI
                client.log_artifacts(run_id, folder, artifact_path=CHECKPOINT_ARTIFACT)
            client.set_tag(run_id, "checkpoint", checkpoint.path)
        client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def flatten(values: dict, prefix: str = "") -> dict:
    """Nested dicts as one level, keys joined by '/' (a study's config: point/arm, template/budgets, ...);
    lists and other values stay as they are."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def numbers(result: dict):
    """(name, float) of a report's numeric values, nested ones as a/b. Left out: the config (the run's
    parameters already) and text, which float() would read when it is a string of digits."""
    for key, value in flatten({k: v for k, v in result.items() if k != "config"}).items():
        if isinstance(value, str | bytes):
            continue
        try:
            yield key, float(value)
        except (TypeError, ValueError):
            continue
