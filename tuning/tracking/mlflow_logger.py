"""Ray Tune's MLflowLoggerCallback, fitted to these sweeps. It runs on the driver: one MLflow run per
trial, the trial's config as parameters, each report's numbers as metrics at step training_iteration.
What is changed, and why:
- a local store's experiment is created with its artifact root inside the store (Ray's callback would
  let MLflow put it in ./mlruns of whatever folder the sweep was started from);
- the artifact is the trial's last checkpoint, in the artifact folder `checkpoint` (the one analyze.py
  names in best_configs.json): Ray's save_artifact=True uploads the driver's staging folder of the trial,
  which holds its logs but not its checkpoints;
- a trial resumed by --resume continues its own run instead of starting a second one;
- a report's metrics go in one batch, and neither the config (already the parameters) nor text values
  are metrics: a study report's predictions are a string of digits that float() would turn into one
  meaningless number."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.result import TIMESTEPS_TOTAL, TRAINING_ITERATION
from ray.tune.utils import flatten_dict

from tuning.tracking.settings import Tracking

CHECKPOINT_ARTIFACT = "checkpoint"
# Creating a store's tables logs a dozen INFO lines (MLflow, alembic): library noise in a sweep's output.
QUIET = ("mlflow", "alembic")


class TrialLogger(MLflowLoggerCallback):
    def __init__(self, tracking: Tracking):
        super().__init__(tracking_uri=tracking.uri, experiment_name=tracking.experiment)
        self.tracking = tracking

    def setup(self, *args, **kwargs):
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
        if self.tracking.uri.startswith("sqlite:///") and "?" not in self.tracking.uri:
            # SQLite creates the database file, not its folder (MLflow 3.17 does, older versions do not).
            Path(self.tracking.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if self.tracking.artifact_location is not None:
            self._create_experiment()
        super().setup(*args, **kwargs)

    def _create_experiment(self) -> None:
        client = MlflowClient(self.tracking.uri)
        if client.get_experiment_by_name(self.tracking.experiment) is None:
            try:
                client.create_experiment(self.tracking.experiment, artifact_location=self.tracking.artifact_location)
            except MlflowException:  # created meanwhile by another sweep on the same store
                if client.get_experiment_by_name(self.tracking.experiment) is None:
                    raise

    def log_trial_start(self, trial):
        if trial not in self._trial_runs:
            resumed = self._run_of(trial)
            if resumed is not None:
                MlflowClient(self.tracking.uri).update_run(resumed, status="RUNNING")
                self._trial_runs[trial] = resumed
        super().log_trial_start(trial)

    def _run_of(self, trial) -> str | None:
        """The run an earlier process opened for this trial (Ray's callback names it after the trial and
        tags it trial_name; a trial keeps its name across --resume)."""
        runs = MlflowClient(self.tracking.uri).search_runs(
            [self.mlflow_util.experiment_id], filter_string=f"tags.trial_name = '{trial}'", max_results=1)
        return runs[0].info.run_id if runs else None

    def log_trial_result(self, iteration: int, trial, result: dict):
        """One log_batch per report, at Ray's step: Ray's callback logs each metric in a call of its own (a
        database transaction each), which took 0.5-0.8 s per report on 2 busy cores and made Tune warn."""
        step = result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION]
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in numbers(result)]
        MlflowClient(self.tracking.uri).log_batch(self._trial_runs[trial], metrics=metrics)

    def log_trial_end(self, trial, failed: bool = False):
        checkpoint = trial.checkpoint  # the latest: the one the trial's last val_accuracy was measured on
        if checkpoint is not None:
            run_id = self._trial_runs[trial]
            client = MlflowClient(self.tracking.uri)
            with checkpoint.as_directory() as folder:  # a local folder, or a download from a storage URI
                client.log_artifacts(run_id, folder, artifact_path=CHECKPOINT_ARTIFACT)
            client.set_tag(run_id, "checkpoint", checkpoint.path)
        super().log_trial_end(trial, failed)


def numbers(result: dict):
    """(name, float) of a report's numeric values, nested ones as a/b. Left out: the config (the run's
    parameters already) and text, which float() would read when it is a string of digits."""
    for key, value in flatten_dict({k: v for k, v in result.items() if k != "config"}).items():
        if isinstance(value, str | bytes):
            continue
        try:
            yield key, float(value)
        except (TypeError, ValueError):
            continue
