"""Experiment tracking flags (`--tracker mlflow`) for run.py and study.py, checked before Ray starts.

MLflow itself is imported only by tuning/tracking/mlflow_logger.py, when a sweep with a tracker begins
(tuning/tracking/callbacks.py), so `--help` and sweeps without a tracker never load it."""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from trainables.errors import UsageError
from tuning.cli import check_can_create

TRACKERS = ("none", "mlflow")
LOCAL_STORE = "mlruns"  # the default store's folder, inside --storage-path
DATABASE = "mlflow.db"  # a local store: FOLDER/mlflow.db holds runs, params and metrics ...
ARTIFACTS = "artifacts"  # ... and FOLDER/artifacts/ the checkpoints
# MLflow's own tracking stores (mlflow/tracking/_tracking_service/utils.py), plugins aside. A database
# scheme may name its driver after a '+' (postgresql+psycopg2).
SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "file")


@dataclass(frozen=True)
class Tracking:
    """Where and under which MLflow experiment a sweep's trials are logged (recorded in sweep.json)."""

    uri: str  # an MLflow tracking URI; a local store's is absolute, so a resumed sweep finds it from anywhere
    experiment: str  # the MLflow experiment; created if missing, reused (runs added) if it exists
    artifact_location: str | None = None  # a new experiment's artifact root; None: MLflow's (or its server's)


def add_tracker_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """`what`: "sweep" or "study", the thing --experiment-name defaults to the name of."""
    group = parser.add_argument_group("experiment tracking (decided when the " + what + " starts; --resume "
                                      "keeps it)")
    group.add_argument("--tracker", default=None, choices=TRACKERS,
                       help="mlflow: one MLflow run per trial with its settings as parameters, every report (one "
                            "per epoch, budget or Expert-Loop round) as metrics, and its last checkpoint as the "
                            "artifact folder 'checkpoint' (needs mlflow-skinny); default none")
    group.add_argument("--tracking-uri", default=None, metavar="FOLDER_OR_URI",
                       help=f"a folder (a local store: FOLDER/{DATABASE} and FOLDER/{ARTIFACTS}/, created if "
                            "missing), or an MLflow tracking URI: sqlite:///FILE.db, http(s)://HOST:PORT, ...; "
                            f"default: the local store STORAGE_PATH/{LOCAL_STORE} (./{LOCAL_STORE} when "
                            "--storage-path is a URI)")
    together = "; `--method all` logs its three methods' trials to one experiment, the method a parameter"
    group.add_argument("--experiment-name", default=None,
                       help=f"MLflow experiment (default: the {what}'s --name{together if what == 'sweep' else ''})")


def given(args: argparse.Namespace) -> list[str]:
    """The tracking flags the user typed (all default to None, meaning not given)."""
    flags = {"--tracker": args.tracker, "--tracking-uri": args.tracking_uri, "--experiment-name": args.experiment_name}
    return [flag for flag, value in flags.items() if value is not None]


def tracking_settings(args: argparse.Namespace, name: str, storage_path: str) -> Tracking | None:
    """The checked tracking settings of a new sweep or study named `name`, or None without a tracker."""
    if (args.tracker or "none") == "none":
        stray = [flag for flag in given(args) if flag != "--tracker"]  # --tracker none itself is fine
        if stray:
            raise UsageError(f"{stray[0]} goes with --tracker mlflow")
        return None
    if importlib.util.find_spec("mlflow") is None:
        raise UsageError("--tracker mlflow needs MLflow: pip install mlflow-skinny (or the project's [mlflow] extra)")
    experiment = name if args.experiment_name is None else args.experiment_name.strip()
    if not experiment:
        raise UsageError("--experiment-name is empty")
    if args.tracking_uri is None:
        base = Path.cwd() if "://" in str(storage_path) else Path(storage_path).expanduser().resolve()
        return local_store(base / LOCAL_STORE, experiment)
    return resolve(args.tracking_uri.strip(), experiment)


def local_store(folder: Path, experiment: str) -> Tracking:
    check_can_create(folder, "--tracking-uri")  # not when the first trial logs, after the teachers are trained
    return Tracking(f"sqlite:///{folder / DATABASE}", experiment, (folder / ARTIFACTS).as_uri())


def resolve(text: str, experiment: str) -> Tracking:
    scheme = urlsplit(text).scheme.lower().partition("+")[0]
    if not scheme:
        return local_store(Path(text).expanduser().resolve(), experiment)
    if scheme not in SCHEMES:
        raise UsageError(f"--tracking-uri {text!r}: MLflow has no tracking store for '{scheme}:' (give a folder, "
                         "sqlite:///FILE.db or http(s)://HOST:PORT)")
    if scheme == "file" and not _file_store_allowed():
        raise UsageError(f"--tracking-uri {text!r}: MLflow 3 refuses its file store unless "
                         "MLFLOW_ALLOW_FILE_STORE=true; give a plain folder instead (a local SQLite store)")
    if scheme == "sqlite":
        return Tracking(_sqlite(text), experiment)
    if scheme in ("http", "https") and not urlsplit(text).netloc:
        raise UsageError(f"--tracking-uri {text!r} names no server (expected {scheme}://HOST:PORT)")
    return Tracking(text, experiment)


def _sqlite(text: str) -> str:
    """sqlite:///FILE.db with FILE made absolute (its folder is created when the sweep begins)."""
    if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
        raise UsageError(f"--tracking-uri {text!r}: expected sqlite:///FILE.db (sqlite:////ABSOLUTE/FILE.db)")
    path = text[len("sqlite:///"):]
    if "?" in path:  # driver options: leave the URI as the user wrote it
        return text
    database = Path(path).expanduser().resolve()
    if database.exists() and not database.is_file():
        raise UsageError(f"--tracking-uri {text!r}: {database} is not a file")
    check_can_create(database.parent, "--tracking-uri")  # the folder MLflow creates the database in
    return f"sqlite:///{database}"


def _file_store_allowed() -> bool:
    """MLflow's own switch: versions without MLFLOW_ALLOW_FILE_STORE accept their file store as it is."""
    from mlflow import environment_variables  # noqa: PLC0415 (mlflow is installed: checked before)

    switch = getattr(environment_variables, "MLFLOW_ALLOW_FILE_STORE", None)
    return switch is None or bool(switch.get())


def describe(tracking: Tracking) -> str:
    return (f"MLflow: every trial is a run of experiment '{tracking.experiment}' in {tracking.uri} "
            f"(browse: mlflow ui --backend-store-uri {tracking.uri}; the UI needs the full mlflow package)")
