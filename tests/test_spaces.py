"""tuning/sweep/spaces.py: search spaces with overrides, their checks, Tune domains and starting points."""

from __future__ import annotations

import numpy as np
import pytest

from search_spaces import MODULES
from trainables.errors import UsageError
from trainables.query import STRATEGIES
from tuning.sweep.spaces import build_space, read_space_file, starting_points, to_tune

SPACE_FILE = """
learning_rate: {type: loguniform, low: 1e-4, high: 5e-3}   # 1e-4 without a dot: YAML 1.1 reads a string
round_steps: 300
strategy: {type: choice, values: [margin, entropy]}
"""


def test_overrides_from_a_yaml_file_and_fixed_values(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE_FILE)
    overrides = read_space_file(path)
    assert overrides["learning_rate"] == {"type": "loguniform", "low": 1e-4, "high": 5e-3}
    space = build_space("active_loop", False, overrides, fixed={"batch_size": 8, "strategy": "random"})
    assert space["method"] == "active_loop"
    assert space["learning_rate"] == {"type": "loguniform", "low": 1e-4, "high": 5e-3}
    assert space["round_steps"] == 300 and space["batch_size"] == 8
    assert space["strategy"] == "random"  # --fix wins over the file
    assert space["alpha"] == MODULES["active_loop"].SPACE["alpha"]  # untouched entries stay


def test_a_json_file_is_yaml_too(tmp_path):
    path = tmp_path / "space.json"
    path.write_text('{"epochs": {"type": "int", "low": 1, "high": 2}}')
    assert build_space("supervised", False, read_space_file(path))["epochs"] == {"type": "int", "low": 1, "high": 2}


def test_the_strategy_choice_holds_known_strategies_issue_24s_among_them():
    values = MODULES["active_loop"].SPACE["strategy"]["values"]
    assert set(values) <= set(STRATEGIES) and len(set(values)) == len(values)
    assert {"bald", "badge", "coreset", "contrastive", "margin+balanced"} <= set(values)
    assert build_space("active_loop", False)["strategy"]["values"] == values


def test_smoke_spaces_are_small():
    space = build_space("active_loop", True)
    assert space["batch_size"] == 8 and space["round_steps"] == 64 and "epochs" not in space
    assert space["initial_pool_size"]["high"] <= 32
    assert "initial_pool_size" not in build_space("supervised", True)


@pytest.mark.parametrize(("method", "overrides", "message"), [
    ("supervised", {"learnig_rate": 1e-3}, "unknown search-space parameter.*learnig_rate"),
    ("supervised", {"epochs": {"type": "int", "low": 5, "high": 2}}, "epochs: empty range 5..2"),
    ("supervised", {"learning_rate": {"type": "uniform", "low": 1e-3, "high": 1e-3}}, "learning_rate: empty range"),
    ("supervised", {"learning_rate": {"type": "loguniform", "low": 0, "high": 1e-3}}, "loguniform needs low > 0"),
    ("kd", {"alpha": {"type": "uniform", "low": 0.5, "high": 1.5}}, "alpha must be in"),
    ("kd", {"temperature": {"type": "uniform", "low": 0, "high": 2}}, "temperature must be > 0"),
    ("active_loop", {"strategy": {"type": "choice", "values": ["margin", "greedy"]}}, "unknown strategy 'greedy'"),
    ("active_loop", {"strategy": {"type": "choice", "values": []}}, "choice has no values"),
    ("supervised", {"epochs": {"type": "normal", "low": 1, "high": 2}}, "unknown type 'normal'"),
    ("supervised", {"batch_size": 0}, "batch_size must be >= 1"),
    ("active_loop", {"round_steps": -5}, "round_steps must be >= 0"),
    # a round trains round_steps steps: epochs would do nothing, unless round_steps is fixed at 0
    ("active_loop", {"epochs": 3}, "epochs does nothing in an Expert-Loop sweep while round_steps is set"),
    ("active_loop", {"epochs": 3, "round_steps": 500}, "epochs does nothing"),
    # a space file naming the human expert: refused as --expert human is
    ("active_loop", {"expert": "human"}, "--expert human pauses the run for a person"),
    ("active_loop", {"expert": " Human "}, "--expert human pauses the run for a person"),
    # ranges a trial could not take, checked before Ray builds the tuner
    ("supervised", {"epochs": {"type": "choice", "values": 8}}, "epochs: choice values must be a list, got 8"),
    ("supervised", {"epochs": {"type": "int", "low": 1, "high": "x"}},
     "epochs: int needs finite numbers for low and high, got 1..'x'"),
    ("supervised", {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": float("inf")}},
     r"learning_rate: loguniform needs finite numbers for low and high, got 0.0001..inf"),
    ("supervised", {"learning_rate": {"type": "uniform", "low": True, "high": 2}}, "needs finite numbers"),
    # query_size against the pool_sample_size of the space (500 by default), each end of each range
    ("active_loop", {"pool_sample_size": 100}, "query_size 150 is larger than pool_sample_size 100"),
    ("active_loop", {"query_size": 30, "pool_sample_size": {"type": "int", "low": 20, "high": 100}},
     "query_size 30 is larger than pool_sample_size 20"),
])
def test_bad_spaces_are_refused(method, overrides, message):
    with pytest.raises(UsageError, match=message):
        build_space(method, False, overrides)


def test_a_fixed_human_expert_is_refused_as_the_flag_is():
    with pytest.raises(UsageError, match="--expert human pauses the run for a person"):
        build_space("active_loop", False, fixed={"expert": "human"})


def test_query_size_is_checked_against_the_pool_sample_size_the_space_proposes():
    # smoke: query_size 8..16, so a sample of 20 fits (TrialConfig's default query_size of 50 is never used)
    assert build_space("active_loop", True, fixed={"pool_sample_size": 20})["pool_sample_size"] == 20
    assert build_space("active_loop", False, fixed={"pool_sample_size": 150})["pool_sample_size"] == 150
    assert build_space("active_loop", False, fixed={"pool_sample_size": 0})["pool_sample_size"] == 0  # whole pool


@pytest.mark.parametrize(("text", "message"), [
    ("learning_rate: {type: loguniform, low: 1e-4", "not valid YAML"),
    ("- learning_rate\n- epochs\n", "must map parameter names"),
])
def test_bad_space_files_are_refused(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        read_space_file(path)
    with pytest.raises(UsageError, match="does not exist"):
        read_space_file(tmp_path / "missing.yaml")


def test_to_tune_int_ranges_include_both_ends():
    space = to_tune({"epochs": {"type": "int", "low": 2, "high": 4}, "batch_size": 8,
                     "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
                     "strategy": {"type": "choice", "values": ["margin", "entropy"]}})
    assert space["batch_size"] == 8
    epochs = np.asarray(space["epochs"].sample(size=2000, random_state=np.random.default_rng(0)))
    assert set(epochs.tolist()) == {2, 3, 4}
    rates = np.asarray(space["learning_rate"].sample(size=500, random_state=np.random.default_rng(0)))
    assert rates.min() >= 1e-4 and rates.max() <= 1e-2
    assert (rates < 1e-3).mean() == pytest.approx(0.5, abs=0.1)  # log-uniform: half below the log-midpoint
    assert set(space["strategy"].sample(size=200, random_state=np.random.default_rng(0))) == {"margin", "entropy"}


def test_epochs_a_round_when_round_steps_is_fixed_at_zero():
    space = build_space("active_loop", False, {"epochs": 4}, fixed={"round_steps": 0})
    assert space["epochs"] == 4 and space["round_steps"] == 0
    assert MODULES["active_loop"].ORIGINAL["round_steps"] == MODULES["active_loop"].SPACE["round_steps"]["low"]


def test_starting_points_hold_the_original_setting_only_inside_the_space():
    original = MODULES["active_loop"].ORIGINAL
    open_settings = {"weight_decay": 0.01, "warmup_ratio": 0.1}  # TrialConfig's defaults, inside the space
    assert starting_points("active_loop", build_space("active_loop", False)) == [{**original, **open_settings}]
    assert starting_points("active_loop", build_space("active_loop", True)) == []  # smoke: lr 2e-3..1e-2
    narrower = {"strategy": {"type": "choice", "values": ["margin"]}}
    assert starting_points("active_loop", build_space("active_loop", False, narrower)) == []
    fixed = starting_points("kd", build_space("kd", False, fixed={"learning_rate": 1e-4}))
    assert fixed == [{**{k: v for k, v in MODULES["kd"].ORIGINAL.items() if k != "learning_rate"}, **open_settings}]


@pytest.mark.parametrize("method", ["supervised", "kd", "active_loop"])
def test_a_starting_point_names_every_searched_setting(method):
    """Optuna refuses a point that leaves a searched setting out (the default sweeps crashed so)."""
    space = build_space(method, False)
    searched = {name for name, entry in space.items() if isinstance(entry, dict)}
    (point,) = starting_points(method, space)
    assert set(point) == searched


def test_a_space_file_that_is_a_folder_is_named_as_such(tmp_path):
    with pytest.raises(UsageError, match=f"search-space file {tmp_path} is a folder, not a file"):
        read_space_file(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        read_space_file(tmp_path / "gone.yaml")
