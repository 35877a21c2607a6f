"""The local zero-shot expert on the real model: SmolLM2-135M-Instruct read from the catalogue's GGUF file by
transformers (with the gguf package), scoring MedMCQA's subject names. Slow: a 93 MB download into the
session's cache and some 15 s of loading and dequantising."""

import numpy as np
import pytest
import torch

from trainables.data import Examples
from trainables.experts import llm
from trainables.experts.llm import LabelScorer, LocalLLMExpert
from trainables.experts.prompts import PromptBuilder
from tuning.assets.catalog import MEDMCQA_SUBJECTS

pytestmark = pytest.mark.slow

ROWS = Examples((
    "Which tooth erupts first in the permanent dentition?\nA. Incisor\nB. First molar\nC. Canine\nD. Premolar",
    "Drug of choice for absence seizures?\nA. Ethosuximide\nB. Phenytoin\nC. Carbamazepine\nD. Diazepam",
), [2, 9])


@pytest.fixture(scope="module")
def smollm2_model(smollm2_loaded):
    torch.set_num_threads(1)  # a shared 2-core machine
    return smollm2_loaded


def test_smollm2_scores_every_subject_with_one_forward_pass_per_row(smollm2_model):
    model, tokenizer = smollm2_model
    scorer = LabelScorer(model, tokenizer, MEDMCQA_SUBJECTS)
    # Each of the 13 subject names begins with a token of its own after "Answer:" and a space: one token each.
    assert all(len(tokens) == 1 for tokens in scorer.needed)
    prompt = tokenizer.decode(scorer.prompt_ids("Hello"))
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\nAnswer:")
    expert = LocalLLMExpert(scorer, ROWS, PromptBuilder(MEDMCQA_SUBJECTS, noun="medical subject"), "llm:smollm2")
    answer = expert.label([0, 1])
    assert answer.probs.shape == (2, 13)
    np.testing.assert_allclose(answer.probs.sum(axis=1), 1)
    assert answer.cost.calls == 2 and answer.cost.prompt_tokens > 2 * 100 and answer.cost.seconds > 0
    one_by_one = np.vstack([expert.label([row]).probs for row in (0, 1)])
    np.testing.assert_allclose(answer.probs, one_by_one, atol=1e-5)  # left padding changes nothing


def test_a_cached_gguf_is_converted_once_and_read_back_as_the_same_model(smollm2_model, smollm2_gguf, monkeypatch):
    """The session's first load (smollm2_loaded) converted the catalogue's file and kept the result beside it; the
    next load reads that copy without parsing the GGUF file, and gives the same weights, tokens and answers."""
    import gguf  # noqa: PLC0415
    import transformers.modeling_gguf_pytorch_utils as gguf_utils  # noqa: PLC0415

    model, tokenizer = smollm2_model
    converted = llm.converted_copy(smollm2_gguf)
    assert converted is not None and (converted / "model.safetensors").is_file()

    def parsed(*args, **kwargs):
        raise AssertionError("the GGUF file was parsed again")

    monkeypatch.setattr(gguf_utils, "load_gguf_checkpoint", parsed)
    monkeypatch.setattr(gguf, "GGUFReader", parsed)
    again, again_tokenizer = llm.load_gguf(smollm2_gguf)
    assert again.dtype == torch.float32 and not again.training
    weights, read_back = model.state_dict(), again.state_dict()
    assert weights.keys() == read_back.keys() and all(torch.equal(weights[k], read_back[k]) for k in weights)
    prompts = PromptBuilder(MEDMCQA_SUBJECTS, noun="medical subject")
    scorers = [LabelScorer(m, tok, MEDMCQA_SUBJECTS) for m, tok in ((model, tokenizer), (again, again_tokenizer))]
    assert scorers[0].prompt_ids(ROWS.text[0]) == scorers[1].prompt_ids(ROWS.text[0])
    answers = [LocalLLMExpert(s, ROWS, prompts, "llm:smollm2").label([0, 1]).probs for s in scorers]
    np.testing.assert_array_equal(answers[0], answers[1])


def test_the_loop_asks_smollm2_once_per_queried_row_and_reads_the_cache_after(smollm2_model, smollm2_gguf,
                                                                             tmp_path_factory, reuse_smollm2):
    """--expert llm:<file> in the Expert-Loop (smoke data): the model is asked about each queried row once, its
    answers are those of the model scored directly, and a second run reads every answer from the disk cache."""
    import dataclasses  # noqa: PLC0415

    from tests.conftest import smoke_prepared  # noqa: PLC0415
    from trainables import metrics as m  # noqa: PLC0415
    from trainables.config import TrialConfig  # noqa: PLC0415
    from trainables.expert_loop import run_active_loop  # noqa: PLC0415
    from trainables.experts.runtime import ExpertContext  # noqa: PLC0415
    from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, load_data  # noqa: PLC0415

    data = load_data(DataSettings(**SMOKE_SETTINGS), progress=lambda *a: None)
    context = ExpertContext(data.train, gguf_file=str(smollm2_gguf), cache_folder=str(tmp_path_factory.mktemp("a")))
    prepared = dataclasses.replace(smoke_prepared(tmp_path_factory, need_teachers=False), expert_context=context)
    trial = TrialConfig(method="active_loop", learning_rate=5e-3, batch_size=8, epochs=1, initial_pool_size=16,
                        query_size=3, max_iterations=1, bf16=False, expert=f"llm:{smollm2_gguf}", expert_price=0.5)
    runs = []
    for _ in range(2):
        reports = []
        run_active_loop(trial, prepared, lambda metrics, model, state, out=reports: out.append((metrics, state)))
        runs.append(reports[-1])
    (first, state), (second, state_again) = runs
    assert (first[m.EXPERT_CALLS], first[m.EXPERT_CACHE_HITS], first[m.EXPERT_PAID]) == (3, 0, 1.5)
    assert (second[m.EXPERT_CALLS], second[m.EXPERT_CACHE_HITS], second[m.EXPERT_PAID]) == (0, 3, 0)
    assert first[m.EXPERT_PRICED_COST] == second[m.EXPERT_PRICED_COST] == 1.5  # the labels are worth the same
    assert first[m.EXPERT_TOKENS] > 3 * 20 and state_again["answers"] == state["answers"]
    model, tokenizer = smollm2_model
    direct = LocalLLMExpert(LabelScorer(model, tokenizer, data.label_names), data.train,
                            PromptBuilder(data.label_names), "direct").label(state["queried"])
    np.testing.assert_allclose([state["answers"][str(r)] for r in state["queried"]], direct.probs, atol=1e-5)
