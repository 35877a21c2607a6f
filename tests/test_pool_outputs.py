"""trainables/pool_outputs.py on the tiny BERT: one batched pass gives the plain pass's probabilities and the
classifier's inputs, BADGE's closed-form gradient embeddings equal autograd's, and the dropout passes are
seeded and leave the global random state alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMultipleChoice

from trainables.encode import EncodedSplit
from trainables.loop import predict_logits
from trainables.models import build_model
from trainables.pool_outputs import last_linear, pool_outputs
from trainables.query_rules import gradient_embeddings

ROWS = np.array([50, 3, 17, 80, 9, 66, 31])  # an order of its own: results come back in it


@pytest.fixture(scope="module")
def tiny(tiny_bert_task):
    blueprint, encoded, _ = tiny_bert_task
    torch.set_num_threads(1)
    return build_model(blueprint, seed=0), encoded["train"]


def forwards(model) -> list[int]:
    """Counts the model's forward calls (a list, so the hook can add to it)."""
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_one_pass_gives_the_plain_pass_probabilities_and_the_classifier_inputs(tiny):
    model, split = tiny
    calls = forwards(model)
    out = pool_outputs(model, split, ROWS, embeddings=True)
    assert len(calls) == 1 and out.mc_probs is None  # 7 rows: one batch, one forward
    logits = predict_logits(model, split, ROWS)
    assert np.array_equal(out.probs, torch.softmax(torch.from_numpy(logits), dim=1).numpy())
    # BERT's classifier reads the pooled output (dropout is off in eval mode)
    with torch.inference_mode():
        pooled = model.bert(**split.batch(ROWS)).pooler_output.numpy()
    assert out.embeddings.shape == (len(ROWS), model.config.hidden_size)
    assert np.allclose(out.embeddings, pooled, atol=1e-6)
    assert pool_outputs(model, split, ROWS).embeddings is None  # not asked: not captured


def test_closed_form_gradient_embeddings_equal_autograd(tiny):
    """BADGE's embedding is the gradient of the cross-entropy, with the predicted class as label, with respect to
    the classifier's weights: compared row by row with torch's backward pass."""
    model, split = tiny
    out = pool_outputs(model, split, ROWS[:3], embeddings=True)
    closed = gradient_embeddings(out.probs.astype(np.float64), out.embeddings.astype(np.float64))
    model.eval()
    for position, row in enumerate(ROWS[:3]):
        model.zero_grad()
        logits = model(**split.batch(np.array([row]))).logits
        F.cross_entropy(logits, logits.argmax(dim=1)).backward()
        assert np.allclose(model.classifier.weight.grad.numpy().ravel(), closed[position], atol=1e-5)


def test_dropout_passes_are_seeded_differ_from_each_other_and_leave_the_global_state(tiny):
    model, split = tiny
    state = torch.get_rng_state()
    out = pool_outputs(model, split, ROWS, mc_passes=4, seed=11)
    assert torch.equal(torch.get_rng_state(), state)
    assert out.mc_probs.shape == (4, len(ROWS), out.probs.shape[1])
    assert np.allclose(out.mc_probs.sum(axis=2), 1.0, atol=1e-5)
    assert not np.allclose(out.mc_probs[0], out.mc_probs[1])  # dropout is on
    assert np.array_equal(out.mc_probs, pool_outputs(model, split, ROWS, mc_passes=4, seed=11).mc_probs)
    assert not np.array_equal(out.mc_probs, pool_outputs(model, split, ROWS, mc_passes=4, seed=12).mc_probs)
    assert not model.training  # back in eval mode


def test_multiple_choice_gives_one_input_per_option_and_the_gradient_of_the_shared_weight_row():
    config = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16)
    torch.manual_seed(0)
    model = BertForMultipleChoice(config).eval()
    assert last_linear(model) is model.classifier and model.classifier.out_features == 1
    # 2 questions x 3 options, sequences of 3 to 5 tokens
    lengths = [3, 4, 5, 4, 3, 5]
    ids = np.random.default_rng(0).integers(5, 20, size=sum(lengths)).astype(np.int32)
    split = EncodedSplit({"input_ids": ids}, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                         np.array([0, 2]), num_choices=3, pad_token_id=0)
    out = pool_outputs(model, split, np.array([1, 0]), embeddings=True)
    assert out.probs.shape == (2, 3) and out.embeddings.shape == (2, 3, 8)
    closed = gradient_embeddings(out.probs.astype(np.float64), out.embeddings.astype(np.float64))
    model.zero_grad()
    logits = model(**split.batch(np.array([1]))).logits
    F.cross_entropy(logits, logits.argmax(dim=1)).backward()
    assert np.allclose(model.classifier.weight.grad.numpy().ravel(), closed[0], atol=1e-5)
