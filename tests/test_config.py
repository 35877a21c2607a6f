"""trainables/config.py: TrialConfig.from_dict converts plain values and refuses bad ones, naming them."""

from __future__ import annotations

import pytest

from trainables.config import TrialConfig
from trainables.errors import UsageError
from tuning.assets.settings import DataSettings


def test_from_dict_converts_strings_and_numbers():
    config = TrialConfig.from_dict({"method": "active_loop", "epochs": "3", "learning_rate": "1e-4",
                                    "batch_size": 8.0, "warm_start": "true", "bf16": "0", "alpha": 1,
                                    "temperature": "2.5", "strategy": "margin"})
    assert config.epochs == 3 and type(config.epochs) is int
    assert config.learning_rate == 1e-4 and type(config.learning_rate) is float
    assert config.batch_size == 8 and type(config.batch_size) is int
    assert config.warm_start is True and config.bf16 is False
    assert config.alpha == 1.0 and type(config.alpha) is float
    assert config.temperature == 2.5 and config.strategy == "margin"


def test_round_trip_through_a_plain_dict():
    config = TrialConfig(method="kd", learning_rate=3e-5, seed=4, alpha=0.25)
    assert TrialConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("values", "named"), [
    ({"method": "kd", "learnig_rate": 1e-4}, "learnig_rate"),
    ({"method": "kd", "epochs": 2.5}, "epochs"),
    ({"method": "kd", "epochs": "three"}, "epochs"),
    ({"method": "kd", "warm_start": "maybe"}, "warm_start"),
    ({"method": "kd", "alpha": 1.5}, "alpha"),
    ({"method": "kd", "alpha": -0.1}, "alpha"),
    ({"method": "kd", "temperature": 0}, "temperature"),
    ({"method": "kd", "learning_rate": "0"}, "learning_rate"),
    ({"method": "kd", "batch_size": 0}, "batch_size"),
    ({"method": "kd", "warmup_ratio": 1.0}, "warmup_ratio"),
    ({"method": "active_loop", "strategy": "most_confident"}, "strategy"),
    ({"method": "active_loop", "expert": "crowd"}, "expert"),
    ({"method": "active_loop", "query_size": 0}, "query_size"),
    ({"method": "distill"}, "method"),
    ({"method": "kd", "seed": -1}, "seed must be >= 0"),  # numpy's seeding failed after the teachers were built
    ({"method": "kd", "learning_rate": "inf"}, "learning_rate must be a finite number"),
    ({"method": "kd", "temperature": float("inf")}, "temperature must be a finite number"),
    ({"method": "kd", "weight_decay": float("inf")}, "weight_decay must be a finite number"),
    ({"method": "active_loop", "expert_price": float("inf")}, "expert_price must be a finite number"),
    ({"method": "kd", "alpha": float("nan")}, "alpha must be a finite number"),
])
def test_bad_settings_are_refused_by_name(values, named):
    with pytest.raises(UsageError, match=named):
        TrialConfig.from_dict(values)


@pytest.mark.parametrize(("values", "message"), [
    ({"split_seed": -1}, "--seed must be >= 0"),
    ({"teacher_epochs": 0}, "--teacher-epochs must be >= 1"),  # cached untrained teachers and distilled from them
    ({"teacher_epochs": -1}, "--teacher-epochs must be >= 1"),
    ({"teacher_learning_rate": float("inf")}, "teacher_learning_rate must be a finite number > 0"),
    ({"teacher_learning_rate": 0.0}, "teacher_learning_rate must be a finite number > 0"),
    ({"teacher_batch_size": 0}, "teacher_batch_size must be >= 1"),
])
def test_bad_data_settings_are_refused_by_name(values, message):
    with pytest.raises(UsageError, match=message):
        DataSettings(**values)
