"""The `--expert` value, parsed: who labels the queried rows.

    teachers                 the fine-tuned teacher ensemble (the default)
    oracle                   the gold label (a perfect expert, to measure what one would give)
    llm:<preset>             a local zero-shot language model from the asset catalogue, e.g. llm:smollm2
    llm:<file.gguf>          a local GGUF file
    openai                   an OpenAI-compatible endpoint (--expert-url, --expert-model; key from the environment)
    human                    a person, through files (human.py)

Only the syntax is checked here: which presets exist is the asset catalogue's business (tuning/assets), so
`llm_presets` is given by the caller when it wants unknown names refused at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from trainables.errors import UsageError

KINDS = ("teachers", "oracle", "llm", "openai", "human")
LLM_SUFFIX = ".gguf"
USAGE = "teachers, oracle, llm:<preset or .gguf file>, openai or human"


@dataclass(frozen=True)
class ExpertSpec:
    kind: str  # one of KINDS
    model: str = ""  # llm: the preset name or the GGUF file's path as given

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown expert kind {self.kind!r} (choose from {', '.join(KINDS)})")
        if (self.kind == "llm") != bool(self.model):
            raise UsageError(f"expert {self.kind!r}: a model is given for llm, and only for llm")

    def __str__(self) -> str:
        """The value that parses back to this spec."""
        return f"llm:{self.model}" if self.kind == "llm" else self.kind

    @property
    def arm_suffix(self) -> str:
        """The name a study arm carries after '@' (`expert:margin@llm`)."""
        return self.kind

    @property
    def needs_teachers(self) -> bool:
        """The loop reads the teacher ensemble: as the expert, or (oracle) for the initial pool's distillation
        term and robust_least_confidence, as it always has. The other experts train the initial pool on gold."""
        return self.kind in ("teachers", "oracle")

    @property
    def answers_in_state(self) -> bool:
        """Its answers are kept in the loop's state (and checkpoint): they cost something to get again."""
        return self.kind in ("llm", "openai", "human")

    @property
    def gives_gold(self) -> bool:
        """Its answers are the gold labels (the oracle): counted as gold labels, never as expert labels or
        expert costs, and right by definition."""
        return self.kind == "oracle"

    @property
    def hard_labels(self) -> bool:
        """Answers are one label per row (cross-entropy), not soft labels for the distillation term."""
        return self.kind in ("oracle", "human")

    @property
    def is_file(self) -> bool:
        """llm: the model names a GGUF file rather than a preset."""
        return self.kind == "llm" and self.model.lower().endswith(LLM_SUFFIX)


def parse_expert(value: str, llm_presets: Collection[str] | None = None) -> ExpertSpec:
    """'llm:smollm2' -> ExpertSpec('llm', 'smollm2'). A UsageError names the value and what is accepted."""
    text = value.strip()
    kind, sep, model = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise UsageError(f"--expert {value!r} is not an expert (choose from {USAGE})")
    if kind != "llm":
        if sep:
            flags = " (the endpoint is given by --expert-url and --expert-model)" if kind == "openai" else ""
            raise UsageError(f"--expert {value!r}: {kind} takes no ':...'{flags}")
        return ExpertSpec(kind)
    model = model.strip()
    if not model:
        examples = f" (presets: {', '.join(llm_presets)})" if llm_presets else ""
        raise UsageError(f"--expert {value!r}: name a language model, llm:<preset or .gguf file>{examples}")
    spec = ExpertSpec("llm", model)
    if llm_presets is not None and not spec.is_file and model not in llm_presets:
        raise UsageError(f"--expert {value!r}: {model!r} is neither a language model preset "
                         f"({', '.join(llm_presets) or 'none'}) nor a {LLM_SUFFIX} file")
    return spec
