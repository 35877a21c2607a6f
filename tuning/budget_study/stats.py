"""The budget study's statistics (pure numpy/scipy/scikit-learn, no pandas): areas under learning
curves, paired per-seed comparisons with a t-interval and an exact sign-flip test, Holm's correction, the
budget at which a curve reaches a mark and stays there, and the flags of collapsed points.

Which interval covers what:
- the t-interval of a paired difference covers seed-to-seed variation only (the test set held fixed);
- the bootstrap of tuning/analysis/bootstrap.py, reported beside it, covers seeds AND test examples.
A verdict rests on the per-seed differences (sign-flip test, Holm-corrected over every comparison made)."""

from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 0.05  # family-wise error rate of the verdicts, after Holm's correction
SCALES = ("linear", "log")  # the budget axis an AULC is taken on
EXACT_SEEDS = 16  # up to 2^16 sign patterns are enumerated: exact; beyond, a seeded random sample
FLAG_CLASS_SHARE = 0.10  # a class at least this common in test that a student never predicts flags it


# ---------------------------------------------------------------- areas and marks

def aulc(accuracy: np.ndarray, budgets: list[int], scale: str = "linear") -> np.ndarray:
    """Area under the learning curve: trapezoid of accuracy over the budgets (increasing), divided by the
    axis' length, so it reads as an average accuracy. accuracy: (..., budgets). On the log axis every
    doubling of the budget weighs the same (budgets 50..800 geometric: each step counts equally); on the
    linear axis the largest budgets carry most of the area."""
    axis = np.asarray(budgets, dtype=float)
    if scale == "log":
        axis = np.log(axis)
    elif scale != "linear":
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if len(axis) == 1:
        return accuracy[..., 0]
    widths = np.diff(axis)
    return ((accuracy[..., 1:] + accuracy[..., :-1]) / 2 * widths).sum(axis=-1) / (axis[-1] - axis[0])


def first_staying_above(curve: np.ndarray, target: float) -> int | None:
    """Index of the first budget from which the curve is at or above target at EVERY larger budget too
    (a curve that touches the mark and falls back has not reached it); None when the last point is below."""
    below = np.flatnonzero(np.asarray(curve) < target)
    if len(below) == 0:
        return 0
    return None if below[-1] == len(curve) - 1 else int(below[-1] + 1)


# ---------------------------------------------------------------- paired comparisons

def paired_t_interval(differences, confidence: float = 0.95) -> tuple[float, float] | None:
    """mean +- t(n-1) x sd / sqrt(n) of per-seed differences (scipy.stats.t); None below two seeds."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return None
    half = stats.t.ppf((1 + confidence) / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def sign_flip_p(differences, seed: int = 0) -> float:
    """Two-sided p of the mean per-seed difference under sign flips (scipy.stats.permutation_test with
    one sample and permutation_type='samples'): exact, all 2^n patterns, up to EXACT_SEEDS seeds. With
    n seeds it cannot go below 2 / 2^n (5 seeds: 0.0625; 10 seeds: 0.002)."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:  # scipy wants two; one seed's two sign patterns are equally extreme: p = 1
        return 1.0
    resamples = np.inf if len(d) <= EXACT_SEEDS else 9999
    result = stats.permutation_test((d,), np.mean, permutation_type="samples", vectorized=True,
                                    n_resamples=resamples, alternative="two-sided", rng=seed)
    return float(result.pvalue)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given. By hand: scipy has no Holm (only
    Benjamini-Hochberg, stats.false_discovery_control). Sorted ascending, the i-th smallest (from 0)
    becomes min(1, (m - i) x p), then a running maximum keeps the adjusted values in order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def verdict(mean: float, p_holm: float, alpha: float = ALPHA) -> str:
    if p_holm > alpha:
        return "cannot be told apart from"
    return "beats" if mean > 0 else "loses to"


def baseline_of(arm: str, arms: list[str]) -> str | None:
    """The random-query arm of the same expert (expert:margin@llm: expert:random@llm). Gold-answered random
    queries with a fresh student per budget are uniform gold draws, which is what `supervised` is: it stands in
    when oracle:random is absent."""
    kind, _, strategy = arm.partition(":")
    strategy, at, expert = strategy.partition("@")
    if kind not in ("oracle", "expert") or strategy == "random":
        return None
    random_arm = f"{kind}:random{at}{expert}"
    return "supervised" if kind == "oracle" and random_arm not in arms and "supervised" in arms else random_arm


def comparison_pairs(arms: list[str]) -> list[tuple[str, str]]:
    """(arm, baseline) pairs the study tests, each present arm with its baseline:
    - expert:<strategy> vs expert:random, oracle:<strategy> vs oracle:random (or supervised): does
      choosing the rows beat random rows, with expert and with gold labels;
    - expert:random vs supervised (and expert:random@llm, @openai): an expert label in place of a gold one,
      at equal label count.
    kd_all is one point (the initial gold plus the teachers on the rest of the pool), not a curve: it is
    compared on the priced-cost axis (costs.py), not here."""
    pairs = [(arm, baseline_of(arm, arms)) for arm in arms]
    pairs = [(arm, base) for arm, base in pairs if base in arms]
    randoms = [arm for arm in arms if arm.partition("@")[0] == "expert:random"]
    pairs += [(arm, "supervised") for arm in randoms if "supervised" in arms]
    return pairs


# ---------------------------------------------------------------- collapsed points

def flag_reasons(predictions: np.ndarray, test_labels: np.ndarray, val_accuracy: float,
                 majority_rate: float | None, label_names: list[str]) -> list[str]:
    """Why a point is flagged (empty: it is not): it never predicts, on test, a class that makes up at
    least FLAG_CLASS_SHARE of the test labels, or its validation accuracy is at or below the majority rate."""
    shares = np.bincount(test_labels, minlength=len(label_names)) / len(test_labels)
    predicted = np.bincount(predictions, minlength=len(label_names))
    reasons = [f"never predicts {label_names[c]} ({shares[c]:.0%} of test)"
               for c in range(len(label_names)) if shares[c] >= FLAG_CLASS_SHARE and predicted[c] == 0]
    if majority_rate is not None and val_accuracy <= majority_rate + 1e-9:
        reasons.append(f"validation accuracy {val_accuracy:.3f} <= majority rate {majority_rate:.3f}")
    return reasons


def class_recall(predictions: list[np.ndarray], test_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Each class's test recall (scikit-learn, average=None), averaged over the seeds' predictions."""
    from sklearn.metrics import recall_score  # noqa: PLC0415 (seconds to import; only the report needs it)

    classes = list(range(num_classes))
    return np.mean([recall_score(test_labels, p, labels=classes, average=None, zero_division=0)
                    for p in predictions], axis=0)


def class_shares(labels, num_classes: int) -> np.ndarray:
    """The share of each class among these labels (queries.csv's gold_label or expert_label column)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(float)
    return counts / counts.sum() if counts.sum() else counts
