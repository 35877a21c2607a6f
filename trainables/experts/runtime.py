"""The expert a trial asks, built from its settings (TrialConfig.expert and friends) and what the driver gave it.

Teachers and the oracle need nothing beyond Prepared. The others read the training split's text, which the
driver puts in an ExpertContext on Prepared (with the language model's file, the answer cache's folder and
the folder of a person's files), because a trial never opens the driver's asset cache itself.

Answers that cost something are cached on disk (cache.ResponseCache): the endpoint's by (url, model, prompt,
the settings that shape an answer: temperature, max_tokens, log-probabilities), the local model's by (its file's
sha256, the scoring's version and answer prefix, the prompt), so that a resumed run, or the next trial of a sweep
on the same machine, never asks twice for a row. A cache is local to a machine: trials of a sweep on a Ray
cluster share answers only with the trials on their node.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.data import Examples
from trainables.errors import UsageError
from trainables.experts.base import Cost, Expert, ExpertAnswer, OracleExpert, TeacherExpert, as_rows
from trainables.experts.cache import ResponseCache, cache_key
from trainables.experts.prompts import DEFAULT_NOUN, PromptBuilder
from trainables.experts.spec import parse_expert

# The cache key's "url" for a local model: local:<sha256 of its file>; its "model" is llm.scoring_id().
LOCAL_URL = "local:"


@dataclass(frozen=True)
class ExpertContext:
    """What the driver hands a trial for the experts that read text (llm, openai, human)."""

    examples: Examples  # the training split, in the row order of prepared.encoded["train"]
    noun: str = DEFAULT_NOUN  # what a class is called in the prompt ("medical subject")
    # Absolute paths: a trial of Ray Tune runs in a folder of its own, not the driver's (tuning/assets/experts.py).
    gguf_file: str = ""  # llm: the resolved file
    cache_folder: str = ""  # answers of llm and openai, on this machine's disk
    human_folder: str = ""  # human: where a round's query files go


def build_expert(trial, prepared, answered: dict[int, np.ndarray] | None = None) -> Expert:
    """The expert `trial.expert` names. `answered`: answers a person already gave (row -> probabilities),
    read back from the loop's state; a human expert asks only for the rows not among them."""
    spec = parse_expert(trial.expert)
    if spec.kind == "teachers":
        return TeacherExpert(prepared.teachers)
    if spec.kind == "oracle":
        return OracleExpert(prepared.encoded["train"].labels, prepared.num_labels)
    context = getattr(prepared, "expert_context", None)
    if context is None:
        raise UsageError(f"expert {spec} reads the rows' text, and this run was prepared without it "
                         "(tuning/assets/prepare.py: expert_context)")
    prompts = PromptBuilder(tuple(prepared.label_names), noun=context.noun)
    if spec.kind == "llm":
        return CachedLocalLLM(Path(context.gguf_file), context.examples, prompts, _cache(context), str(spec))
    if spec.kind == "openai":
        from trainables.experts.endpoint import EndpointExpert, EndpointSettings, Pricing  # noqa: PLC0415 (urllib)

        settings = EndpointSettings(trial.expert_url, trial.expert_model, pricing=Pricing(per_call=trial.expert_price))
        return EndpointExpert(settings, context.examples, prompts, _cache(context))
    from trainables.experts.human import HumanExpert  # noqa: PLC0415

    return HumanExpert(Path(context.human_folder), context.examples, tuple(prepared.label_names), answered or {})


def _cache(context: ExpertContext) -> ResponseCache:
    if not context.cache_folder:
        raise UsageError("this expert's answers need a cache folder (ExpertContext.cache_folder)")
    return ResponseCache(context.cache_folder)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CachedLocalLLM:
    """A local language model (llm.LocalLLMExpert) behind the answer cache. The model is loaded on the first
    row the cache does not hold, so a run whose rows are all cached loads nothing. Cost: one call per row
    scored now, a cache hit per row read back; no price (the machine is the user's), seconds as measured."""

    sunk_gold_labels = 0

    def __init__(self, gguf_file: Path, examples: Examples, prompts: PromptBuilder, cache: ResponseCache,
                 name: str) -> None:
        if not gguf_file.is_file():
            raise UsageError(f"expert {name}: the model file {gguf_file} does not exist")
        from trainables.experts.llm import scoring_id  # noqa: PLC0415 (torch: a trial has it, a driver need not)

        self.gguf_file, self.examples, self.prompts, self.cache, self.name = gguf_file, examples, prompts, cache, name
        # Keyed by the file's content, not by its name (llm:smollm2 or a path): the same model, the same answers;
        # and by how answers are scored, so a change of the scoring code never serves the older code's answers.
        self.url, self.model = LOCAL_URL + file_sha256(gguf_file), scoring_id()
        self._expert = None

    def label(self, rows) -> ExpertAnswer:
        rows = as_rows(rows)
        started = time.perf_counter()
        keys = [cache_key(self.url, self.model, self.prompts.message(self.examples, int(r))) for r in rows]
        found = {k: r for k in set(keys) if (r := self.cache.get(k)) is not None}
        missing = sorted({int(r) for k, r in zip(keys, rows, strict=True) if k not in found})
        cost = Cost(cache_hits=len(rows) - sum(1 for k in keys if k not in found))
        if missing:
            answer = self._model().label(missing)
            for row, probs in zip(missing, answer.probs, strict=True):
                message = self.prompts.message(self.examples, row)
                key = cache_key(self.url, self.model, message)
                found[key] = {"probs": probs.tolist()}
                self.cache.put(key, self.url, self.model, message, found[key])
            cost = cost + answer.cost
        probs = np.array([found[k]["probs"] for k in keys], dtype=np.float64).reshape(len(rows), -1)
        return ExpertAnswer(probs, Cost(**{**cost.to_dict(), "seconds": time.perf_counter() - started}))

    def _model(self):
        if self._expert is None:
            from trainables.experts.llm import LabelScorer, LocalLLMExpert, load_gguf  # noqa: PLC0415 (transformers)

            model, tokenizer = load_gguf(self.gguf_file)
            scorer = LabelScorer(model, tokenizer, self.prompts.label_names)
            self._expert = LocalLLMExpert(scorer, self.examples, self.prompts, self.name)
        return self._expert
