"""The expert interface (trainables/experts): answers and costs, the teachers and the oracle, the --expert
parser, and the arithmetic that turns a language model's log-probabilities into soft labels, on hand-worked
values (a bigram 'model' whose probabilities are written down, and a tiny random Llama for the batching)."""

import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from trainables.data import Examples
from trainables.errors import UsageError
from trainables.experts import Cost, Expert, ExpertAnswer, ExpertSpec, OracleExpert, TeacherExpert, llm, parse_expert
from trainables.experts.calibration import fit_bias, prior_corrected
from trainables.experts.llm import LabelScorer, LocalLLMExpert, distinguishing_lengths
from trainables.experts.prompts import PromptBuilder, first_token_probs, parse_answer, probs_from_logprobs
from trainables.experts.spec import KINDS
from trainables.prepared import TeacherOutputs
from trainables.study_settings import parse_arm

# ---------------------------------------------------------------- answers, costs, teachers, oracle


def test_cost_adds_field_by_field():
    total = Cost(calls=2, prompt_tokens=10, seconds=0.5, price=0.25) + Cost(calls=1, completion_tokens=3, cache_hits=4)
    assert total == Cost(calls=3, prompt_tokens=10, completion_tokens=3, seconds=0.5, price=0.25, cache_hits=4)
    assert total.to_dict()["calls"] == 3


def test_answer_checks_its_probabilities():
    answer = ExpertAnswer([[0.25, 0.75], [1.0, 0.0]])
    assert answer.probs.dtype == np.float64 and not answer.probs.flags.writeable
    assert answer.labels.tolist() == [1, 0]
    for bad in ([[0.5, 0.6]], [[-0.1, 1.1]], [[np.nan, 1.0]], [0.5, 0.5]):
        with pytest.raises(ValueError):
            ExpertAnswer(bad)
    with pytest.raises(ValueError, match="logits"):
        ExpertAnswer([[0.5, 0.5]], logits=np.zeros((2, 1, 3)))


def test_teacher_expert_is_the_ensemble_mean_and_keeps_the_logits():
    # teacher a: logits (0, ln 3) -> softmax (1/4, 3/4); teacher b: (ln 3, 0) -> (3/4, 1/4); row 1 both (0, 0).
    logits = np.array([[[0.0, math.log(3)], [0, 0]], [[math.log(3), 0.0], [0, 0]]], dtype=np.float32)
    teachers = TeacherOutputs(("a", "b"), {"train": logits}, teacher_labels=120)
    expert = TeacherExpert(teachers)
    answer = expert.label([0, 1, 0])
    np.testing.assert_allclose(answer.probs, [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], atol=1e-7)
    assert answer.logits.shape == (2, 3, 2) and answer.logits[0, 0, 1] == pytest.approx(math.log(3))
    assert expert.sunk_gold_labels == 120 and answer.cost.gold_labels == 0
    only_a = TeacherExpert(TeacherOutputs(("a",), {"train": logits[:1]}, teacher_labels=0)).label([0])
    np.testing.assert_allclose(only_a.probs, [[0.25, 0.75]], atol=1e-7)
    assert isinstance(expert, Expert)


def test_oracle_answers_one_hot_gold_and_counts_gold_labels():
    expert = OracleExpert(np.array([2, 0, 1]), num_labels=3)
    answer = expert.label(np.array([1, 2]))
    assert answer.probs.tolist() == [[1, 0, 0], [0, 1, 0]]
    assert answer.cost.gold_labels == 2 and expert.sunk_gold_labels == 0
    assert isinstance(expert, Expert)


# ---------------------------------------------------------------- --expert


def test_a_gguf_file_of_the_users_own_is_read_as_it_is_and_nothing_written_beside_it(tmp_path):
    from tuning.assets.catalog import MARKER  # noqa: PLC0415

    assert llm.ASSET_MARKER == MARKER  # the asset cache's folders are recognised by it
    (tmp_path / "mine.gguf").write_bytes(b"GGUF")
    assert llm.converted_copy(tmp_path / "mine.gguf") is None
    (tmp_path / llm.ASSET_MARKER).write_text("sha")  # a folder of the asset cache: a copy beside the file
    converted = llm.converted_copy(tmp_path / "mine.gguf")
    assert converted.parent == tmp_path and converted.name.startswith(".mine.gguf-4-")


def test_only_the_oracle_gives_gold_labels():
    assert [k for k in KINDS if ExpertSpec(k, "m" if k == "llm" else "").gives_gold] == ["oracle"]
    assert [a for a in ("oracle:margin", "expert:margin", "supervised", "kd_all") if parse_arm(a).gives_gold] == [
        "oracle:margin"]


def test_the_interface_and_its_parser_import_neither_torch_nor_transformers():
    """--expert is parsed before torch loads (a command's --help answers at once): the package must stay light."""
    probe = "import sys, trainables.experts; print(sorted({'torch', 'transformers', 'ray'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("value", "spec"), [
    ("teachers", ExpertSpec("teachers")), ("oracle", ExpertSpec("oracle")), (" Human ", ExpertSpec("human")),
    ("openai", ExpertSpec("openai")), ("llm:smollm2", ExpertSpec("llm", "smollm2")),
    ("llm:/models/My Model.GGUF", ExpertSpec("llm", "/models/My Model.GGUF")),
])
def test_parse_expert_accepts(value, spec):
    parsed = parse_expert(value, llm_presets=("smollm2",))
    assert parsed == spec
    assert parse_expert(str(parsed)) == parsed  # str() gives back a value that parses to the same
    assert parsed.arm_suffix == spec.kind
    # The loop reads the teachers with the ensemble or the oracle as its expert (the oracle's initial pool is
    # distilled, as before); answers that cost are kept in its state; a person's and the oracle's are labels.
    assert parsed.needs_teachers == (spec.kind in ("teachers", "oracle"))
    assert parsed.answers_in_state == (spec.kind in ("llm", "openai", "human"))
    assert parsed.hard_labels == (spec.kind in ("oracle", "human"))


@pytest.mark.parametrize(("value", "message"), [
    ("gpt", "--expert 'gpt' is not an expert (choose from teachers, oracle, llm:<preset or .gguf file>, openai "
            "or human)"),
    ("llm", "--expert 'llm': name a language model, llm:<preset or .gguf file> (presets: smollm2)"),
    ("llm: ", "--expert 'llm: ': name a language model"),
    ("llm:gpt4", "--expert 'llm:gpt4': 'gpt4' is neither a language model preset (smollm2) nor a .gguf file"),
    ("openai:gpt-4o", "openai takes no ':...' (the endpoint is given by --expert-url and --expert-model)"),
    ("oracle:x", "--expert 'oracle:x': oracle takes no ':...'"),
])
def test_parse_expert_refuses_with_one_clear_message(value, message):
    with pytest.raises(UsageError) as refused:
        parse_expert(value, llm_presets=("smollm2",))
    assert message in str(refused.value)


def test_parse_expert_leaves_presets_to_the_catalogue_when_not_told_them():
    assert parse_expert("llm:anything") == ExpertSpec("llm", "anything")
    with pytest.raises(UsageError):
        ExpertSpec("teachers", "x")


# ---------------------------------------------------------------- from log-probabilities to soft labels


def test_probs_from_logprobs_is_the_models_probabilities_renormalised():
    # P(label) 0.5, 0.3, 0.1 (the model's rest, 0.1, went to other tokens): renormalised 5/9, 3/9, 1/9.
    probs = probs_from_logprobs(np.log([[0.5, 0.3, 0.1], [1e-300, 1e-300, 1e-300]]))
    np.testing.assert_allclose(probs, [[5 / 9, 3 / 9, 1 / 9], [1 / 3, 1 / 3, 1 / 3]])
    assert probs.dtype == np.float64


def test_prior_correction_divides_by_the_mean_row():
    # Mean row (0.7, 0.3): row 0 -> (8/7, 2/3) -> 12/19, 7/19; row 1 -> (6/7, 4/3) -> 9/23, 14/23.
    np.testing.assert_allclose(prior_corrected([[0.8, 0.2], [0.6, 0.4]]), [[12 / 19, 7 / 19], [9 / 23, 14 / 23]])


def test_fit_bias_is_the_log_odds_of_the_gold_labels_when_the_model_says_nothing():
    # Equal scores everywhere, gold 3 x label 0 and 1 x label 1: the best shifts make P = (3/4, 1/4), i.e.
    # b0 - b1 = log 3 (a hair less: the weak L2 prior), centred.
    bias = fit_bias(np.zeros((4, 2)), np.array([0, 0, 0, 1]))
    assert bias.sum() == pytest.approx(0, abs=1e-9)
    assert bias[0] - bias[1] == pytest.approx(math.log(3), rel=1e-2)
    # Scores that already fit need no shift.
    fitted = fit_bias(np.log([[0.9, 0.1], [0.1, 0.9]]), np.array([0, 1]))
    np.testing.assert_allclose(fitted, 0, atol=1e-3)


def test_first_token_probs_splits_shared_tokens_and_shares_the_rest():
    labels = ["Pharmacology", "Physiology", "Surgery", "Dental"]
    top = [("Ph", math.log(0.4)), (" Surgery", math.log(0.3)), ("The", math.log(0.1))]
    # Ph -> 0.2 each to Pharmacology and Physiology; Surgery 0.3; Dental, unreached, gets 1 - 0.8 = 0.2.
    # Total 0.9: 2/9, 2/9, 3/9, 2/9.
    np.testing.assert_allclose(first_token_probs(top, labels), [2 / 9, 2 / 9, 3 / 9, 2 / 9])
    # Every label reached: nothing is shared out.
    np.testing.assert_allclose(first_token_probs([("A", math.log(0.6)), ("B", math.log(0.2))], ["A", "B"]),
                               [0.75, 0.25])
    assert first_token_probs([("The", -0.1), ("  ", -3.0)], labels) is None


@pytest.mark.parametrize(("text", "label"), [
    ("Social Preventive Medicine", 2), ("social_preventive_medicine.", 2), ("The subject is Medicine.", 1),
    ("**Dental**", 0), ("It is Medicine, or maybe Dental", None), ("Cardiology", None), ("", None),
])
def test_parse_answer(text, label):
    assert parse_answer(text, ["Dental", "Medicine", "Social_Preventive_Medicine"]) == label


def test_prompt_lists_the_labels_or_the_options():
    text = Examples(("Which tooth erupts first?",), [0])
    message = PromptBuilder(("Dental", "Social_Preventive_Medicine"), noun="subject").message(text, 0)
    assert "The subjects: Dental, Social Preventive Medicine." in message and "Which tooth erupts first?" in message
    choice = Examples(("2 + 2?",), [1], options=(("3", "4"),))
    message = PromptBuilder(("A", "B")).message(choice, 0)
    assert "Question: 2 + 2?\nA. 3\nB. 4" in message and "letter of the correct option only (A, B)" in message


def test_distinguishing_lengths():
    # "big dog" and "big cow" share "big": two tokens each; "cat" one; a name that is another's prefix: all of it.
    assert distinguishing_lengths([[2], [4, 3], [4, 5]]) == [1, 2, 2]
    assert distinguishing_lengths([[4], [4, 3]]) == [1, 2]


# ---------------------------------------------------------------- the scorer on a model written by hand

VOCAB = ["<pad>", "<unk>", "Answer:", "cat", "big", "dog", "cow"]


class WordTokenizer:
    """Whitespace words -> ids (unknown words -> <unk>); no chat template."""

    pad_token_id = 0
    chat_template = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [VOCAB.index(w) if w in VOCAB else 1 for w in text.split()]}


class Bigram(torch.nn.Module):
    """log P(next | previous token) from a table: after "Answer:" cat 0.5, big 0.4 (and 0.1 elsewhere); after
    "big" dog 0.75, cow 0.25. Every other row uniform."""

    def __init__(self):
        super().__init__()
        table = torch.full((len(VOCAB), len(VOCAB)), 1 / len(VOCAB), dtype=torch.float64)
        table[2] = torch.tensor([0.02, 0.02, 0.02, 0.5, 0.4, 0.02, 0.02], dtype=torch.float64)
        table[4] = torch.tensor([0, 0, 0, 0, 0, 0.75, 0.25], dtype=torch.float64)
        self.table = table.log()
        self.calls = 0

    def forward(self, input_ids, attention_mask, position_ids, logits_to_keep):
        self.calls += 1
        return SimpleNamespace(logits=self.table[input_ids][:, -logits_to_keep:])


def test_label_scores_by_hand_on_a_bigram_model():
    labels = ("cat", "big dog", "big cow")
    model = Bigram()
    scorer = LabelScorer(model, WordTokenizer(), labels, batch_size=2)
    assert scorer.needed == [[3], [4, 5], [4, 6]]
    prompts = [scorer.prompt_ids(m) for m in ("short one", "a much longer message than that")]
    assert prompts[0] == [1, 1, 2]  # the two words, then "Answer:" (unknown words are <unk>)
    scores = scorer.score(prompts)
    # cat: log 0.5; big dog: log(0.4 * 0.75) = log 0.3; big cow: log(0.4 * 0.25) = log 0.1.
    np.testing.assert_allclose(scores, np.log([[0.5, 0.3, 0.1]] * 2), rtol=1e-12)
    # Two sequences per row (the prompt; the prompt + "big"), 4 in batches of 2.
    assert model.calls == 2
    expert = LocalLLMExpert(scorer, Examples(("x", "y z"), [0, 1]), PromptBuilder(labels), "llm:bigram")
    answer = expert.label([1, 0])
    np.testing.assert_allclose(answer.probs, [[5 / 9, 3 / 9, 1 / 9]] * 2, rtol=1e-12)
    assert answer.cost.calls == 2 and answer.cost.prompt_tokens > 0 and answer.cost.price == 0


def test_label_names_the_model_cannot_tell_apart_are_refused():
    with pytest.raises(ValueError, match="tokenize the same"):
        LabelScorer(Bigram(), WordTokenizer(), ("cat", "cat"))


def test_batched_scores_equal_one_row_at_a_time_on_a_real_architecture():
    """Left padding and positions counted per sequence: a tiny random Llama gives the same log-probabilities
    whatever the batch (prompts of different lengths padded together, and one at a time)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    model = LlamaForCausalLM(config).eval()
    labels = ("cat", "big dog", "big cow")
    prompts = [[1, 2], [1, 1, 1, 1, 1, 3, 2], [4, 1, 2]]
    together = LabelScorer(model, WordTokenizer(), labels, batch_size=8).score(prompts)
    alone = LabelScorer(model, WordTokenizer(), labels, batch_size=1).score(prompts)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    with torch.inference_mode():
        by_hand = torch.log_softmax(model(torch.tensor([[1, 2, 4]])).logits[0].double(), dim=-1)
    assert together[0, 1] == pytest.approx(float(by_hand[1, 4] + by_hand[2, 5]), abs=1e-5)  # log P(big) + log P(dog)
