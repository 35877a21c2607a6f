"""trainables/encode.py: padding per batch, multiple-choice layout, and the token cache."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import trainables.encode as encode
from trainables.data import smoke_task_data
from trainables.encode import SPLITS, EncodedSplit, encode_task
from trainables.models import make_tiny_model_folder

PAD = 7  # not 0, so a padded id cannot be mistaken for a zero-filled one


def flat_split(sequences: list[list[int]], num_choices: int = 1) -> EncodedSplit:
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    ids = np.array([t for s in sequences for t in s], dtype=np.int32)
    types = np.array([i % 2 for s in sequences for i, _ in enumerate(s)], dtype=np.int32)  # 0,1,0,1...
    labels = np.arange(len(sequences) // num_choices, dtype=np.int64)
    return EncodedSplit({"input_ids": ids, "token_type_ids": types}, offsets, labels, num_choices, PAD)


def test_batch_pads_to_the_longest_sequence_of_the_batch_only():
    split = flat_split([[5, 6, 7], [8], [1, 2, 3, 4, 5, 6], [9, 9]])
    batch = split.batch(np.array([0, 1]))  # the 6-token sequence is not in it: width 3, not 6
    assert torch.equal(batch["input_ids"], torch.tensor([[5, 6, 7], [8, PAD, PAD]]))
    assert torch.equal(batch["attention_mask"], torch.tensor([[1, 1, 1], [1, 0, 0]]))
    assert torch.equal(batch["token_type_ids"], torch.tensor([[0, 1, 0], [0, 0, 0]]))  # padded with 0
    assert batch["input_ids"].dtype == torch.int64

    batch = split.batch(np.array([3, 1]))  # order as asked
    assert torch.equal(batch["input_ids"], torch.tensor([[9, 9], [8, PAD]]))
    assert torch.equal(batch["attention_mask"], torch.tensor([[1, 1], [1, 0]]))


def test_multiple_choice_batch_keeps_an_examples_choices_together():
    # example 0: choices [1, 2] and [3]; example 1: choices [4, 5, 6] and [7]
    split = flat_split([[1, 2], [3], [4, 5, 6], [7]], num_choices=2)
    batch = split.batch(np.array([1, 0]))
    assert batch["input_ids"].shape == (2, 2, 3)  # (batch, choices, width)
    expected = [[[4, 5, 6], [7, PAD, PAD]], [[1, 2, PAD], [3, PAD, PAD]]]
    assert torch.equal(batch["input_ids"], torch.tensor(expected))
    assert torch.equal(batch["attention_mask"], torch.tensor([[[1, 1, 1], [1, 0, 0]], [[1, 1, 0], [1, 0, 0]]]))
    assert split.batch(np.array([0]))["input_ids"].shape == (1, 2, 2)


def test_lengths_is_the_longest_choice_per_example():
    assert flat_split([[5, 6, 7], [8], [1, 2, 3, 4, 5, 6]]).lengths().tolist() == [3, 1, 6]
    assert flat_split([[1, 2], [3], [4], [7, 7, 7]], num_choices=2).lengths().tolist() == [2, 3]


# ---------------------------------------------------------------- the cache


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    data = smoke_task_data(0)
    words = sorted({w for text in data.train.text for w in re.findall(r"[a-z]+", text.lower())})
    folder = make_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model", words, seed=0)
    return AutoTokenizer.from_pretrained(folder)


def same_encoding(a: dict[str, EncodedSplit], b: dict[str, EncodedSplit]) -> bool:
    for split in SPLITS:
        x, y = a[split], b[split]
        if (x.num_choices, x.pad_token_id) != (y.num_choices, y.pad_token_id) or x.features.keys() != y.features.keys():
            return False
        if not (np.array_equal(x.offsets, y.offsets) and np.array_equal(x.labels, y.labels)):
            return False
        if not all(np.array_equal(x.features[k], y.features[k]) for k in x.features):
            return False
    return True


def test_encoding_matches_the_tokenizer(tokenizer):
    data = smoke_task_data(0)
    encoded = encode_task(tokenizer, data, 32, cache=None)
    split = encoded["validation"]
    assert len(split) == len(data.validation) and split.pad_token_id == tokenizer.pad_token_id
    assert np.array_equal(split.labels, data.validation.labels)
    expected = tokenizer(data.validation.text[3], truncation=True, max_length=32)["input_ids"]
    assert split.features["input_ids"][split.offsets[3] : split.offsets[4]].tolist() == expected


def test_second_call_reads_the_cache(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path))
    data = smoke_task_data(0)
    first = encode_task(tokenizer, data, 32, tmp_path)
    assert len(list(tmp_path.glob("tokens-*.npz"))) == 1

    def must_not_run(*args, **kwargs):
        raise AssertionError("tokenized again despite a cache entry")

    monkeypatch.setattr(encode, "encode_examples", must_not_run)
    assert same_encoding(encode_task(tokenizer, data, 32, tmp_path), first)
    with pytest.raises(AssertionError):  # another max length is another entry
        encode_task(tokenizer, data, 16, tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_cache_entry_is_rebuilt(tokenizer, tmp_path, monkeypatch, damage):
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path))
    data = smoke_task_data(0)
    first = encode_task(tokenizer, data, 32, tmp_path)
    (path,) = tmp_path.glob("tokens-*.npz")
    whole = path.read_bytes()
    path.write_bytes({"garbage": b"not an npz file " * 64, "truncated": whole[: len(whole) // 2],
                      "empty": b""}[damage])

    calls = []
    real = encode.encode_examples
    monkeypatch.setattr(encode, "encode_examples", lambda *a, **k: calls.append(1) or real(*a, **k))
    rebuilt = encode_task(tokenizer, data, 32, tmp_path)
    assert len(calls) == len(SPLITS)  # tokenized again, not trusted
    assert same_encoding(rebuilt, first)
    assert same_encoding(encode._read_npz(path), first)  # and the entry is whole again
