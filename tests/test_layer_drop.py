"""keep_layers: the student keeps exactly the chosen teacher layers, embeddings and pooler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModel, BertConfig, BertModel

from trainables.errors import UsageError
from trainables.layer_drop import keep_layers


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, BertModel]:
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                        vocab_size=100)
    model = BertModel(config).eval()
    folder = tmp_path_factory.mktemp("src")
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]))
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')
    return folder, model


@pytest.mark.parametrize("layers", [(0, 2), (0, 2, 3), (3, 1)])
def test_kept_layers_equal_the_sources_chosen_layers(source, tmp_path, layers):
    src, model = source
    keep_layers(src, tmp_path / "dst", layers)
    student = AutoModel.from_pretrained(tmp_path / "dst")
    assert isinstance(student, BertModel)
    assert student.config.num_hidden_layers == len(layers) == len(student.encoder.layer)
    teacher_state, student_state = model.state_dict(), student.state_dict()
    for key, value in student_state.items():
        if key.startswith("encoder.layer."):
            new_idx, rest = key.removeprefix("encoder.layer.").split(".", 1)
            key = f"encoder.layer.{layers[int(new_idx)]}.{rest}"
        assert torch.equal(value, teacher_state[key]), key  # embeddings and pooler too
    assert len(student_state) < len(teacher_state)


def test_only_safetensors_and_tokenizer_files_are_written(source, tmp_path):
    src, _ = source
    keep_layers(src, tmp_path / "dst", [1, 2])
    names = sorted(p.name for p in (tmp_path / "dst").iterdir())
    assert names == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]


@pytest.mark.parametrize("layers, message", [
    ([0, 4], r"layer indices \[4\] out of range"),
    ([-1], r"layer indices \[-1\] out of range"),
    ([1, 1], "duplicate layer indices"),
    ([], "at least one layer"),
])
def test_bad_layer_indices_are_usage_errors(source, tmp_path, layers, message):
    src, _ = source
    with pytest.raises(UsageError, match=message):
        keep_layers(src, tmp_path / "dst", layers)
    assert not (tmp_path / "dst").exists()
