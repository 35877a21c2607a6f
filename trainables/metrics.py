"""Metric names reported to Ray Tune, defined once, and the functions that compute them.

The searcher and the scheduler look only at VAL_ACCURACY. Test metrics are computed for the record
and never used to choose anything.
"""

import numpy as np

VAL_ACCURACY = "val_accuracy"  # the one metric used to choose (mode max)
VAL_MACRO_F1 = "val_macro_f1"
VAL_LOSS = "val_loss"
TEST_ACCURACY = "test_accuracy"
TEST_MACRO_F1 = "test_macro_f1"
# One rule for every method: a label counts when the student's loss reads it (alpha = 1 reads no gold
# label, alpha = 0 no teacher target).
LABELS_USED = "labels_used"  # gold labels the student has seen
TEACHER_LABELS = "teacher_labels"  # gold labels the teachers were fine-tuned on
EXPERT_QUERIES = "expert_queries"  # examples the expert labelled (the teacher ensemble by default)
# What the expert's answers cost (trainables/experts/base.Cost), summed over the run's rounds:
EXPERT_CALLS = "expert_calls"  # answers obtained from the expert in this run (not read back from a cache)
# Rows answered without a call of their own: read back from the on-disk cache (paid for earlier) or, an endpoint's,
# by this round's call for a row of the same text. expert_calls + expert_cache_hits = the rows asked.
EXPERT_CACHE_HITS = "expert_cache_hits"
EXPERT_SECONDS = "expert_seconds"  # wall time spent waiting for answers
EXPERT_TOKENS = "expert_tokens"  # prompt + completion tokens (language models)
EXPERT_PRICED_COST = "expert_priced_cost"  # expert_queries x expert_price: what the labels are worth
EXPERT_PAID = "expert_paid"  # expert_calls x expert_price: what this run paid (cached answers are free)
EXPERT_READS = "expert_reads"  # expert outputs read only to choose rows (robust_least_confidence), not as labels
TEACHER_LABELLED_ROWS = "teacher_labelled_rows"  # every training row whose teacher targets the student's loss read
VALIDATION_LABELS = "validation_labels"  # gold labels of the validation split: they choose every configuration
TRAIN_SECONDS = "train_seconds"  # wall time inside the trial, excluding data preparation
PRECISION = "precision"  # "bf16" or "fp32": what the trial's node decided (trainables/precision.py)
TRAIN_STEPS = "train_steps"  # an Expert-Loop round's optimiser steps (its epochs x steps an epoch)
EPOCH = "epoch"
ROUND = "round"
EXPERT_LABEL_ACCURACY = "expert_label_accuracy"  # accuracy of the experts' labels on queried examples
STOPPED = "stopped"  # active_loop with a stopping criterion: 1 in the report of the round after which it stopped

METRIC = VAL_ACCURACY
MODE = "max"


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 of argmax predictions. Macro-F1 averages over every class of the task,
    also classes never predicted, so a model that ignores a class is penalised."""
    from sklearn.metrics import accuracy_score, f1_score  # noqa: PLC0415 (the names above serve --help, at once)

    predictions = np.asarray(logits).argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(
            f1_score(labels, predictions, labels=list(range(num_labels)), average="macro", zero_division=0)
        ),
    }

