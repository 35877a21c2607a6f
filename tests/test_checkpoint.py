"""trainables/checkpoint.py and models.load_finetuned: safetensors-only checkpoint folders."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig

from trainables.checkpoint import RUN_CONFIG, load_weights, read_run_config, read_trial_state, save_checkpoint
from trainables.config import TrialConfig
from trainables.data import TASK_CLASSIFICATION, smoke_task_data
from trainables.errors import UsageError
from trainables.loop import TRAINING_STATE, TrainingState
from trainables.model_card import CARD
from trainables.models import build_model, load_finetuned, make_blueprint
from tuning.assets.prepare import resolve_model


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


def test_config_json_names_the_labels_and_a_model_card_is_beside_it(saved):
    folder = saved[0]
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "a", "1": "b", "2": "c", "3": "d"}
    assert config["label2id"] == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert AutoConfig.from_pretrained(folder).id2label == {0: "a", 1: "b", 2: "c", 3: "d"}
    card = (folder / CARD).read_text()
    assert card.startswith("---\nlibrary_name: transformers\n") and "| `alpha` | 0.5 |" in card


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


# ---------------------------------------------------------------- strict loading of a trial's weights


def test_a_saved_checkpoint_loads_strictly_into_a_fresh_student(saved):
    folder, model, blueprint, _ = saved
    fresh = build_model(blueprint, seed=7)  # another seed: another head until the weights are loaded
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)
    load_weights(fresh, folder)
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name


def test_a_checkpoint_without_the_head_is_an_error_not_a_random_head(saved, tmp_path):
    folder, model, blueprint, _ = saved
    weights = load_file(str(folder / "model.safetensors"))
    del weights["classifier.weight"]
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(UsageError, match=r"1 weight\(s\) missing \['classifier.weight'\], 0 unexpected"):
        load_weights(build_model(blueprint, seed=7), tmp_path)


def test_a_checkpoint_with_extra_or_reshaped_weights_is_an_error(saved, tmp_path):
    folder, _, blueprint, _ = saved
    weights = load_file(str(folder / "model.safetensors"))
    save_file({**weights, "lm_head.bias": torch.zeros(3)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(UsageError, match=r"0 weight\(s\) missing \[\], 1 unexpected \['lm_head.bias'\]"):
        load_weights(build_model(blueprint, seed=7), tmp_path)
    save_file({**weights, "classifier.weight": torch.zeros(6, 32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(UsageError, match=r"another shape \['classifier.weight \(6, 32\) for \(4, 32\)'\]"):
        load_weights(build_model(blueprint, seed=7), tmp_path)


def test_the_training_state_is_saved_only_for_a_resumable_checkpoint(saved, tmp_path):
    """A trial's checkpoint keeps the optimizer to resume exactly; a finished model (tuning/train.py) does not."""
    _, model, blueprint, trial = saved
    optimizer = torch.optim.AdamW(model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    training = TrainingState.capture(2, optimizer, schedule, np.random.default_rng(0))
    prepared = SimpleNamespace(student=blueprint, task=TASK_CLASSIFICATION, label_names=("a", "b", "c", "d"),
                               provenance={})
    state = {"epoch": 2, TRAINING_STATE: training}
    save_checkpoint(tmp_path / "final", model, prepared, trial, {}, state)
    assert read_trial_state(tmp_path / "final") == {"epoch": 2}
    save_checkpoint(tmp_path / "trial", model, prepared, trial, {}, state, resumable=True)
    restored = read_trial_state(tmp_path / "trial")[TRAINING_STATE]
    assert restored.epoch == 2 and restored.numpy_rng == training.numpy_rng
    assert restored.python_rng == training.python_rng and torch.equal(restored.torch_rng, training.torch_rng)
