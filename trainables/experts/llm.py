"""A local zero-shot language model as the expert: score, don't generate.

Each row becomes a chat prompt (prompts.PromptBuilder) ending in "Answer:", and the model's log-probability
of each label name after it gives the label's score; a softmax over the labels turns the scores into soft
labels for the distillation term. A label is scored by its name's tokens up to the first one that sets it
apart from every other label (after that its name is fixed, and scoring the rest would only penalise long
names for their tokenisation). When every name begins with a token of its own, as MedMCQA's 13 subjects do
for SmolLM2, that is one forward pass per row, read at the prompt's last position.

The model is read from a GGUF file by transformers (with the `gguf` package), dequantised to float32.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from trainables.data import Examples
from trainables.experts.base import Cost, ExpertAnswer, as_rows
from trainables.experts.prompts import PromptBuilder, display_name, probs_from_logprobs

ANSWER_PREFIX = "Answer:"  # after the assistant's turn begins; each label name follows it after a space
BATCH_SIZE = 16  # sequences per forward pass: on 2 CPU threads larger batches gain little and pad more
# The version of how an answer is computed from the model and the user message: the chat wrapping and its
# fallback (prompt_ids), which tokens of a label are scored (distinguishing_lengths), how scores become
# probabilities. Bump it by hand when any of these changes: the answer cache (runtime.CachedLocalLLM) keys on
# it, so answers of the older scoring become misses instead of being served as this one's.
SCORING_VERSION = 1


def scoring_id() -> str:
    """What an answer depends on beyond the model file's content and the user message (which holds the prompt
    template's text): the scoring's version, and the answer prefix itself, whose change then needs no bump."""
    return f"scoring v{SCORING_VERSION}, answer prefix {ANSWER_PREFIX!r}"


def load_gguf(path: Path | str):
    """(model, tokenizer) from one GGUF file, in float32 on the CPU, in evaluation mode.

    transformers parses a GGUF file three times over (tokenizer, configuration, weights), in Python: about 15 s
    for SmolLM2-135M on 2 cores, paid by every process that asks the model. For a file of the asset cache (a
    preset: its folder holds the cache's marker) the float32 model and the tokenizer are saved beside it once, in
    safetensors, and read from there after (about a second). A file of the user's own is read as it is, every time:
    nothing is written beside it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415 (slow; only when a model loads)

    path = Path(path)
    converted = converted_copy(path)
    if converted is not None and converted.is_dir():
        tokenizer = AutoTokenizer.from_pretrained(converted)
        model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32, use_safetensors=True)
        return model.eval(), tokenizer
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    if converted is not None:
        keep_converted(model, tokenizer, converted)
    return model.eval(), tokenizer


# tuning/assets/catalog.MARKER (trainables does not import tuning): written last in a folder of the asset cache.
ASSET_MARKER = ".complete"


def converted_copy(path: Path) -> Path | None:
    """Where the conversion of a cached GGUF file is kept (None: not a file of the asset cache). Named by the
    file's size and time, and by the transformers version that converted it: another file or another
    conversion code is another folder."""
    import transformers  # noqa: PLC0415

    if not (path.parent / ASSET_MARKER).is_file():
        return None
    stat = path.stat()
    return path.parent / f".{path.name}-{stat.st_size}-{stat.st_mtime_ns}.transformers-{transformers.__version__}"


def keep_converted(model, tokenizer, converted: Path) -> None:
    """Save the converted model (safetensors) and tokenizer, whole or not at all; a process that converted the
    same file at the same time keeps its own copy. A folder that cannot be written costs only the speed-up.
    (save_pretrained refuses a model transformers read from GGUF as "quantized": its float32 weights are saved
    with safetensors, its configuration without the GGUF quantisation entry.)"""
    from safetensors.torch import save_model  # noqa: PLC0415

    from trainables.atomic import publish_folder, staging_folder  # noqa: PLC0415

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    try:
        with staging_folder(converted) as staging:
            save_model(model, str(staging / "model.safetensors"), metadata={"format": "pt"})
            config.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            publish_folder(staging, converted, lambda folder: (folder / "config.json").is_file())
    except OSError:
        pass


def distinguishing_lengths(label_tokens: Sequence[Sequence[int]]) -> list[int]:
    """For each label, how many of its tokens it takes to tell it from every other label: one more than its
    longest common prefix with another label (capped at its own length)."""
    lengths = []
    for i, tokens in enumerate(label_tokens):
        shared = 0
        for j, other in enumerate(label_tokens):
            if i != j:
                common = next((k for k, (a, b) in enumerate(zip(tokens, other, strict=False)) if a != b),
                              min(len(tokens), len(other)))
                shared = max(shared, common)
        lengths.append(min(shared + 1, len(tokens)))
    return lengths


class LabelScorer:
    """Log-probabilities of label names after prompts, for a causal language model and its tokenizer."""

    def __init__(self, model, tokenizer, label_names: Sequence[str], batch_size: int = BATCH_SIZE) -> None:
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.label_tokens = [tokenizer(" " + display_name(name), add_special_tokens=False)["input_ids"]
                             for name in label_names]
        if any(not tokens for tokens in self.label_tokens):
            raise ValueError("a label name has no tokens")
        if len({tuple(tokens) for tokens in self.label_tokens}) < len(self.label_tokens):
            raise ValueError("two label names tokenize the same: the model cannot tell them apart")
        self.needed = [tokens[:n] for tokens, n in zip(self.label_tokens, distinguishing_lengths(self.label_tokens),
                                                        strict=True)]

    def prompt_ids(self, message: str) -> list[int]:
        """The chat prompt for one user message, ending in the assistant's "Answer:"."""
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                                      add_generation_prompt=True)
        else:
            text = f"{message}\n"
        return self.tokenizer(text + ANSWER_PREFIX, add_special_tokens=False)["input_ids"]

    def score(self, prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """(rows, labels) float64: the log-probability of each label's needed tokens after each prompt."""
        # One sequence per (row, distinct prefix of needed tokens but their last): labels that need only their
        # first token share the prompt itself, so rows without shared first tokens cost one sequence each.
        prefixes = sorted({tuple(tokens[:-1]) for tokens in self.needed}, key=len)
        jobs = [(row, prefix) for row in range(len(prompts)) for prefix in prefixes]
        logprobs = self._forward([list(prompts[row]) + list(prefix) for row, prefix in jobs],
                                 [len(prompts[row]) - 1 for row, _ in jobs])
        read = {job: lp for job, lp in zip(jobs, logprobs, strict=True)}  # (row, prefix) -> (positions, vocab)
        scores = np.zeros((len(prompts), len(self.needed)))
        for row in range(len(prompts)):
            for k, tokens in enumerate(self.needed):
                at = read[(row, tuple(tokens[:-1]))]
                scores[row, k] = sum(float(at[j, token]) for j, token in enumerate(tokens))
        return scores

    def _forward(self, sequences: list[list[int]], first: list[int]) -> list[np.ndarray]:
        """Log-softmax over the vocabulary at every position from `first` on, per sequence. Batches of similar
        lengths are padded on the left, so that every sequence ends at the last position and the model need
        only compute the logits of the last few positions (the whole (batch, length, 49k-token vocabulary)
        array would take hundreds of MB); positions are counted from each sequence's own first token."""
        out: list[np.ndarray | None] = [None] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda s: len(sequences[s]))
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(sequences[s]) for s in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for b, s in enumerate(batch):
                ids[b, width - len(sequences[s]):] = torch.tensor(sequences[s])
                mask[b, width - len(sequences[s]):] = 1
            keep = max(len(sequences[s]) - first[s] for s in batch)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                                    logits_to_keep=keep).logits
            for b, s in enumerate(batch):
                wanted = len(sequences[s]) - first[s]
                out[s] = torch.log_softmax(logits[b, keep - wanted:].double(), dim=-1).numpy()
        return out


class LocalLLMExpert:
    """Labels rows of `examples` (the split it is bound to) with a LabelScorer. Cost: one call per row,
    the prompt tokens it read, the seconds it took; no price (the machine is the user's)."""

    sunk_gold_labels = 0  # zero-shot: no gold label made it

    def __init__(self, scorer: LabelScorer, examples: Examples, prompts: PromptBuilder, name: str) -> None:
        self.scorer, self.examples, self.prompts, self.name = scorer, examples, prompts, name

    def label(self, rows) -> ExpertAnswer:
        rows = as_rows(rows)
        started = time.perf_counter()
        prompts = [self.scorer.prompt_ids(self.prompts.message(self.examples, int(i))) for i in rows]
        probs = probs_from_logprobs(self.scorer.score(prompts)) if len(rows) else np.zeros((0, len(self.scorer.needed)))
        cost = Cost(calls=len(rows), prompt_tokens=sum(map(len, prompts)), seconds=time.perf_counter() - started)
        return ExpertAnswer(probs, cost)
