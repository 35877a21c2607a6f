"""--tracker mlflow: the session's smoke sweep (conftest.py) logs to a real local MLflow store, read back
here with MLflow's own client; bad tracking input ends with status 2 before Ray starts."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray import cloudpickle, tune

from tests.conftest import exit_and_line
from tuning import cli, run, study
from tuning.tracking import settings as tracking
from tuning.tracking.mlflow_logger import CHECKPOINT_ARTIFACT, TrialLogger


def client_of(store: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{store / tracking.DATABASE}")


def reports(trial: Path) -> list[dict]:
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()]


def test_every_trial_is_one_run_with_its_settings_metrics_per_step_and_checkpoint(smoke_sweeps_root,
                                                                                   smoke_mlflow_store):
    client = client_of(smoke_mlflow_store)
    experiment = client.get_experiment_by_name("smoke")  # --experiment-name defaults to --name
    assert experiment.artifact_location == (smoke_mlflow_store / tracking.ARTIFACTS).as_uri()
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    trials = [folder for folder in (smoke_sweeps_root / "smoke").glob("*/*") if (folder / "result.json").is_file()]
    assert len(runs) == len(trials) == 6  # three methods x two trials, one run each
    for trial in trials:
        lines = reports(trial)
        (run_,) = [r for r in runs if r.data.tags["trial_name"].endswith(lines[0]["trial_id"])]
        assert run_.info.status == "FINISHED"
        space = json.loads((trial.parent / "sweep.json").read_text())["space"]
        config = json.loads((trial / "params.json").read_text())
        searched = [key for key, value in space.items() if isinstance(value, dict)]
        assert searched and all(run_.data.params[key] == str(config[key]) for key in searched)
        assert run_.data.params["method"] == config["method"]
        history = sorted(client.get_metric_history(run_.info.run_id, "val_accuracy"), key=lambda h: h.step)
        # one entry per report (an epoch, or a round of the Expert-Loop), at step training_iteration
        assert [(h.step, h.value) for h in history] == [(r["training_iteration"], r["val_accuracy"]) for r in lines]
        if config["method"] == "active_loop":
            rounds = client.get_metric_history(run_.info.run_id, "round")
            assert sorted(h.value for h in rounds) == [r["round"] for r in lines]
        assert not any(key.startswith("config/") for key in run_.data.metrics)  # the config is in params
        # the artifact: the trial's last checkpoint, file for file
        checkpoint = Path(run_.data.tags["checkpoint"])
        assert checkpoint.parent == trial and checkpoint.is_dir()
        logged = {Path(a.path).name for a in client.list_artifacts(run_.info.run_id, CHECKPOINT_ARTIFACT)}
        assert logged == {p.name for p in checkpoint.iterdir()} and "config.json" in logged


class FakeTrial:
    """What the callback reads of a Ray Tune trial."""

    def __init__(self, name: str, checkpoint=None):
        self.name, self.config, self.checkpoint = name, {"method": "kd", "learning_rate": 0.001}, checkpoint

    def __str__(self):
        return self.name

    def __hash__(self):
        return hash(self.name)

    def __eq__(self, other):
        return str(other) == self.name


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One local store for the tests below (creating its tables takes seconds), an experiment each."""
    return tmp_path_factory.mktemp("mlflow") / "store"


def test_a_restored_logger_continues_the_run_of_a_resumed_trial(tmp_path, store):
    """Tuner.restore unpickles the callbacks saved in tuner.pkl: the resumed trial's reports go on in its
    run. Text values (a study's predictions) and the config are not logged as metrics."""
    settings = tracking.local_store(store, "resumed")
    logger = TrialLogger(settings)
    logger.setup()
    trial = FakeTrial("student_trial_abcde_00000")
    logger.log_trial_start(trial)
    result = {"training_iteration": 1, "val_accuracy": 0.5, "predictions": "0123", "config": {"epochs": 2}}
    logger.log_trial_result(1, trial, result)

    restored = pickle.loads(cloudpickle.dumps(logger))
    restored.setup()
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"weights")
    trial = FakeTrial(trial.name, tune.Checkpoint.from_directory(str(tmp_path / "ckpt")))
    restored.log_trial_start(trial)
    restored.log_trial_result(2, trial, {**result, "training_iteration": 2, "val_accuracy": 0.75})
    restored.log_trial_end(trial)

    client = client_of(store)
    (run_,) = client.search_runs([client.get_experiment_by_name("resumed").experiment_id])
    history = client.get_metric_history(run_.info.run_id, "val_accuracy")
    assert sorted((h.step, h.value) for h in history) == [(1, 0.5), (2, 0.75)]
    assert set(run_.data.metrics) == {"training_iteration", "val_accuracy"}
    assert run_.data.params == {"method": "kd", "learning_rate": "0.001"} and run_.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(run_.info.run_id, CHECKPOINT_ARTIFACT)] == [
        f"{CHECKPOINT_ARTIFACT}/model.safetensors"]
    assert (store / tracking.ARTIFACTS).is_dir()  # the artifacts stay in the store's folder


def test_a_nested_config_is_flattened_into_parameters_and_a_failed_trial_ends_failed(store):
    """A study's config nests (point/arm, template/budgets): one parameter per leaf, named by its path, the
    value as str() gives it (Ray's MLflowLoggerCallback named them so); more than one batch of 100 of them."""
    logger = TrialLogger(tracking.local_store(store, "nested"))
    logger.setup()
    trial = FakeTrial("study_trial_abcde_00001")
    trial.config = {"point": {"arm": "kd_all", "seed": 3}, "template": {"budgets": [8, 16], "recipe": {"alpha": 0.5}},
                    **{f"p{i}": i for i in range(119)}}
    logger.log_trial_start(trial)
    logger.log_trial_end(trial, failed=True)

    client = client_of(store)
    (run_,) = client.search_runs([client.get_experiment_by_name("nested").experiment_id])
    expected = {"point/arm": "kd_all", "point/seed": "3", "template/budgets": "[8, 16]",
                "template/recipe/alpha": "0.5", **{f"p{i}": str(i) for i in range(119)}}
    assert run_.data.params == expected and len(expected) == 123
    assert run_.info.status == "FAILED" and run_.info.run_name == "study_trial_abcde_00001"
    assert run_.data.tags["trial_name"] == "study_trial_abcde_00001"
    assert client.list_artifacts(run_.info.run_id) == []  # no checkpoint, no artifact


def test_the_default_store_is_mlruns_in_the_storage_path(tmp_path, monkeypatch):
    args = run.parse_args(["--tracker", "mlflow"])
    found = tracking.tracking_settings(args, "sweep-1", str(tmp_path / "results"))
    store = tmp_path / "results" / tracking.LOCAL_STORE
    assert found == tracking.Tracking(f"sqlite:///{store / tracking.DATABASE}", "sweep-1",
                                      (store / tracking.ARTIFACTS).as_uri())
    monkeypatch.chdir(tmp_path)  # a storage URI: the store is ./mlruns
    assert tracking.tracking_settings(args, "s", "s3://bucket/x").uri.startswith(f"sqlite:///{tmp_path}/mlruns/")
    args = run.parse_args(["--tracker", "mlflow", "--tracking-uri", "sqlite:///here.db", "--experiment-name", "e"])
    assert tracking.tracking_settings(args, "s", "r") == tracking.Tracking(f"sqlite:///{tmp_path}/here.db", "e")
    assert tracking.tracking_settings(run.parse_args([]), "s", "r") is None  # --tracker none is the default


BAD = {
    "unknown tracker": (["--tracker", "wandb"], "argument --tracker: invalid choice: 'wandb'"),
    "uri without tracker": (["--tracking-uri", "{tmp}/store"], "--tracking-uri goes with --tracker mlflow"),
    "name without tracker": (["--experiment-name", "e"], "--experiment-name goes with --tracker mlflow"),
    "unknown scheme": (["--tracker", "mlflow", "--tracking-uri", "ftp://host/x"], "no tracking store for 'ftp:'"),
    "sqlite naming a folder": (["--tracker", "mlflow", "--tracking-uri", "sqlite:///{tmp}"], "is not a file"),
    "tracker none with a uri": (["--tracker", "none", "--tracking-uri", "{tmp}/store"],
                                "--tracking-uri goes with --tracker mlflow"),
    "sqlite without a file": (["--tracker", "mlflow", "--tracking-uri", "sqlite://"], "expected sqlite:///FILE.db"),
    "server without host": (["--tracker", "mlflow", "--tracking-uri", "http://"], "names no server"),
    "file store": (["--tracker", "mlflow", "--tracking-uri", "file://{tmp}/store"], "MLFLOW_ALLOW_FILE_STORE=true"),
    "empty experiment": (["--tracker", "mlflow", "--experiment-name", " "], "--experiment-name is empty"),
    "tracker on resume": (["--resume", "--name", "x", "--tracker", "mlflow"], "cannot change on --resume"),
}


@pytest.mark.parametrize("command", ["run", "study"])
@pytest.mark.parametrize("case", BAD)
def test_bad_tracking_input_exits_2_before_ray(case, command, tmp_path, capsys, monkeypatch, no_ray, session_cache):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in BAD[case][0]]
    main = run.main if command == "run" else study.main
    code, line = exit_and_line(main, ["--smoke-test", "--storage-path", str(tmp_path / "results"), *argv], capsys)
    assert code == 2 and BAD[case][1] in line, line
    assert list(tmp_path.iterdir()) == []  # nothing written: no results, no store


def test_asking_for_mlflow_without_it_installed_exits_2(tmp_path, capsys, monkeypatch, no_ray):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name, *rest: None if name == "mlflow" else real(name, *rest))
    with pytest.raises(SystemExit) as stopped:
        cli.main_guard(lambda: run.main(["--smoke-test", "--tracker", "mlflow", "--storage-path", str(tmp_path)]))
    assert stopped.value.code == 2 and "needs MLflow: pip install mlflow-skinny" in capsys.readouterr().err


def test_a_file_is_not_a_store_folder(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(cli.UsageError, match="is a file, not a folder"):
        tracking.resolve(str(tmp_path / "taken"), "e")
