"""Make a shallower student from a BERT-like encoder by keeping some of its layers.

DistilBERT was initialised this way, one layer out of two from its teacher (Sanh et al., 2019): the
kept layers and the embeddings start from trained weights, which a randomly initialised student of
the same size would have to learn from scratch.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from torch import nn
from transformers import AutoModel

from trainables.errors import UsageError

# Copied next to the weights so the new folder loads with AutoTokenizer like its source.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def keep_layers(src_folder: Path | str, dst_folder: Path | str, layers: Sequence[int]) -> None:
    """Save to `dst_folder` the model in `src_folder` with only encoder `layers`, in the order given.

    Embeddings and pooler are kept unchanged; weights are written as safetensors only.
    """
    src, dst = Path(src_folder), Path(dst_folder)
    model = AutoModel.from_pretrained(src)
    blocks = _encoder_blocks(model, src)
    chosen = _checked_layers(layers, len(blocks))
    kept = nn.ModuleList(blocks[i] for i in chosen)
    _renumber(kept)
    model.encoder.layer = kept
    model.config.num_hidden_layers = len(chosen)
    # transformers 5 writes safetensors only (v4's safe_serialization flag is gone); checked below.
    model.save_pretrained(dst)
    unsafe = [p.name for p in dst.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
    if unsafe:
        raise RuntimeError(f"save_pretrained wrote pickle-based weights {unsafe} to {dst}")
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def _encoder_blocks(model: nn.Module, src: Path) -> nn.ModuleList:
    encoder = getattr(model, "encoder", None)
    blocks = getattr(encoder, "layer", None)
    if not isinstance(blocks, nn.ModuleList):
        raise UsageError(f"cannot drop layers of {src}: not a BERT-like model (no encoder.layer list)")
    return blocks


def _checked_layers(layers: Sequence[int], n_layers: int) -> list[int]:
    chosen = list(layers)
    if not chosen:
        raise UsageError("keep_layers needs at least one layer index")
    bad = [i for i in chosen if not 0 <= i < n_layers]
    if bad:
        raise UsageError(f"layer indices {bad} out of range: the model has layers 0..{n_layers - 1}")
    if len(set(chosen)) != len(chosen):
        raise UsageError(f"duplicate layer indices in {chosen}")
    return chosen


def _renumber(blocks: nn.ModuleList) -> None:
    # Attention modules carry their position (layer_idx) for key/value caches; keep it consistent
    # with the new depth, although an encoder-only model never uses a cache.
    for new_idx, block in enumerate(blocks):
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx
