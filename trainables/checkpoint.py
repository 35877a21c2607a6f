"""Checkpoint folders: weights as safetensors, the transformers config (with the data's label names),
the tokenizer, `run_config.json` holding everything needed to reproduce or evaluate the run, and a model
card (README.md), so the folder is a Hugging Face model as it is. A trial's checkpoint
also holds its state (`trial_state.json`) and, to resume exactly, the training state: the optimizer's
tensors and the torch random state as safetensors, the rest as JSON (no pickle anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.loop import TRAINING_STATE, TrainingState
from trainables.model_card import CARD, model_card

RUN_CONFIG = "run_config.json"
TRIAL_STATE = "trial_state.json"
TRAINING_TENSORS = "training_state.safetensors"
TRAINING_JSON = "training_state.json"


def save_checkpoint(folder: Path, model, prepared, trial: TrialConfig, metrics: dict,
                    state: dict | None = None, resumable: bool = False) -> None:
    """`state`: the trial's JSON state; its TRAINING_STATE entry, if any, is written only when
    `resumable` (a trial's checkpoint; a finished model needs no optimizer)."""
    folder = Path(folder)
    state = dict(state) if state is not None else None
    training = state.pop(TRAINING_STATE, None) if state is not None else None
    if resumable and training is not None:
        save_training_state(folder, training)
    name_labels(model.config, prepared.label_names)
    model.save_pretrained(folder)
    prepared.student.tokenizer.save_pretrained(folder)
    run_config = {
        "trial": trial.to_dict(),
        "task": prepared.task,
        "label_names": list(prepared.label_names),
        "provenance": prepared.provenance,
        "metrics": metrics,
    }
    text = json.dumps(run_config, indent=2, default=float)
    (folder / RUN_CONFIG).write_text(text, encoding="utf-8")
    # The card is made from the JSON as written (numpy numbers already plain), so it says what the file says.
    (folder / CARD).write_text(model_card(json.loads(text)), encoding="utf-8")
    if state is not None:
        (folder / TRIAL_STATE).write_text(json.dumps(state), encoding="utf-8")


def name_labels(config, label_names) -> None:
    """The data's class names as config.json's id2label / label2id. A model built from a pretrained config
    says LABEL_0, LABEL_1, ..., so transformers' pipeline and the Hub would answer with those; the names
    change no weight and no output, only what the folder tells its readers."""
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: index for index, name in enumerate(label_names)}


def read_run_config(folder: Path) -> dict:
    path = Path(folder) / RUN_CONFIG
    if not Path(folder).is_dir():
        raise UsageError(f"checkpoint folder {folder} does not exist")
    if not path.is_file():
        raise UsageError(f"{folder} is not a checkpoint of this tool (no {RUN_CONFIG})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not valid JSON: {error}") from None


def read_trial_state(folder: Path) -> dict | None:
    """The trial's state, with its TrainingState under TRAINING_STATE when the checkpoint has one."""
    path = Path(folder) / TRIAL_STATE
    if not path.is_file():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    training = load_training_state(folder)
    return state if training is None else {**state, TRAINING_STATE: training}


def load_weights(model, folder: Path) -> None:
    """Put a checkpoint's weights into `model`, every one of them: a missing or unexpected name would
    otherwise leave, say, a freshly initialised classifier head in a model that looks restored."""
    saved = load_file(str(Path(folder) / "model.safetensors"))
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(saved)), sorted(set(saved) - expected)
    if missing or unexpected:
        raise UsageError(f"checkpoint {folder} does not fit the model: {len(missing)} weight(s) missing "
                         f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}")
    shapes = model.state_dict()
    wrong = [f"{name} {tuple(saved[name].shape)} for {tuple(shapes[name].shape)}"
             for name in sorted(saved) if saved[name].shape != shapes[name].shape]
    if wrong:
        raise UsageError(f"checkpoint {folder} does not fit the model: {len(wrong)} weight(s) of another shape "
                         f"{wrong[:3]}")
    model.load_state_dict(saved, strict=True)


def save_training_state(folder: Path, training: TrainingState) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"torch_rng": training.torch_rng}
    for index, values in training.optimizer["state"].items():
        for name, tensor in values.items():
            tensors[f"optimizer/{index}/{name}"] = tensor.contiguous()
    save_file(tensors, str(folder / TRAINING_TENSORS))
    plain = {"epoch": training.epoch, "optimizer_param_groups": training.optimizer["param_groups"],
             "schedule": training.schedule, "numpy_rng": training.numpy_rng, "python_rng": training.python_rng}
    (folder / TRAINING_JSON).write_text(json.dumps(plain), encoding="utf-8")


def load_training_state(folder: Path) -> TrainingState | None:
    folder = Path(folder)
    if not (folder / TRAINING_TENSORS).is_file() or not (folder / TRAINING_JSON).is_file():
        return None  # a checkpoint of an older version, or of a run that is not resumed exactly
    tensors = load_file(str(folder / TRAINING_TENSORS))
    plain = json.loads((folder / TRAINING_JSON).read_text(encoding="utf-8"))
    optimizer_state: dict[int, dict] = {}
    for key, tensor in tensors.items():
        if key.startswith("optimizer/"):
            _, index, name = key.split("/", 2)
            optimizer_state.setdefault(int(index), {})[name] = tensor
    version, internal, gauss = plain["python_rng"]
    return TrainingState(
        epoch=plain["epoch"],
        optimizer={"state": optimizer_state, "param_groups": plain["optimizer_param_groups"]},
        schedule=plain["schedule"], torch_rng=tensors["torch_rng"], numpy_rng=plain["numpy_rng"],
        python_rng=(version, tuple(internal), gauss),
    )
