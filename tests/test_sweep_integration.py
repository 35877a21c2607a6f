"""Smoke sweeps of every method through real Ray, read back with Ray's own ResultGrid."""

import json

import optuna
import pytest
from ray import tune

from trainables import metrics as m
from tuning import run
from tuning.analysis import results as analysis
from tuning.sweep.search import journal_storage

REQUIRED = (m.VAL_ACCURACY, m.VAL_MACRO_F1, m.VAL_LOSS, m.TEST_ACCURACY, m.TEST_MACRO_F1, m.LABELS_USED,
            m.TEACHER_LABELS, m.EXPERT_QUERIES, m.TRAIN_SECONDS)


def read_grid(path) -> tune.ResultGrid:
    return tune.ResultGrid(tune.ExperimentAnalysis(str(path)))


@pytest.fixture(scope="module")
def all_methods_sweep(smoke_sweeps_root):
    return smoke_sweeps_root / "smoke"


@pytest.mark.parametrize("method", ["supervised", "kd", "active_loop"])
def test_every_trial_reports_the_contract_metrics(all_methods_sweep, method):
    grid = read_grid(all_methods_sweep / method)
    assert len(grid) == 2 and grid.num_errors == 0
    for result in grid:
        assert result.config["method"] == method
        for name in REQUIRED:
            assert name in result.metrics, name
        assert 0.0 <= result.metrics[m.VAL_ACCURACY] <= 1.0


def test_label_accounting_per_method(all_methods_sweep):
    train_size = 96  # the smoke data's training split
    for result in read_grid(all_methods_sweep / "supervised"):
        assert result.metrics[m.LABELS_USED] == train_size
        assert result.metrics[m.TEACHER_LABELS] == 0 and result.metrics[m.EXPERT_QUERIES] == 0
    for result in read_grid(all_methods_sweep / "kd"):
        assert result.metrics[m.TEACHER_LABELS] == train_size and result.metrics[m.EXPERT_QUERIES] == train_size
    for result in read_grid(all_methods_sweep / "active_loop"):
        config, last = result.config, result.metrics
        assert last[m.LABELS_USED] == config["initial_pool_size"]  # the experts, not gold, label queries
        assert last[m.EXPERT_QUERIES] == config["query_size"] * last[m.ROUND]
        assert last[m.TEACHER_LABELS] == train_size


def test_one_report_per_epoch_or_round(all_methods_sweep):
    for result in read_grid(all_methods_sweep / "supervised"):
        history = result.metrics_dataframe
        assert list(history[m.EPOCH]) == list(range(1, len(history) + 1))
    for result in read_grid(all_methods_sweep / "active_loop"):
        history = result.metrics_dataframe
        assert list(history[m.ROUND]) == list(range(len(history)))


def test_checkpoints_hold_safetensors_and_the_run_config(all_methods_sweep):
    for result in read_grid(all_methods_sweep / "kd"):
        with result.checkpoint.as_directory() as folder:
            names = {path.name for path in __import__("pathlib").Path(folder).iterdir()}
            assert {"model.safetensors", "config.json", "run_config.json", "tokenizer.json"} <= names
            assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
            stored = json.loads((__import__("pathlib").Path(folder) / "run_config.json").read_text())
            assert stored["trial"] == {**stored["trial"], **{k: v for k, v in result.config.items()}}


def test_sweep_file_and_optuna_journal_written(all_methods_sweep):
    for method in ("supervised", "kd", "active_loop"):
        record = json.loads((all_methods_sweep / method / "sweep.json").read_text())
        assert record["sweep"]["method"] == method
        assert record["sweep"]["startup_trials"] == 3  # TPE's random start-up: 2 trials are a random search
        assert (all_methods_sweep / method / "optuna_journal.log").stat().st_size > 0


def test_an_existing_experiment_is_never_overwritten(all_methods_sweep, capsys):
    before = sorted(p.name for p in all_methods_sweep.iterdir())
    with pytest.raises(Exception, match="already exists"):
        run.main(["--method", "all", "--smoke-test", "--storage-path", str(all_methods_sweep.parent),
                  "--name", "smoke"])
    assert sorted(p.name for p in all_methods_sweep.iterdir()) == before


@pytest.fixture(scope="module")
def pruning_sweep(ray_session, tmp_path_factory):
    """A supervised smoke sweep where ASHA must stop a trial: one trial at a time, rungs at epoch 3 only,
    and the seeded random sampler proposes learning rate 5e-3 (learns), 5e-3, then 1e-7 (stays at chance),
    which the rung then stops below the two before it."""
    root = tmp_path_factory.mktemp("pruning")
    space = root / "space.yaml"
    space.write_text("learning_rate: {type: choice, values: [1.0e-7, 5.0e-3]}\n")
    assert run.main(["--method", "supervised", "--smoke-test", "--num-samples", "4", "--storage-path", str(root),
                     "--name", "pruning", "--space", str(space), "--sampler", "random", "--max-concurrent", "1",
                     "--grace-period", "3"]) == 0
    return root / "pruning"


def test_trials_asha_stopped_are_pruned_in_the_optuna_journal(pruning_sweep):
    """optuna-dashboard (the journal) and report.md (tuning/analysis/results.py) agree on every trial's state,
    and the journal holds every epoch's val_accuracy, the one ASHA stopped the trial on included."""
    study = optuna.load_study(study_name="pruning", storage=journal_storage(pruning_sweep))
    in_journal = sorted((t.state.name, tuple(t.intermediate_values[s] for s in sorted(t.intermediate_values)))
                        for t in study.trials)
    expected_state = {analysis.COMPLETED: "COMPLETE", analysis.STOPPED: "PRUNED"}
    in_report = sorted((expected_state[t.status], tuple(t.history[m.VAL_ACCURACY]))
                       for t in analysis.read_experiment(pruning_sweep).trials)
    assert in_journal == in_report
    assert [state for state, _ in in_journal].count("PRUNED") >= 1  # the sweep really stopped a trial
    pruned = next(t for t in study.trials if t.state.name == "PRUNED")
    assert pruned.value == pruned.intermediate_values[max(pruned.intermediate_values)]
