"""tuning/analyze.py: smoke sweeps read back, the best trial chosen on validation data, best_configs.json
fed to train.py, confirmation statistics, and the report files."""

import csv
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import optuna
import pandas as pd
import pytest
from ray import tune
from ray.exceptions import ActorDiedError, RayTaskError

from tests.conftest import run_cli
from trainables import metrics as m
from trainables.config import METHODS, TrialConfig
from trainables.errors import TrainingDiverged, UsageError
from tuning import analyze, cli, run, train
from tuning.analysis import results as a
from tuning.analysis.confirm import prepare_groups, read_correct, read_predictions


def read_grid(path) -> tune.ResultGrid:
    return tune.ResultGrid(tune.ExperimentAnalysis(str(path)))


@pytest.fixture(scope="module")
def storage(smoke_sweeps_root, tmp_path_factory):
    """Two sweeps: all three methods (the session's shared one), and a supervised one where learning
    rate 1e6 makes some trials diverge (TrainingDiverged: errored trials) while 5e-3 trains (the seeded
    random sampler picks both)."""
    root = smoke_sweeps_root
    space = tmp_path_factory.mktemp("space") / "space.yaml"
    space.write_text("learning_rate: {type: choice, values: [5.0e-3, 1.0e+6]}\n")
    assert run.main(["--method", "supervised", "--smoke-test", "--num-samples", "3", "--storage-path", str(root),
                     "--name", "bad", "--space", str(space), "--sampler", "random", "--max-concurrent", "2"]) == 0
    return root


@pytest.fixture(scope="module")
def confirmed(storage, tmp_path_factory):
    """The `--method all` sweep analysed with two confirmation seeds."""
    out = tmp_path_factory.mktemp("analysis")
    assert analyze.main([str(storage / "smoke"), "--out", str(out), "--confirm", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def discovered(storage):
    """Every experiment under the storage path, found without naming any, written to the default --out."""
    assert analyze.main(["--storage-path", str(storage)]) == 0
    return storage / "analysis"


def best_file(out) -> dict:
    return json.loads((out / analyze.BEST_FILE).read_text())


# ---------------------------------------------------------------- choosing

def planned_reports(config: dict) -> int:
    return config["max_iterations"] + 1 if config["method"] == "active_loop" else config["epochs"]


@pytest.mark.parametrize("method", METHODS)
def test_best_is_the_highest_last_val_accuracy(confirmed, storage, method):
    """Independently of analysis.py: the highest last val_accuracy among the trials that ran all their planned
    reports (or ended by their own stopping rule, or an Expert-Loop's pool ran out; any trial when none did), then
    the first in Ray's order."""
    folder = storage / "smoke" / method
    grid = [r for r in read_grid(folder) if r.error is None and m.VAL_ACCURACY in r.metrics]
    finished = [r for r in grid if r.metrics["training_iteration"] >= planned_reports(r.config)
                or r.metrics.get(m.STOPPED) == 1 or r.metrics.get("pool_left") == 0]
    candidates = finished or grid
    top = max(r.metrics[m.VAL_ACCURACY] for r in candidates)
    expected = next(r for r in candidates if r.metrics[m.VAL_ACCURACY] == top)
    stored = best_file(confirmed)
    entry = stored["methods"][method]
    assert entry["val_accuracy"] == top
    assert entry["trial_id"] == expected.metrics["trial_id"]
    assert entry["config"] == expected.config
    assert entry["test_accuracy"] == expected.metrics[m.TEST_ACCURACY]
    assert entry["test_macro_f1"] == expected.metrics[m.TEST_MACRO_F1]
    assert entry["data"] == json.loads((folder / "sweep.json").read_text())["data"]
    root = Path(stored["storage_path"])  # the experiments lie outside --storage-path: their common folder
    assert root == (storage / "smoke").resolve() and entry["experiment"] == method
    assert root / entry["checkpoint"] == Path(expected.checkpoint.path)  # the last report's checkpoint
    reached = expected.metrics[m.ROUND] if method == "active_loop" else expected.metrics[m.EPOCH]
    unit = "rounds" if method == "active_loop" else "epochs"
    assert entry["ran"][unit] == reached
    assert entry["ran"]["planned"] == expected.config["max_iterations" if method == "active_loop" else "epochs"]


def test_best_configs_shape(confirmed):
    stored = best_file(confirmed)
    datetime.fromisoformat(stored["created"])
    assert set(stored["methods"]) == set(METHODS)
    for entry in stored["methods"].values():
        assert set(entry) == {"config", "data", "val_accuracy", "test_accuracy", "test_macro_f1", "labels_used",
                              "teacher_labels", "validation_labels", "gold_labels", "expert_queries",
                              "teacher_labelled_rows", "experiment", "trial_id", "ran", "checkpoint",
                              "expert", "expert_calls", "expert_priced_cost", "expert_paid"}
    # Only the Expert-Loop has an expert; the smoke sweep's is the teachers, free (expert_price 0), one call per label.
    loop, kd = stored["methods"]["active_loop"], stored["methods"]["kd"]
    assert loop["expert"] == "teachers" and loop["expert_calls"] == loop["expert_queries"] > 0
    assert loop["expert_priced_cost"] == loop["expert_paid"] == 0 and kd["expert"] is None
    assert not any(p.name.endswith(".tmp") for p in confirmed.iterdir())  # written atomically


@pytest.mark.parametrize("method", METHODS)
def test_best_configs_round_trip_through_train(confirmed, tmp_path, method):
    entry = best_file(confirmed)["methods"][method]
    out = tmp_path / method
    assert train.main(["--method", method, "--config", str(confirmed / analyze.BEST_FILE), "--smoke-test",
                       "--out", str(out)]) == 0
    stored = json.loads((out / "run_config.json").read_text())
    # the sweep left bf16 to "auto": train.py records this machine's decision, as the sweep's trials did
    assert stored["trial"] == TrialConfig.from_dict(entry["config"]).decided().to_dict()
    assert stored["provenance"]["data"] == entry["data"]


def test_confirmation_trains_on_every_core(confirmed):
    """The sweep's trials ran on one CPU each; a confirmation run is alone and gets them all."""
    entry = best_file(confirmed)["methods"]["supervised"]
    assert entry["data"]["cpus_per_trial"] == 1
    (prepared,) = prepare_groups({"supervised": entry}, progress=lambda line: None).values()
    assert prepared.num_threads == os.cpu_count()


# ---------------------------------------------------------------- trial states

def test_classify_each_state():
    epochs = {"epochs": 4}
    assert a.classify("TERMINATED", "kd", epochs, {m.EPOCH: 4}, errored=False) == a.COMPLETED
    assert a.classify("TERMINATED", "kd", epochs, {m.EPOCH: 1}, errored=False) == a.STOPPED
    assert a.classify("ERROR", "kd", epochs, {m.EPOCH: 2}, errored=True) == a.ERRORED
    assert a.classify("RUNNING", "kd", epochs, {m.EPOCH: 2}, errored=False) == a.UNFINISHED
    assert a.classify("PENDING", "kd", epochs, {}, errored=False) == a.UNFINISHED
    loop = {"max_iterations": 3}
    assert a.classify("TERMINATED", "active_loop", loop, {m.ROUND: 3, "pool_left": 9}, False) == a.COMPLETED
    assert a.classify("TERMINATED", "active_loop", loop, {m.ROUND: 1, "pool_left": 9}, False) == a.STOPPED
    assert a.classify("TERMINATED", "active_loop", loop, {m.ROUND: 1, "pool_left": 0}, False) == a.COMPLETED


def test_counts_match_ray(storage):
    """Independently of classify: errored = Ray's errors; stopped = fewer reports than planned, no error."""
    for folder in [storage / "bad", *(storage / "smoke" / method for method in METHODS)]:
        experiment = a.read_experiment(folder)
        grid = read_grid(folder)
        stopped = 0
        for result in grid:
            if result.error is None:
                config = result.config
                planned = config["max_iterations"] + 1 if config["method"] == "active_loop" else config["epochs"]
                stopped += result.metrics["training_iteration"] < planned
        counts = a.status_counts(experiment.trials)
        assert counts[a.ERRORED] == grid.num_errors
        assert counts[a.STOPPED] == stopped
        assert counts[a.COMPLETED] == len(grid) - grid.num_errors - stopped
    assert read_grid(storage / "bad").num_errors >= 1  # the fixture really made errored trials


def test_an_interrupted_sweep_has_unfinished_trials(storage, tmp_path):
    """A sweep killed mid-way leaves RUNNING trials in Tune's state file: counted, not refused."""
    folder = tmp_path / "interrupted"
    shutil.copytree(storage / "bad", folder)
    state_file = next(folder.glob("experiment_state-*.json"))
    state = json.loads(state_file.read_text())
    for entry in state["trial_data"]:
        trial = json.loads(entry[0])
        if trial["status"] == "TERMINATED":
            entry[0] = json.dumps({**trial, "status": "RUNNING"})
    state_file.write_text(json.dumps(state))
    counts = a.status_counts(a.read_experiment(folder).trials)
    assert counts[a.UNFINISHED] >= 1 and counts[a.COMPLETED] == 0
    assert analyze.main([str(folder), "--out", str(tmp_path / "out")]) == 0


def test_error_line_names_the_exception_ray_kept():
    """From Ray's exception objects (as ResultGrid hands them back), not from the traceback's text."""
    message = "loss became nan (learning rate 1000000.0); stop"
    traceback = ("\x1b[36mray::ImplicitFunc.train()\x1b[39m\n  File \"x.py\", line 1\n"
                 f"trainables.errors.TrainingDiverged: {message}")
    remote = RayTaskError("ImplicitFunc.train", traceback, TrainingDiverged(message)).as_instanceof_cause()
    assert a.error_line(remote) == f"TrainingDiverged: {message}"
    died = ActorDiedError()  # the worker process was killed: no cause, a message over several lines
    assert a.error_line(died).startswith("ActorDiedError: ") and "\n" not in a.error_line(died)
    # Only an exception Ray could not pickle comes back as error.txt's text: its last line names it.
    assert a.error_line("Failure # 1 (occurred at 2026-11-29_10-00-00)\nTraceback ...\nValueError: bad\n") == \
        "ValueError: bad"


# ---------------------------------------------------------------- statistics

def test_confirmation_table(confirmed):
    report = (confirmed / "report.md").read_text()
    assert "## Confirmation: best settings retrained with 2 fresh seed(s) (1000..1001)" in report
    section = report.split("## Confirmation")[1].split("\n## ")[0]
    assert "bootstrap over seeds and test examples" in section and "confirm.csv" in section
    table = section.split("### Per-class recall")[0]
    headers = [cell.strip() for cell in table.split("| method |")[1].split("\n")[0].split("|")[:-1]]
    assert "test_macro_f1 (sd)" in headers and "95% t-interval over seeds" in headers
    assert "**Warning: intervals with 2 seed(s) understate seed-to-seed variation" in section
    rows = [line for line in table.splitlines() if line.startswith("| ") and "method" not in line]
    assert [row.split("|")[1].strip() for row in rows] == list(METHODS)
    for row in rows[1:]:  # kd and active_loop against supervised
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert cells[-3] != "-" and cells[-2].startswith("[")
        assert cells[-1] in ("within noise", "better", "worse")
    recall = section.split("### Per-class recall on test (mean over seeds)")[1]
    recall_rows = [line for line in recall.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert [line.split("|")[1].strip() for line in recall_rows] == list(METHODS)


def test_confirm_csv_pairs_every_method_on_the_same_seeds_and_examples(confirmed):
    """Each row's predictions reproduce its reported test accuracy, so the pairing can be checked."""
    frame = pd.read_csv(confirmed / analyze.CONFIRM_FILE)  # pandas' defaults: the digit strings stay text
    assert sorted(frame.groupby("method")["seed"].apply(list).to_dict().items()) == \
        sorted({method: [1000, 1001] for method in METHODS}.items())
    for row in frame.itertuples():
        correct = read_correct(row.test_correct)
        assert len(correct) == len(read_predictions(row.test_predictions)) == 24  # the smoke test split
        assert correct.mean() == pytest.approx(row.test_accuracy)


def test_confirm_refuses_data_that_changed_since_the_sweep(storage, tmp_path, capsys):
    """The sweep's checkpoints record the data fingerprint they trained on: another one now is refused in one
    line, exit 2, before any training and before anything is written."""
    folder = tmp_path / "sweep"
    shutil.copytree(storage / "bad", folder)
    for path in folder.rglob("run_config.json"):
        stored = json.loads(path.read_text())
        stored["provenance"]["data_fingerprint"] = "f" * 64
        path.write_text(json.dumps(stored))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:
        cli.main_guard(lambda: analyze.main([str(folder), "--out", str(out), "--confirm", "1"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(err) == 1
    assert "the data of supervised's sweep changed since it ran (data fingerprint ffffffffffff" in err[0]
    assert not out.exists()


def test_a_storage_folder_given_as_an_experiment_dir(storage, tmp_path):
    """`--method all` experiments lie two levels below the storage folder: found, not refused."""
    assert analyze.main([str(storage), "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    for name in ("smoke/supervised", "smoke/kd", "smoke/active_loop", "bad"):
        assert f"- `{name}` (" in report
    assert f"{storage.resolve()}/" not in report  # folders named relative to the storage path


# ---------------------------------------------------------------- importance

def synthetic_trials(values: list[tuple[float, int, float]], status=a.COMPLETED) -> list[a.TrialRecord]:
    return [a.TrialRecord("kd", f"t{i}", status, {"method": "kd", "learning_rate": lr, "batch_size": bs},
                          {m.VAL_ACCURACY: acc}, pd.DataFrame()) for i, (lr, bs, acc) in enumerate(values)]


SPACE = {"method": "kd", "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
         "batch_size": {"type": "choice", "values": [8, 16]}, "epochs": 3}


TEN = [(1e-3, 8, 0.5), (5e-3, 16, 0.8), (2e-4, 8, 0.4), (8e-3, 16, 0.9), (3e-4, 16, 0.55),
       (6e-3, 8, 0.75), (1e-4, 16, 0.45), (9e-3, 8, 0.85), (4e-4, 8, 0.5), (2e-3, 16, 0.7)]


def test_importance_over_the_searched_settings():
    importances = a.param_importances(SPACE, synthetic_trials(TEN))
    assert set(importances) == {"learning_rate", "batch_size"}  # epochs was fixed: not searched
    assert sum(importances.values()) == pytest.approx(1.0)
    assert importances["learning_rate"] > importances["batch_size"]  # accuracy follows the learning rate


def test_importance_needs_ten_completed_trials_or_two_per_setting():
    assert a.min_trials_for_importance(2) == 10 and a.min_trials_for_importance(11) == 22
    nine = a.param_importances(SPACE, synthetic_trials(TEN[:9]))
    assert nine.startswith(a.NOT_ENOUGH) and "9 completed trial(s) over 2 searched setting(s)" in nine
    assert "at least 10" in nine and "\n" not in nine  # one line saying why
    stopped = synthetic_trials(TEN, status=a.STOPPED)  # ASHA's trials ran shorter: not counted
    assert a.param_importances(SPACE, stopped).startswith(a.NOT_ENOUGH)
    same = synthetic_trials([(1e-3, 8, 0.5)] * 10)
    assert a.param_importances(SPACE, same).startswith(a.NOT_ENOUGH)
    flat = synthetic_trials([(lr, bs, 0.5) for lr, bs, _ in TEN])
    assert a.param_importances(SPACE, flat).startswith(a.NOT_ENOUGH)  # every trial scored the same


# ---------------------------------------------------------------- files written

def test_files_written_and_one_csv_row_per_trial(discovered, storage):
    names = {p.name for p in discovered.iterdir()}
    assert {"best_configs.json", "report.md", "results.csv", "comparison.png", "learning_curves.png"} <= names
    assert {"slice_kd.png", "slice_active_loop.png"} <= names
    assert sum(name.startswith("slice_supervised_") for name in names) == 2  # smoke and bad
    with open(discovered / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    folders = [storage / "bad", *(storage / "smoke" / method for method in METHODS)]
    assert len(rows) == sum(len(read_grid(folder)) for folder in folders)
    assert len({(row["experiment_path"], row["trial_id"]) for row in rows}) == len(rows)
    report = (discovered / "report.md").read_text()
    for name in names - {"best_configs.json", "report.md", "results.csv"}:
        assert f"({name})" in report  # every plot is linked


def test_slice_plots_are_drawn_from_each_sweeps_optuna_journal(discovered, storage):
    """Optuna's slice plot of the study the searcher stored, one per experiment (every one of these has a
    completed trial: the first trial at each ASHA rung is never stopped); two trials are too few for an
    importance plot, and the report says so with the journal's count."""
    report = (discovered / "report.md").read_text()
    plotted = {"kd": "slice_kd.png", "active_loop": "slice_active_loop.png",
               "supervised": "slice_supervised_smoke-supervised.png"}
    for method, png in plotted.items():
        folder = storage / "smoke" / method
        journal = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(folder / "optuna_journal.log")))
        done = [t for t in optuna.load_study(study_name=method, storage=journal).trials
                if t.state == optuna.trial.TrialState.COMPLETE]
        stored = a.completed(a.stored_study(a.read_experiment(folder)))
        assert [(t.number, t.value, t.params) for t in stored] == [(t.number, t.value, t.params) for t in done]
        assert done and (discovered / png).read_bytes().startswith(b"\x89PNG") and f"({png})" in report
        assert (f"`smoke/{method}`: no importance plot: not enough trials: {len(done)} completed trial(s)"
                in report)


def test_errored_trials_counted_and_explained(discovered, storage):
    errors = read_grid(storage / "bad").num_errors
    report = (discovered / "report.md").read_text()
    trials_table = report.split("## Trials")[1].split("\n## ")[0]
    supervised = next(line for line in trials_table.splitlines() if line.startswith("| supervised |"))
    headers = [cell.strip() for cell in trials_table.split("| method |")[1].split("\n")[0].split("|")]
    cells = [cell.strip() for cell in supervised.split("|")[2:]]
    assert cells[headers.index("errored")] == str(errors)
    assert "TrainingDiverged: loss became nan" in report
    with open(discovered / "results.csv", newline="") as handle:
        errored = [row for row in csv.DictReader(handle) if row["status"] == "errored"]
    assert len(errored) == errors and all("TrainingDiverged" in row["error"] for row in errored)


# ---------------------------------------------------------------- bad input

def test_a_folder_that_is_not_an_experiment(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main_guard(lambda: analyze.main([str(tmp_path)]))
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(err) == 1 and "not an experiment" in err[0]
    assert not any(tmp_path.iterdir())  # nothing written
    with pytest.raises(UsageError, match="does not exist"):
        analyze.main([str(tmp_path / "missing")])


def test_no_experiments_found(tmp_path):
    with pytest.raises(UsageError, match="no experiments"):
        analyze.main(["--storage-path", str(tmp_path)])
    with pytest.raises(UsageError, match="does not exist"):
        analyze.main(["--storage-path", str(tmp_path / "missing")])


def test_cli_reads_without_a_ray_cluster(storage, session_cache, tmp_path):
    """A fresh process, as a user runs it: reading the experiment starts no Ray."""
    done = run_cli("analyze.py", str(storage / "bad"), "--out", str(tmp_path / "out"), cache=session_cache)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Started a local Ray instance" not in done.stdout + done.stderr
    assert "TrainingDiverged" in (tmp_path / "out" / "report.md").read_text()


def test_an_out_folder_under_a_file_is_refused_before_anything(storage, tmp_path):
    """It was found at the first file written (a FileExistsError traceback), after --confirm's retraining."""
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(UsageError, match=f"--out {afile}/out: {afile} is a file, not a folder"):
        analyze.main([str(storage / "bad"), "--out", str(afile / "out"), "--confirm", "1"])
