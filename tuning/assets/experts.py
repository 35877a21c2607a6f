"""What the driver prepares for an expert that reads text (llm, openai, human): the training split's rows,
the language model's file (fetched and sha256-checked like every asset), the answer cache's folder.

The file and the folder are absolute paths (catalog.resolve_llm, catalog.cache_dir): Ray Tune runs each trial
in a folder of its own (RAY_CHDIR_TO_TRIAL_DIR), where a path relative to the driver's folder names nothing."""

from __future__ import annotations

from pathlib import Path

from trainables.data import TaskData
from trainables.experts.prompts import DEFAULT_NOUN
from trainables.experts.runtime import ExpertContext
from trainables.experts.spec import parse_expert
from tuning.assets import catalog

# What a class is called in the prompt, per data set (the default: "category").
PROMPT_NOUNS = {"medmcqa-subjects": "medical subject"}
ANSWERS_FOLDER = "expert-answers"  # under the asset cache: answers of language models, kept across runs


def answers_cache() -> Path:
    return catalog.cache_dir() / ANSWERS_FOLDER


def expert_context(expert: str, data: TaskData, human_folder: Path | str = "", progress=print) -> ExpertContext | None:
    """None for the teachers and the oracle, which read no text."""
    spec = parse_expert(expert, llm_presets=catalog.LLM_PRESETS)
    if not spec.answers_in_state:
        return None
    gguf = str(catalog.resolve_llm(spec.model, progress=progress)) if spec.kind == "llm" else ""
    return ExpertContext(data.train, PROMPT_NOUNS.get(data.name, DEFAULT_NOUN), gguf, str(answers_cache()),
                         str(human_folder))
