"""What a query strategy reads of the student, computed in one batched pass over the rows it scores.

`pool_outputs` gives the student's probabilities (dropout off) and, when asked, in the same forward
pass, the input of the classifier's last linear layer (the "embedding": BERT's pooled output after the
head's dropout, a RoBERTa or MPNet head's dense features), and, only for BALD, `mc_passes` further passes
with dropout on. BADGE's gradient embeddings need no pass of their own: trainables/query_rules.py computes
them in closed form from the probabilities and the embeddings. trainables/query.needs says which of these
a strategy reads. No Ray in here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trainables.encode import EncodedSplit
from trainables.errors import UsageError
from trainables.loop import autocast, length_sorted_batches

# Rows per batch of a dropout pass: each row runs mc_passes times in the same forward, so a batch holds
# MC_SEQUENCES / mc_passes rows (at least one) and its activations stay near a plain pass's batch of 64.
MC_SEQUENCES = 64


@dataclass(frozen=True)
class PoolOutputs:
    probs: np.ndarray  # (rows, classes): softmax of the student's logits, dropout off
    embeddings: np.ndarray | None = None  # (rows, dim), or (rows, choices, dim) for multiple choice
    mc_probs: np.ndarray | None = None  # (passes, rows, classes): dropout on


def last_linear(model) -> torch.nn.Linear:
    """The classifier's last linear layer: the last one registered whose outputs are the logits (one per class,
    or one per option for multiple choice). BERT's `classifier`, DistilBERT's `classifier`, RoBERTa's and
    MPNet's `classifier.out_proj`: in these heads it is registered last and runs last."""
    width = 1 if "MultipleChoice" in type(model).__name__ else model.config.num_labels
    found = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    if not found or found[-1].out_features != width:
        raise UsageError(f"cannot find the classifier's last linear layer ({width} outputs) in "
                         f"{type(model).__name__}: the embedding strategies (badge, coreset, contrastive) need it")
    return found[-1]


@torch.inference_mode()
def pool_outputs(model, encoded: EncodedSplit, rows: np.ndarray, *, embeddings: bool = False, mc_passes: int = 0,
                 seed: int = 0, bf16: bool = False, batch_size: int = 64) -> PoolOutputs:
    """The student's outputs on `rows` of `encoded`, in their order: one pass (the plain pass's batches and
    numbers: the probabilities are those of loop.predict_logits), with the classifier's input captured when
    `embeddings`, then `mc_passes` dropout passes (seeded, without touching the global random state)."""
    rows = np.asarray(rows, dtype=np.int64)
    model.eval()
    captured: list[torch.Tensor] = []
    hook = last_linear(model).register_forward_hook(
        lambda _module, args, _out: captured.append(args[0].float())) if embeddings else None
    logits, inputs = None, None
    try:
        for positions, batch in length_sorted_batches(encoded, rows, batch_size):
            with autocast(bf16):
                out = model(**batch).logits.float().numpy()
            logits = np.empty((len(rows), out.shape[1]), dtype=np.float32) if logits is None else logits
            logits[positions] = out
            if embeddings:
                batch_inputs = captured.pop().numpy().reshape(len(positions), *_per_row(encoded))
                inputs = np.empty((len(rows), *batch_inputs.shape[1:]), dtype=np.float32) if inputs is None else inputs
                inputs[positions] = batch_inputs
    finally:
        if hook is not None:
            hook.remove()
    if logits is None:
        raise UsageError("no rows to score")
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    mc = dropout_passes(model, encoded, rows, mc_passes, seed, bf16) if mc_passes else None
    return PoolOutputs(probs, inputs, mc)


def _per_row(encoded: EncodedSplit) -> tuple[int, ...]:
    """The shape of one row's classifier input without its width: multiple choice runs one per option."""
    return (encoded.num_choices, -1) if encoded.num_choices > 1 else (-1,)


def dropout_passes(model, encoded: EncodedSplit, rows: np.ndarray, passes: int, seed: int, bf16: bool) -> np.ndarray:
    """(passes, rows, classes) probabilities with every dropout of the model on (train mode: the hidden and the
    attention dropouts), each row repeated `passes` times inside one forward, so a pass costs no more than a
    plain pass's FLOPs and the matrices stay large. Seeded; the global torch random state is left as it was."""
    per_batch = max(1, MC_SEQUENCES // passes)
    out = np.empty((passes, len(rows), 0), dtype=np.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        try:
            for positions, batch in length_sorted_batches(encoded, rows, per_batch):
                repeated = {key: value.repeat_interleave(passes, dim=0) for key, value in batch.items()}
                with autocast(bf16):
                    logits = model(**repeated).logits.float()
                probs = torch.softmax(logits, dim=1).reshape(len(positions), passes, -1).transpose(0, 1).numpy()
                if out.shape[2] == 0:
                    out = np.empty((passes, len(rows), probs.shape[2]), dtype=np.float32)
                out[:, positions] = probs
        finally:
            model.eval()
    return out
