"""The precision rule (trainables/precision.py) on faked capabilities, and where its answer lands."""

from __future__ import annotations

import pytest
import torch

from trainables import precision
from trainables.config import TrialConfig
from trainables.errors import UsageError
from tuning.assets.prepare import DataSettings


@pytest.fixture
def fake_cpu(monkeypatch):
    """fake_cpu(native, speedup): what the CPU can do; counts how often the measurement runs."""
    calls = []

    def configure(native: bool, speedup: float):
        monkeypatch.setattr(precision, "native_bf16", lambda: native)
        monkeypatch.setattr(precision, "measured_speedup", lambda: calls.append(1) or speedup)
        precision.choice.cache_clear()
        return calls

    yield configure
    precision.choice.cache_clear()


def test_no_native_bf16_means_float32_without_measuring(fake_cpu):
    calls = fake_cpu(native=False, speedup=3.0)
    assert precision.resolve("auto") is False and calls == []
    assert "no native bfloat16" in precision.choice().reason


def test_native_and_measured_faster_means_bf16_measured_once(fake_cpu):
    calls = fake_cpu(native=True, speedup=1.6)
    assert precision.resolve("auto") is True and precision.resolve("auto") is True
    assert calls == [1]  # cached for the process
    assert "1.60x" in precision.choice().describe()


def test_native_but_not_faster_means_float32_after_every_round(fake_cpu):
    calls = fake_cpu(native=True, speedup=1.05)  # below REQUIRED_SPEEDUP (1.1)
    assert precision.resolve("auto") is False and len(calls) == precision.MEASURE_ROUNDS == 3


def test_a_measurement_spoilt_by_load_is_taken_again(fake_cpu, monkeypatch):
    """On this 2-core EPYC, bf16 measured 0.51x once while other work shared the CPUs, 2.04x quiet: a native CPU's
    'slower' is measured again and the best round counts."""
    fake_cpu(native=True, speedup=0.0)
    rounds = iter([0.51, 2.04, 9.0])
    monkeypatch.setattr(precision, "measured_speedup", lambda: next(rounds))
    assert precision.choice().bf16 is True and precision.choice().speedup == 2.04 and next(rounds) == 9.0


@pytest.mark.parametrize("decided", ["0", "1"])
def test_a_worker_takes_its_drivers_decision_without_measuring(fake_cpu, monkeypatch, decided):
    calls = fake_cpu(native=True, speedup=3.0)
    monkeypatch.setenv(precision.DECIDED_ENV, decided)
    assert precision.resolve("auto") is (decided == "1") and calls == []
    assert "decided once for this machine by the run's driver" in precision.choice().reason


@pytest.mark.parametrize("address", [None, "10.0.0.5:6379"])
def test_a_local_ray_instance_gives_its_workers_the_drivers_decision(fake_cpu, monkeypatch, address):
    """Every worker used to measure for itself under the load of the others: two trials of one seed could train in
    two precisions. A cluster's nodes may differ, so there each still decides for itself."""
    import ray  # noqa: PLC0415 (only its init is called, faked)

    from tuning.trials.ray_session import start_ray  # noqa: PLC0415

    fake_cpu(native=True, speedup=1.6)
    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.update(kwargs))
    start_ray(address, dashboard=False)
    passed = seen["runtime_env"]["env_vars"].get(precision.DECIDED_ENV)
    assert passed == ("1" if address is None else None)


@pytest.mark.parametrize("native", [True, False])
def test_true_and_false_still_force_it(fake_cpu, native):
    calls = fake_cpu(native=native, speedup=0.01)
    assert precision.resolve("true") is True and precision.resolve(False) is False and calls == []


def test_building_a_trial_config_measures_nothing_and_the_trained_config_holds_the_decision(fake_cpu):
    """Issue 21: TrialConfig.__post_init__ measured this CPU whenever a config was built (in the driver, for
    every space check). Now "auto" stays until the process that trains decides (`decided`, used by the
    trainable, train.py and --confirm), and that decision, a bool, is what reports and checkpoints record."""
    calls = fake_cpu(native=True, speedup=3.0)
    assert TrialConfig(method="kd").bf16 == "auto" and calls == []  # built, checked, not measured
    assert TrialConfig(method="kd").decided().bf16 is True and calls == [1]
    fake_cpu(native=False, speedup=3.0)
    assert TrialConfig(method="kd").decided().bf16 is False
    assert TrialConfig.from_dict({"method": "kd", "bf16": "true"}).bf16 is True
    assert TrialConfig(method="kd").decided().to_dict()["bf16"] is False  # reports and checkpoints record it


def test_one_spelling_of_each_precision():
    assert (precision.name(True), precision.name(False)) == ("bf16", "fp32")
    assert precision.Choice(False, True, 0.9, "measured").describe() == "fp32 (measured)"


def test_bad_precision_values_are_usage_errors():
    with pytest.raises(UsageError, match="auto, true or false"):
        TrialConfig.from_dict({"method": "kd", "bf16": "fast"})
    with pytest.raises(UsageError, match="--bf16 must be auto, true or false"):
        DataSettings(bf16="fast")


def test_teachers_keep_auto_until_they_train():
    assert DataSettings().bf16 == "auto" and DataSettings(bf16="false").bf16 is False


def test_the_speedup_is_float32s_best_time_over_bf16s_timed_in_turns_after_a_warm_up(monkeypatch):
    """The real matmuls run; the clock is scripted. Warm-up (bf16 0.5 s, float32 10 s), then three turns of
    float32 / bf16: 4 / 2, 3 / 3, 6 / 1. Best of each, warm-up left out: 3 / 1 = 3.0 (with the warm-up 0.5 would
    be bf16's best: 6.0; medians 4 / 2 = 2.0; means 4.33 / 2 = 2.17)."""
    durations = iter([0.5, 10.0, 4.0, 2.0, 3.0, 3.0, 6.0, 1.0])
    clock = {"now": 0.0, "started": False}

    def perf_counter() -> float:  # each timed call reads the clock twice: at its start and at its end
        if clock["started"]:
            clock["now"] += next(durations)
        clock["started"] = not clock["started"]
        return clock["now"]

    real_autocast, turns = torch.autocast, []

    def autocast(device, dtype, enabled):
        turns.append(enabled)
        return real_autocast(device, dtype=dtype, enabled=enabled)

    monkeypatch.setattr(precision.time, "perf_counter", perf_counter)
    monkeypatch.setattr(torch, "autocast", autocast)
    assert precision.measured_speedup(repeats=3) == pytest.approx(3.0)
    assert turns == [True, False] + [False, True] * 3  # warm-up, then float32 and bf16 in turns
    assert next(durations, None) is None  # every scripted duration was read: 8 timed calls
