"""The local zero-shot expert on the real model: SmolLM2-135M-Instruct read from the catalogue's GGUF file by
transformers (with the gguf package), scoring MedMCQA's subject names. Slow: a 93 MB download into the
session's cache and some 15 s of loading and dequantising."""

import numpy as np
import pytest
import torch

from trainables.data import Examples
from trainables.experts.llm import LabelScorer, LocalLLMExpert, load_gguf
from trainables.experts.prompts import PromptBuilder
from tuning.assets.catalog import MEDMCQA_SUBJECTS

pytestmark = pytest.mark.slow

ROWS = Examples((
    "Which tooth erupts first in the permanent dentition?\nA. Incisor\nB. First molar\nC. Canine\nD. Premolar",
    "Drug of choice for absence seizures?\nA. Ethosuximide\nB. Phenytoin\nC. Carbamazepine\nD. Diazepam",
), [2, 9])


@pytest.fixture(scope="module")
def smollm2_model(smollm2_gguf):
    torch.set_num_threads(1)  # a shared 2-core machine
    return load_gguf(smollm2_gguf)


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
