"""The local language model behind its answer cache (runtime.CachedLocalLLM), as the trials of a sweep or a study
use it: the driver resolves the model's file and the cache's folder, and every trial, which Ray Tune runs in a
folder of its own (RAY_CHDIR_TO_TRIAL_DIR), finds the file and shares the one cache. An answer is keyed by what
made it: the file's content (not its name), the scoring's version and answer prefix, the prompt.

No model is loaded: FixedModel stands in for the loaded one (llm.LocalLLMExpert), so only the bookkeeping runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import trainables.experts.llm as llm
from trainables.config import TrialConfig
from trainables.data import smoke_task_data
from trainables.experts.base import Cost, ExpertAnswer
from trainables.experts.cache import ResponseCache
from trainables.experts.prompts import PromptBuilder
from trainables.experts.runtime import CachedLocalLLM, build_expert
from tuning.assets.experts import ANSWERS_FOLDER, expert_context

EXPERT = "llm:models/m.gguf"  # relative to the folder the driver was started in
ROWS = [0, 1, 2]


class FixedModel:
    """The same answer for every row, one call each; remembers the rows it was asked about."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def label(self, rows) -> ExpertAnswer:
        self.asked += [int(r) for r in rows]
        return ExpertAnswer(np.tile([0.1, 0.2, 0.3, 0.4], (len(rows), 1)), Cost(calls=len(rows)))


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """The driver's folder, where it is started with --expert llm:models/m.gguf and EXPERT_LOOP_CACHE=cache."""
    folder = tmp_path / "project"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "m.gguf").write_bytes(b"GGUF, not a real model: never loaded here")
    monkeypatch.chdir(folder)
    monkeypatch.setenv("EXPERT_LOOP_CACHE", "cache")
    return folder


def in_trial_folder(folder: Path, monkeypatch, prepared, model: FixedModel):
    """What a trial does: Ray Tune moves it into its trial folder, then it builds the expert from Prepared."""
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    expert = build_expert(TrialConfig(method="active_loop", expert=EXPERT), prepared)
    monkeypatch.setattr(expert, "_model", lambda: model)
    return expert


def test_the_driver_hands_the_trials_absolute_paths(project):
    data = smoke_task_data(0)
    context = expert_context(EXPERT, data, progress=lambda *a: None)
    assert context.gguf_file == str(project / "models" / "m.gguf")
    assert context.cache_folder == str(project / "cache" / ANSWERS_FOLDER)


def test_prepare_puts_absolute_paths_on_what_every_trial_receives(project):
    from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, prepare  # noqa: PLC0415 (torch, transformers)

    prepared = prepare(DataSettings(**SMOKE_SETTINGS), need_teachers=False, expert=EXPERT, progress=lambda *a: None)
    context = prepared.expert_context
    assert (context.gguf_file, context.cache_folder) == (str(project / "models" / "m.gguf"),
                                                         str(project / "cache" / ANSWERS_FOLDER))


def test_every_trial_finds_the_model_and_shares_one_answer_cache(project, monkeypatch):
    """The README's promise: the next trial of a sweep on this machine pays nothing for a row already answered."""
    data = smoke_task_data(0)
    prepared = SimpleNamespace(expert_context=expert_context(EXPERT, data, progress=lambda *a: None),
                               label_names=data.label_names)
    trials = project / "ray_results" / "sweep"
    first_model, second_model = FixedModel(), FixedModel()
    first = in_trial_folder(trials / "trial_1", monkeypatch, prepared, first_model)
    assert first.label(ROWS).cost.calls == 3 and first_model.asked == ROWS
    second = in_trial_folder(trials / "trial_2", monkeypatch, prepared, second_model)
    answer = second.label(ROWS)
    assert (answer.cost.calls, answer.cost.cache_hits, second_model.asked) == (0, 3, [])
    assert first.cache.folder == second.cache.folder == project / "cache" / ANSWERS_FOLDER
    assert not list(trials.rglob("*.json"))  # no answer cache of its own in a trial's folder


# ---------------------------------------------------------------- the cache's key


def asked_now(gguf: Path, cache: ResponseCache, noun: str = "category") -> int:
    """How many of ROWS a fresh expert on this file asks its model about (the others come from the cache)."""
    data = smoke_task_data(0)
    expert = CachedLocalLLM(gguf, data.train, PromptBuilder(tuple(data.label_names), noun), cache, f"llm:{gguf}")
    model = FixedModel()
    expert._model = lambda: model
    expert.label(ROWS)
    return len(model.asked)


@pytest.fixture
def answered(tmp_path) -> tuple[Path, ResponseCache]:
    """A model file whose answers to ROWS are in the cache."""
    gguf, cache = tmp_path / "a" / "model.gguf", ResponseCache(tmp_path / "answers")
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF weights")
    assert asked_now(gguf, cache) == 3 and asked_now(gguf, cache) == 0
    return gguf, cache


def test_the_same_content_under_another_name_reads_the_same_answers(answered, tmp_path):
    gguf, cache = answered
    copy = tmp_path / "b" / "renamed.gguf"  # llm:smollm2 and llm:<path to the same file> alike
    copy.parent.mkdir()
    copy.write_bytes(gguf.read_bytes())
    assert asked_now(copy, cache) == 0
    copy.write_bytes(b"GGUF other weights")
    assert asked_now(copy, cache) == 3


def test_a_new_scoring_version_or_answer_prefix_asks_again(answered, monkeypatch):
    """Answers of an older scoring are misses, never served as this scoring's."""
    gguf, cache = answered
    monkeypatch.setattr(llm, "SCORING_VERSION", llm.SCORING_VERSION + 1)
    assert asked_now(gguf, cache) == 3
    monkeypatch.undo()
    monkeypatch.setattr(llm, "ANSWER_PREFIX", "The answer is")
    assert asked_now(gguf, cache) == 3
    monkeypatch.undo()
    assert asked_now(gguf, cache, noun="subject") == 3  # the prompt's text: the template's is in every message
    assert asked_now(gguf, cache) == 0  # the first scoring's answers are still there, for its code
