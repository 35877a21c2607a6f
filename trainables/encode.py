"""Tokenization once per (tokenizer, data, max length), stored as flat arrays, and batches padded
to their own longest sequence.

An EncodedSplit keeps every sequence's token ids back to back in one int32 array with offsets, so
it is compact in Ray's object store and cheap to cache with numpy (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.atomic import write_file
from trainables.data import Examples, TaskData

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class EncodedSplit:
    features: dict[str, np.ndarray]  # e.g. input_ids, token_type_ids: flat int32 per key
    offsets: np.ndarray  # int64, (num_sequences + 1,): sequence s is features[k][offsets[s]:offsets[s+1]]
    labels: np.ndarray  # int64, one per example
    num_choices: int  # 1 for classification; C sequences per example for multiple choice
    pad_token_id: int

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> np.ndarray:
        """Tokens per example (the longest of its choices), used to group similar lengths."""
        per_sequence = np.diff(self.offsets)
        return per_sequence.reshape(len(self), self.num_choices).max(axis=1)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Model inputs for these examples, padded to the longest sequence among them."""
        sequences = (np.asarray(indices)[:, None] * self.num_choices + np.arange(self.num_choices)).ravel()
        starts, ends = self.offsets[sequences], self.offsets[sequences + 1]
        width = int((ends - starts).max())
        out = {}
        for key, flat in self.features.items():
            pad = self.pad_token_id if key == "input_ids" else 0
            padded = np.full((len(sequences), width), pad, dtype=np.int64)
            for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
                padded[row, : end - start] = flat[start:end]
            out[key] = padded
        mask = np.arange(width)[None, :] < (ends - starts)[:, None]
        out["attention_mask"] = mask.astype(np.int64)
        shape = (len(indices), self.num_choices, width) if self.num_choices > 1 else (len(indices), width)
        return {key: torch.from_numpy(value.reshape(shape)) for key, value in out.items()}


def _tokenize_examples(tokenizer, examples: Examples, max_length: int) -> dict[str, list[list[int]]]:
    if examples.options is None:
        encoded = tokenizer(list(examples.text), truncation=True, max_length=max_length)
    else:
        # One (question, option) pair per choice, in order; choices of an example stay consecutive.
        questions = [q for q, options in zip(examples.text, examples.options, strict=True) for _ in options]
        options = [option for choice_list in examples.options for option in choice_list]
        encoded = tokenizer(questions, options, truncation=True, max_length=max_length)
    return {key: value for key, value in encoded.items() if key != "attention_mask"}


def encode_examples(tokenizer, examples: Examples, max_length: int) -> EncodedSplit:
    tokens = _tokenize_examples(tokenizer, examples, max_length)
    lengths = np.array([len(ids) for ids in tokens["input_ids"]], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    features = {key: np.fromiter((t for seq in value for t in seq), dtype=np.int32, count=int(offsets[-1]))
                for key, value in tokens.items()}
    num_choices = 1 if examples.options is None else len(examples.options[0])
    return EncodedSplit(features, offsets, np.asarray(examples.labels, dtype=np.int64), num_choices,
                        int(tokenizer.pad_token_id or 0))


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's full definition (vocabulary, normalisation, special tokens)."""
    definition = tokenizer.backend_tokenizer.to_str() if hasattr(tokenizer, "backend_tokenizer") else ""
    identity = json.dumps([type(tokenizer).__name__, definition, tokenizer.model_max_length], default=str)
    return hashlib.sha256(identity.encode()).hexdigest()


def encode_task(tokenizer, data: TaskData, max_length: int, cache: Path | None) -> dict[str, EncodedSplit]:
    """All splits of `data`, tokenized; read from `cache` when this exact tokenization was done before."""
    key = hashlib.sha256(
        f"{tokenizer_fingerprint(tokenizer)}|{data.fingerprint()}|{max_length}".encode()
    ).hexdigest()[:32]
    path = None if cache is None else Path(cache) / f"tokens-{key}.npz"
    if path is not None and path.is_file():
        try:
            return _read_npz(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # np.load's ways to fail
            path.unlink(missing_ok=True)  # a damaged entry is rebuilt, never trusted
    encoded = {split: encode_examples(tokenizer, getattr(data, split), max_length) for split in SPLITS}
    if path is not None:
        _write_npz_atomically(path, encoded)
    return encoded


def _write_npz_atomically(path: Path, encoded: dict[str, EncodedSplit]) -> None:
    arrays = {}
    for split, enc in encoded.items():
        arrays[f"{split}/offsets"] = enc.offsets
        arrays[f"{split}/labels"] = enc.labels
        arrays[f"{split}/meta"] = np.array([enc.num_choices, enc.pad_token_id], dtype=np.int64)
        for feature, values in enc.features.items():
            arrays[f"{split}/feature/{feature}"] = values
    write_file(path, lambda temporary: _savez(temporary, arrays))


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as stream:  # a stream: given a name, np.savez would append ".npz" to it
        np.savez(stream, **arrays)


def _read_npz(path: Path) -> dict[str, EncodedSplit]:
    with np.load(path, allow_pickle=False) as stored:
        out = {}
        for split in SPLITS:
            features = {name.rsplit("/", 1)[1]: stored[name] for name in stored.files
                        if name.startswith(f"{split}/feature/")}
            num_choices, pad = (int(v) for v in stored[f"{split}/meta"])
            out[split] = EncodedSplit(features, stored[f"{split}/offsets"], stored[f"{split}/labels"],
                                      num_choices, pad)
        return out
