"""FLOP counts for one training step of a BERT-like classifier and for a square matrix product.

The count is the usual one (Kaplan et al. 2020, "Scaling Laws for Neural Language Models"): a
parameter touched by one token costs 2 FLOPs forward and 4 backward (6 together), and attention's
two products (Q K^T and A V) cost 4 * seq^2 * hidden per layer and sequence forward, 12 with the
backward. Embedding look-ups are not matrix products, so embedding parameters count nothing.
"""

from __future__ import annotations

EMBEDDING_PREFIXES = ("embeddings.",)  # word, position and token-type tables and their LayerNorm
PER_SEQUENCE_PREFIXES = ("pooler.", "classifier.")  # applied to the [CLS] vector only, once per sequence


def training_step_flops(per_token_params: int, per_sequence_params: int, layers: int, hidden: int,
                        batch: int, seq: int) -> int:
    """FLOPs of forward + backward for `batch` sequences of `seq` tokens.

    6 * per_token_params * tokens            (every encoder-layer weight meets every token)
    + 6 * per_sequence_params * batch        (pooler and classifier see one vector per sequence)
    + 12 * layers * seq**2 * hidden * batch  (attention scores and weighted sum, forward and backward)
    The optimizer's element-wise update is not counted: it is not a matrix product.
    """
    tokens = batch * seq
    return 6 * per_token_params * tokens + 6 * per_sequence_params * batch + 12 * layers * seq**2 * hidden * batch


def matmul_flops(n: int) -> int:
    """An (n x n) @ (n x n) product: n^2 outputs, each n multiplies and n adds."""
    return 2 * n**3


def split_parameters(named_sizes: dict[str, int], base_prefix: str = "bert") -> dict[str, int]:
    """Parameter counts by how often they are applied: {"embedding", "per_token", "per_sequence"}.
    Names are a transformers model's parameter names; the base model's prefix (e.g. 'bert.') is ignored."""
    counts = {"embedding": 0, "per_token": 0, "per_sequence": 0}
    for name, size in named_sizes.items():
        local = name.removeprefix(f"{base_prefix}.")
        if local.startswith(EMBEDDING_PREFIXES):
            counts["embedding"] += size
        elif local.startswith(PER_SEQUENCE_PREFIXES):
            counts["per_sequence"] += size
        else:
            counts["per_token"] += size
    return counts


def model_step_flops(model, batch: int, seq: int) -> tuple[int, dict[str, int]]:
    """training_step_flops for a transformers model, and the parameter split it used."""
    counts = split_parameters({name: p.numel() for name, p in model.named_parameters()}, model.base_model_prefix)
    config = model.config
    flops = training_step_flops(counts["per_token"], counts["per_sequence"], config.num_hidden_layers,
                                config.hidden_size, batch, seq)
    return flops, counts


def sequence_flops(per_token_params: int, per_sequence_params: int, layers: int, hidden: int,
                   lengths, passes: int) -> int:
    """FLOPs of `passes` x (2 per parameter and token) over sequences of the given real lengths:
    passes=3 is a training step (forward 2 + backward 4 = 6), passes=1 a forward pass (2).

    sum over sequences of  2*passes * per_token_params * n  +  2*passes * per_sequence_params
                          + 4*passes * layers * n**2 * hidden   (attention's two products)
    Padding is not counted: it is work a better batching would not do, so it shows up as waste."""
    lengths = [int(n) for n in lengths]
    tokens, squares = sum(lengths), sum(n * n for n in lengths)
    return 2 * passes * (per_token_params * tokens + per_sequence_params * len(lengths)
                         + 2 * layers * squares * hidden)


def teacher_prep_flops(model, train_lengths, epochs: int, logit_lengths) -> int:
    """The arithmetic of preparing one teacher: fine-tuning (6 x parameters x tokens per epoch, plus
    attention) on its training rows, then logits (2 x parameters x tokens, plus attention) on every split.
    `train_lengths`, `logit_lengths`: real token counts per example. Embeddings count nothing; the
    optimizer's element-wise update is not a matrix product and is not counted either."""
    counts = split_parameters({name: p.numel() for name, p in model.named_parameters()}, model.base_model_prefix)
    shape = (counts["per_token"], counts["per_sequence"], model.config.num_hidden_layers, model.config.hidden_size)
    return epochs * sequence_flops(*shape, train_lengths, passes=3) + sequence_flops(*shape, logit_lengths, passes=1)
