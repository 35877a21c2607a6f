"""A trial killed after epoch (or round) k and resumed from its checkpoint ends with exactly the metrics and
weights of the same trial run without a kill (CPU, one thread). Runs `student_trial` as Ray would, with a
stand-in for ray.tune that keeps every checkpoint folder, so no Ray is started."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import trainables.functions as functions
from tests.fake_tune import FakeCheckpoint, FakeTune, run_fake_trial
from trainables import metrics as m
from trainables.checkpoint import TRAINING_JSON, TRAINING_TENSORS

# Wall time and where it ran differ between any two runs; everything else must not.
VARYING = {m.TRAIN_SECONDS, functions.NODE_ID}


def scramble_global_random_state() -> None:
    """A resumed trial runs in a new process whose random streams are wherever they are."""
    torch.manual_seed(987)
    np.random.seed(987)
    random.seed(987)


def comparable(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key not in VARYING}


def weights(checkpoint: FakeCheckpoint) -> dict:
    return load_file(str(checkpoint.folder / "model.safetensors"))


def assert_same_weights(one: FakeCheckpoint, other: FakeCheckpoint) -> None:
    first, second = weights(one), weights(other)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def killed_and_resumed(monkeypatch, tmp_path, config, prepared, kill_after: int) -> tuple[FakeTune, FakeTune]:
    killed = run_fake_trial(monkeypatch, tmp_path / "killed", config, prepared, kill_after=kill_after)
    assert len(killed.reports) == kill_after
    scramble_global_random_state()
    resumed = run_fake_trial(monkeypatch, tmp_path / "resumed", config, prepared, checkpoint=killed.reports[-1][1])
    return killed, resumed


SUPERVISED = {"method": "supervised", "learning_rate": 5e-3, "batch_size": 8, "epochs": 4, "seed": 1,
              "warmup_ratio": 0.3}
KD = {**SUPERVISED, "method": "kd", "alpha": 0.5, "temperature": 2.0}


@pytest.mark.parametrize("config", [SUPERVISED, KD], ids=["supervised", "kd"])
def test_a_trial_killed_after_epoch_2_and_resumed_ends_exactly_like_an_uninterrupted_one(
        monkeypatch, tmp_path, random_teachers, fake_ray, config):
    whole = run_fake_trial(monkeypatch, tmp_path / "whole", config, random_teachers)
    killed, resumed = killed_and_resumed(monkeypatch, tmp_path, config, random_teachers, kill_after=2)
    assert [r[0][m.EPOCH] for r in whole.reports] == [1, 2, 3, 4]
    assert [r[0][m.EPOCH] for r in resumed.reports] == [3, 4]
    for (expected, _), (got, _) in zip(whole.reports[2:], resumed.reports, strict=True):
        assert comparable(got) == comparable(expected)  # train_loss, val and test metrics: equal, not close
    assert_same_weights(whole.reports[-1][1], resumed.reports[-1][1])
    # The run learned something between the kill and the end, so equal ends are not equal starts.
    assert comparable(whole.reports[1][0]) != comparable(whole.reports[-1][0])


def test_without_the_training_state_a_resumed_trial_ends_differently(monkeypatch, tmp_path, random_teachers, fake_ray):
    """The check above can fail: a checkpoint without optimizer, schedule and random states (as written
    before they were saved) resumes with fresh optimizer moments and another dropout stream."""
    whole = run_fake_trial(monkeypatch, tmp_path / "whole", SUPERVISED, random_teachers)
    killed = run_fake_trial(monkeypatch, tmp_path / "killed", SUPERVISED, random_teachers, kill_after=2)
    folder = killed.reports[-1][1].folder
    for name in (TRAINING_TENSORS, TRAINING_JSON):
        (folder / name).unlink()
    resumed = run_fake_trial(monkeypatch, tmp_path / "resumed", SUPERVISED, random_teachers,
                             checkpoint=FakeCheckpoint(folder))
    assert [r[0][m.EPOCH] for r in resumed.reports] == [3, 4]
    last, other = weights(whole.reports[-1][1]), weights(resumed.reports[-1][1])
    assert any(not torch.equal(last[name], other[name]) for name in last)


def test_the_training_state_is_stored_without_pickle(monkeypatch, tmp_path, random_teachers, fake_ray):
    fake = run_fake_trial(monkeypatch, tmp_path, SUPERVISED, random_teachers, kill_after=1)
    names = {path.name for path in fake.reports[0][1].folder.iterdir()}
    assert {TRAINING_TENSORS, TRAINING_JSON} <= names
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth", ".pkl"))]
    tensors = load_file(str(fake.reports[0][1].folder / TRAINING_TENSORS))
    assert any(key.endswith("/exp_avg_sq") for key in tensors)  # AdamW's second moments are kept


LOOP = {"method": "active_loop", "learning_rate": 5e-3, "batch_size": 8, "epochs": 2, "seed": 1,
        "initial_pool_size": 16, "query_size": 8, "max_iterations": 3}


@pytest.mark.parametrize("warm_start", [False, True])
def test_an_expert_loop_killed_after_round_1_and_resumed_ends_exactly_like_an_uninterrupted_one(
        monkeypatch, tmp_path, random_teachers, fake_ray, warm_start):
    config = {**LOOP, "warm_start": warm_start}
    whole = run_fake_trial(monkeypatch, tmp_path / "whole", config, random_teachers)
    killed, resumed = killed_and_resumed(monkeypatch, tmp_path, config, random_teachers, kill_after=2)
    assert [r[0][m.ROUND] for r in whole.reports] == [0, 1, 2, 3]
    assert [r[0][m.ROUND] for r in resumed.reports] == [2, 3]
    for (expected, _), (got, _) in zip(whole.reports[2:], resumed.reports, strict=True):
        assert comparable(got) == comparable(expected)
    assert_same_weights(whole.reports[-1][1], resumed.reports[-1][1])
