"""trainables/checkpoint.py and models.load_finetuned: safetensors-only checkpoint folders."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from trainables.checkpoint import RUN_CONFIG, read_run_config, read_trial_state, save_checkpoint
from trainables.config import TrialConfig
from trainables.data import TASK_CLASSIFICATION, smoke_task_data
from trainables.errors import UsageError
from trainables.models import build_model, load_finetuned, make_blueprint
from tuning.prepare import resolve_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny student saved as a checkpoint, and what went into it."""
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPERT_LOOP_CACHE", str(tmp_path_factory.mktemp("cache")))
        location = resolve_model("tiny-bert", progress=lambda *a: None)
    blueprint = make_blueprint("tiny-bert", location, TASK_CLASSIFICATION, 4)
    model = build_model(blueprint, seed=0)
    prepared = SimpleNamespace(student=blueprint, task=TASK_CLASSIFICATION, label_names=("a", "b", "c", "d"),
                               provenance={"data_fingerprint": "abc"})
    trial = TrialConfig(method="kd", learning_rate=3e-4, alpha=0.5)
    folder = tmp_path_factory.mktemp("checkpoint")
    metrics = {"val_accuracy": np.float32(0.75), "epoch": 2}
    save_checkpoint(folder, model, prepared, trial, metrics, state={"epoch": 2})
    return folder, model, blueprint, trial


def test_the_folder_holds_safetensors_config_tokenizer_and_run_config(saved):
    folder = saved[0]
    names = {path.name for path in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer_config.json", RUN_CONFIG} <= names
    assert names & {"tokenizer.json", "vocab.txt"}
    assert not [name for name in names if name.endswith((".bin", ".pt", ".pth", ".pkl"))]


def test_run_config_reproduces_the_run(saved):
    folder, _, _, trial = saved
    run_config = read_run_config(folder)
    assert TrialConfig.from_dict(run_config["trial"]) == trial
    assert run_config["task"] == TASK_CLASSIFICATION and run_config["label_names"] == ["a", "b", "c", "d"]
    assert run_config["metrics"] == {"val_accuracy": 0.75, "epoch": 2}  # numpy floats written as numbers
    assert run_config["provenance"] == {"data_fingerprint": "abc"}
    assert read_trial_state(folder) == {"epoch": 2}


def test_the_saved_model_loads_back_with_the_same_outputs(saved):
    folder, model, blueprint, _ = saved
    loaded = load_finetuned(folder, TASK_CLASSIFICATION)
    inputs = blueprint.tokenizer(list(smoke_task_data(0).test.text[:3]), padding=True, return_tensors="pt")
    model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits)


def test_read_run_config_refuses_what_is_not_a_checkpoint(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_run_config(tmp_path / "missing")
    with pytest.raises(UsageError, match=f"no {RUN_CONFIG}"):
        read_run_config(tmp_path)
    (tmp_path / RUN_CONFIG).write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_run_config(tmp_path)
    assert read_trial_state(tmp_path) is None


def test_load_finetuned_refuses_pickled_or_missing_weights(saved, tmp_path):
    folder = saved[0]
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(UsageError, match="no model.safetensors"):
        load_finetuned(tmp_path, TASK_CLASSIFICATION)
    torch.save(saved[1].state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(UsageError, match="pickle"):
        load_finetuned(tmp_path, TASK_CLASSIFICATION)
