"""Model construction. A student or teacher is described once in the driver by a ModelBlueprint
(config, pretrained weights as safetensors bytes, tokenizer); every trial builds a fresh model from it.

Why bytes and not a folder path: the blueprint travels through Ray's object store, so a trial on
another node of a cluster builds the same model without a shared disk or a hub download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from transformers import (
    AutoConfig,
    AutoModelForMultipleChoice,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertTokenizerFast,
    PreTrainedModel,
)

from trainables.data import TASK_MULTIPLE_CHOICE
from trainables.errors import UsageError

# transformers' per-load reports and per-save progress bars drown a sweep's own progress lines;
# the one fact worth keeping (a new classifier head) is stated by make_blueprint's caller.
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

TINY_MODELS = ("tiny-bert", "tiny-bert-2")  # built from a config, no download: --smoke-test


@dataclass(frozen=True)
class ModelBlueprint:
    name: str  # what the user asked for (preset, folder or hub name)
    task: str
    num_labels: int
    config: dict  # transformers config as a plain dict
    weights: bytes  # safetensors bytes of the pretrained weights (the new head excluded)
    tokenizer: object  # a transformers fast tokenizer; pickles through the object store


def _auto_class(task: str):
    # Multiple choice scores each (question, option) pair and takes a softmax over the options, so the
    # logits have one column per choice, exactly like a classifier's one column per class.
    return AutoModelForMultipleChoice if task == TASK_MULTIPLE_CHOICE else AutoModelForSequenceClassification


def make_blueprint(name: str, location: str, task: str, num_labels: int) -> ModelBlueprint:
    """Load a pretrained model (folder or hub name) once and keep what a trial needs to rebuild it."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model, info = _auto_class(task).from_pretrained(
            location, num_labels=num_labels, output_loading_info=True
        )
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"cannot load model '{name}' from {location}: {first_line}") from error
    new_head = set(info["missing_keys"])  # initialised fresh in every trial, from the trial's seed
    pretrained = {k: v.contiguous() for k, v in model.state_dict().items() if k not in new_head}
    return ModelBlueprint(
        name=name,
        task=task,
        num_labels=num_labels,
        config=model.config.to_dict(),
        weights=save_safetensors_bytes(pretrained),
        tokenizer=tokenizer,
    )


def build_model(blueprint: ModelBlueprint, seed: int) -> PreTrainedModel:
    """A fresh model: pretrained weights where they exist, a head initialised from `seed`."""
    config = AutoConfig.for_model(**blueprint.config)
    torch.manual_seed(seed)
    model = _auto_class(blueprint.task).from_config(config)
    missing, unexpected = model.load_state_dict(load_safetensors_bytes(blueprint.weights), strict=False)
    if unexpected:
        raise UsageError(f"model '{blueprint.name}': unexpected weights {unexpected[:3]}")
    model.train()
    return model


def load_finetuned(folder: Path, task: str) -> PreTrainedModel:
    """A saved checkpoint folder (safetensors weights only: never unpickle files from elsewhere)."""
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            raise UsageError(f"checkpoint {folder} holds pickle weights; only model.safetensors is accepted")
        raise UsageError(f"checkpoint {folder} has no model.safetensors")
    return _auto_class(task).from_pretrained(folder, use_safetensors=True)


def make_tiny_model_folder(folder: Path, words: list[str], seed: int) -> Path:
    """A randomly initialised 2-layer BERT and a WordPiece tokenizer over `words`, for smoke tests.
    Written to `folder` (returned) so the rest of the code treats it like any local model."""
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(words))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_config(config).base_model.save_pretrained(folder)
    (folder / "tiny_model.json").write_text(json.dumps({"seed": seed}), encoding="utf-8")
    return folder
