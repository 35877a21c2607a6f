"""What every section needs: the default data (or a stratified part of it), model blueprints and
tokenized splits, all through the project's own functions so the benchmark measures what it runs."""

from __future__ import annotations

import numpy as np

from trainables.config import TrialConfig
from trainables.encode import EncodedSplit, encode_task
from trainables.models import ModelBlueprint, make_blueprint
from tuning.assets import catalog as assets
from tuning.assets.prepare import DataSettings, load_data

STUDENT = "minilm-l3"
TEACHERS = ("minilm-l6", "minilm-l6-sre")  # the default ensemble (tuning.assets.prepare.DEFAULT_TEACHERS)
MAX_LENGTH = 128  # tokens, the default
BATCH_SIZE = 16  # the default trial's batch
LEARNING_RATE = 5e-5  # the recipe ASSETS.md measured minilm-l3 with
THREADS = 2  # this machine's cores
TRIAL_BF16 = TrialConfig(method="supervised").decided().bf16  # the precision a trial trains and evaluates in by default


def quiet(*_args, **_kwargs) -> None:
    """A progress callback that says nothing (asset fetches are cache hits here)."""


def load(train: int | None, validation: int = 500, test: int = 500):
    """The default data set with seeded, stratified splits; `train` caps the training split (None: all)."""
    return load_data(DataSettings(validation_size=validation, test_size=test, max_train_examples=train),
                     progress=quiet)


def blueprint(name: str, data) -> ModelBlueprint:
    return make_blueprint(name, str(assets.fetch_model(name, progress=quiet)), data.task, data.num_labels)


def encode(model: ModelBlueprint, data) -> dict[str, EncodedSplit]:
    """Every split tokenized for `model`, through the project's token cache."""
    return encode_task(model.tokenizer, data, MAX_LENGTH, assets.cache_dir() / "tokens")


def full_length_batch(encoded: EncodedSplit, count: int) -> EncodedSplit:
    """`count` rows that fill all MAX_LENGTH tokens: a batch with no padding, so the FLOP count of a step
    is exact. Rows that reach MAX_LENGTH are taken as they are; the default data's texts are short (a
    median near 40 tokens), so the rest are real token sequences packed end to end and cut at MAX_LENGTH.
    A step's cost depends on the batch's shape, not on which tokens fill it."""
    if encoded.num_choices != 1:
        raise ValueError("a full-length batch is built for classification data (one sequence per example)")
    packed, current = [], {key: [] for key in encoded.features}
    for start, end in zip(encoded.offsets[:-1], encoded.offsets[1:], strict=True):
        for key, flat in encoded.features.items():
            current[key].extend(flat[start:end].tolist())
        if len(current["input_ids"]) >= MAX_LENGTH:
            packed.append({key: tokens[:MAX_LENGTH] for key, tokens in current.items()})
            current = {key: [] for key in encoded.features}
            if len(packed) == count:
                break
    if len(packed) < count:
        raise RuntimeError(f"the training split packs into {len(packed)} rows of {MAX_LENGTH} tokens; "
                           f"{count} needed")
    features = {key: np.concatenate([np.asarray(row[key], dtype=encoded.features[key].dtype) for row in packed])
                for key in encoded.features}
    return EncodedSplit(features=features, offsets=np.arange(count + 1, dtype=np.int64) * MAX_LENGTH,
                        labels=encoded.labels[:count].copy(), num_choices=1, pad_token_id=encoded.pad_token_id)
