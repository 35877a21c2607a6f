"""tuning/sweep/search.py's searcher: TPE's random start-up fitted to the budget, and trials the scheduler
stopped told to the Optuna study as PRUNED (checked by reading the journal back with Optuna)."""

import optuna
import pytest
from ray import tune

from trainables import metrics as m
from tuning.records import search_kind
from tuning.sweep.search import (
    PruningOptunaSearch,
    SweepSettings,
    journal_storage,
    make_sampler,
    startup_trials,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---------------------------------------------------------------- the start-up share

def test_startup_is_a_quarter_of_the_trials_and_at_least_three():
    assert [startup_trials(n) for n in (1, 2, 8, 12, 13, 40)] == [3, 3, 3, 3, 4, 10]


def proposals(sampler, n: int) -> list[float]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda trial: -(trial.suggest_float("x", 0, 1) - 0.3) ** 2, n_trials=n)
    return [trial.params["x"] for trial in study.trials]


def test_tpe_leaves_random_search_after_its_startup_trials():
    """TPE's start-up proposals are its seeded RandomSampler's: with Optuna's default (10) a sweep of 8 is
    the random search exactly; with the budget's share (3 of 8) it departs from it at the 4th trial."""
    random = proposals(optuna.samplers.RandomSampler(seed=0), 8)
    assert proposals(optuna.samplers.TPESampler(seed=0), 8) == random  # the bug: default start-up
    fitted = proposals(make_sampler("tpe", 0, 8), 8)
    assert fitted[:3] == random[:3]
    assert fitted[3] != random[3]


def test_sweep_records_its_startup_and_the_report_says_which_search_it_was():
    sweep = SweepSettings("kd", "n", "/tmp", num_samples=8, max_concurrent=1, cpus_per_trial=1, seed=0)
    assert sweep.startup_trials == 3
    assert SweepSettings("kd", "n", "/tmp", 8, 1, 1, 0, sampler="random").startup_trials is None
    assert search_kind({"sampler": "tpe", "num_samples": 8, "startup_trials": 3}).startswith("TPE: random proposals "
                                                                                           "until 3 of 8")
    # a sweep recorded before startup_trials existed ran with Optuna's default of 10
    assert search_kind({"sampler": "tpe", "num_samples": 8}).startswith("random search in effect")
    assert search_kind({"sampler": "tpe", "num_samples": 2, "startup_trials": 3}).startswith("random search in effect")
    assert search_kind({"sampler": "random", "num_samples": 8}).startswith("random search")


# ---------------------------------------------------------------- pruned trials in the journal

def result(method: str, step: int, value: float, **extra) -> dict:
    """A result as Tune hands it to a searcher: flattened, the config under config/."""
    config = {"method": method, "epochs": 4, "max_iterations": 2}
    return {m.VAL_ACCURACY: value, "training_iteration": step, **extra,
            **{f"config/{key}": v for key, v in config.items()}}


@pytest.fixture()
def searcher(tmp_path):
    searcher = PruningOptunaSearch(space={"learning_rate": tune.loguniform(1e-4, 1e-2)}, metric=m.METRIC,
                                   mode=m.MODE, sampler=optuna.samplers.RandomSampler(seed=0),
                                   storage=journal_storage(tmp_path), study_name="s")
    return searcher, tmp_path


def load_trials(folder) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="s", storage=journal_storage(folder)).trials


def test_stopped_trial_is_pruned_with_every_value_reported(searcher):
    search, folder = searcher
    for trial_id in ("stopped", "finished", "errored", "pool_ran_out"):
        search.suggest(trial_id)
    # stopped by ASHA after epoch 2 of 4: Tune passes epoch 2 only to on_trial_complete
    search.on_trial_result("stopped", result("kd", 1, 0.30, epoch=1))
    search.on_trial_complete("stopped", result("kd", 2, 0.35, epoch=2))
    for epoch, value in ((1, 0.4), (2, 0.5), (3, 0.6), (4, 0.7)):
        search.on_trial_result("finished", result("kd", epoch, value, epoch=epoch))
    search.on_trial_complete("finished", result("kd", 4, 0.7, epoch=4))  # the duplicate Tune sends at the end
    search.on_trial_result("errored", result("kd", 1, 0.2, epoch=1))
    search.on_trial_complete("errored", None, error=True)
    # the Expert-Loop: round 1 of max_iterations 2, but the pool is empty: it ran to its end
    search.on_trial_result("pool_ran_out", result("active_loop", 1, 0.5, round=0, pool_left=8))
    search.on_trial_complete("pool_ran_out", result("active_loop", 2, 0.6, round=1, pool_left=0))
    stopped, finished, errored, pool = load_trials(folder)
    assert stopped.state == optuna.trial.TrialState.PRUNED
    assert stopped.intermediate_values == {1: 0.30, 2: 0.35} and stopped.value == 0.35
    assert finished.state == optuna.trial.TrialState.COMPLETE and finished.value == 0.7
    assert finished.intermediate_values == {1: 0.4, 2: 0.5, 3: 0.6, 4: 0.7}
    assert errored.state == optuna.trial.TrialState.FAIL
    assert pool.state == optuna.trial.TrialState.COMPLETE and pool.intermediate_values == {1: 0.5, 2: 0.6}


def test_loop_stopped_before_its_last_round_is_pruned(searcher):
    search, folder = searcher
    search.suggest("loop")
    search.on_trial_complete("loop", result("active_loop", 2, 0.6, round=1, pool_left=8))  # max_iterations 2
    (loop,) = load_trials(folder)
    assert loop.state == optuna.trial.TrialState.PRUNED and loop.intermediate_values == {2: 0.6}


def test_loop_its_own_stopping_rule_ended_is_complete(searcher):
    """stopped = 1: the trial's `stop` criterion ended it after round 1 of 2, its plan, no scheduler's decision:
    the study learns from its value as from any finished trial."""
    search, folder = searcher
    search.suggest("loop")
    search.on_trial_complete("loop", result("active_loop", 2, 0.6, round=1, pool_left=8, stopped=1))
    (loop,) = load_trials(folder)
    assert loop.state == optuna.trial.TrialState.COMPLETE and loop.value == 0.6
