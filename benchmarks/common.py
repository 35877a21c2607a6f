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


def full_length_rows(encoded: EncodedSplit, count: int) -> np.ndarray:
    """The first `count` examples that fill all MAX_LENGTH tokens: a batch with no padding, so the
    FLOP count of a step is exact."""
    rows = np.flatnonzero(encoded.lengths() == MAX_LENGTH)[:count]
    if len(rows) < count:
        raise RuntimeError(f"only {len(rows)} examples reach {MAX_LENGTH} tokens; {count} needed")
    return rows
