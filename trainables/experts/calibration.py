"""Two corrections of a zero-shot model's soft labels, measured in benchmarks/llm_expert.py.

A small language model prefers some label names whatever the text (SmolLM2 says "Surgery" for most MedMCQA
questions), which no amount of text can outvote. Both corrections shift each label's log-probability by a
constant, so they cost no forward pass:

- prior_corrected: divide by the mean probability each label gets over the rows being labelled, then
  renormalise (the model's prior over the labels, estimated without a gold label; after Zhao et al. 2021's
  contextual calibration, which estimates it from a content-free input instead).
- fit_bias: the per-label shifts that make the model's soft labels fit a few gold labels best (maximum
  likelihood; the Expert-Loop's gold seed pool has them), then applied to every row.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from trainables.experts.prompts import probs_from_logprobs


def prior_corrected(probs: np.ndarray) -> np.ndarray:
    scaled = np.asarray(probs, dtype=np.float64) / np.asarray(probs, dtype=np.float64).mean(axis=0, keepdims=True)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_bias(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(labels,) shifts b minimising the mean cross-entropy of softmax(scores + b) against the gold labels.
    Convex; b is fixed up to a constant, taken so that b sums to 0. Labels absent from `gold` are pushed down
    without bound by maximum likelihood, so a weak prior (an L2 penalty of 1e-3 on b) keeps b finite."""
    scores, gold = np.asarray(scores, dtype=np.float64), np.asarray(gold, dtype=np.int64)
    onehot = np.eye(scores.shape[1])[gold]

    def loss_and_gradient(bias: np.ndarray) -> tuple[float, np.ndarray]:
        probs = probs_from_logprobs(scores + bias)
        loss = -np.mean(np.log(probs[np.arange(len(gold)), gold])) + 1e-3 * bias @ bias
        return loss, (probs - onehot).mean(axis=0) + 2e-3 * bias

    bias = minimize(loss_and_gradient, np.zeros(scores.shape[1]), jac=True, method="L-BFGS-B").x
    return bias - bias.mean()
