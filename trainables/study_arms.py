"""The budget study's arms: one student per (arm, seed), trained afresh at every label budget.

The budget is an experimental factor here, never a searched setting. Every arm of one seed starts from
the same initial pool (a seeded draw from the rows the teachers did not learn from), builds its students
from the same initialisation and sees batches in the same order, so arms are paired by seed. Arms:

- `supervised`:        B gold labels, drawn uniformly (nested: budget B extends budget B' < B);
- `oracle:<strategy>`: classic active learning; the queried rows get their gold label;
- `expert:<strategy>`: the Expert-Loop; the queried rows get the teacher ensemble's soft labels;
- `kd_all`:            the supervised arm's B gold labels plus teacher labels for the rest of the pool;
- `full:supervised`, `full:kd`: reference lines, every pool row gold-labelled (kd: teachers mixed in
  with alpha, as the kd method does).

Each row carries one target: gold rows train with cross-entropy, expert-labelled rows with the
distillation term T**2 KL(teachers || student) (kd_loss_masked without gold). So `expert_queries` counts
exactly the rows the teachers labelled, and alpha matters only for `full:kd`.
No Ray in here: trainables/functions.py wraps `run_study_arm` as a Ray Tune trainable."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.expert_loop import HIDDEN, LoopState, candidate_rows, expert_accuracy, expert_loop_loss, query
from trainables.loop import TrainingSet, predict_logits, train
from trainables.losses import cross_entropy_loss, kd_loss
from trainables.methods import loop_settings
from trainables.metrics import classification_metrics
from trainables.models import build_model
from trainables.prepared import Prepared
from trainables.sampling import stratified_subset
from trainables.study_settings import (
    BUDGET,
    GOLD_LABELS,
    TEST_PREDICTIONS,
    VALIDATION_LABELS,
    Arm,
    StudySettings,
    encode_predictions,
    parse_arm,
)


def epochs_for(recipe_epochs: int, min_steps: int, batch_size: int, n: int) -> int:
    """max(recipe epochs, ceil(min_steps * batch / n)): a 50-example point gets as many optimiser steps
    as the recipe gives a few thousand examples, so small budgets are not judged undertrained."""
    return max(recipe_epochs, math.ceil(min_steps * batch_size / max(n, 1)))


def initial_and_order(study: StudySettings, prepared: Prepared) -> tuple[list[int], list[int]]:
    """(initial pool, the other candidate rows in the seed's random order). The seed alone decides
    both, so every arm of a seed starts from the same rows, and `supervised` at budget B takes the
    initial pool plus the first B - initial rows of the order (nested across budgets)."""
    rows = candidate_rows(prepared)
    order = np.random.default_rng(study.seed).permutation(rows)
    if study.stratified_initial:
        chosen = rows[stratified_subset(prepared.encoded["train"].labels[rows], study.initial, study.seed)]
    else:
        chosen = order[: study.initial]
    chosen_set = set(chosen.tolist())
    return sorted(int(i) for i in chosen), [int(i) for i in order if int(i) not in chosen_set]


def point_rows(arm: Arm, state: LoopState, order: list[int], budget: int) -> tuple[list[int], list[int]]:
    """(gold rows, expert-labelled rows) the student trains on at this budget."""
    if arm.kind in ("supervised", "kd_all"):
        gold = state.labelled + order[: budget - len(state.labelled)]
        rest = sorted(set(state.labelled) | set(order)) if arm.kind == "kd_all" else []
        return gold, sorted(set(rest) - set(gold))
    if arm.kind == "full":
        return sorted(set(state.labelled) | set(order)), []
    if arm.kind == "oracle":
        return state.labelled + state.queried, []
    return list(state.labelled), list(state.queried)


def training_set(arm: Arm, prepared: Prepared, gold: list[int], expert: list[int]) -> TrainingSet:
    """Gold rows with their labels (and, for full:kd, the teachers' too); expert rows with the
    teachers' logits and a hidden label."""
    train_split = prepared.encoded["train"]
    rows = np.array(gold + expert, dtype=np.int64)
    has_gold = np.array([True] * len(gold) + [False] * len(expert))
    labels = np.where(has_gold, train_split.labels[rows], HIDDEN)
    student_view = dataclasses.replace(train_split, labels=np.full(len(train_split), HIDDEN))
    if not arm.needs_teachers:
        return TrainingSet(student_view, rows, labels, has_gold)
    teacher_on_gold = arm.name == "full:kd"
    has_teacher = np.array([teacher_on_gold] * len(gold) + [True] * len(expert))
    return TrainingSet(student_view, rows, labels, has_gold, prepared.teachers.logits["train"][:, rows],
                       has_teacher)


def loss_for(arm: Arm, recipe: TrialConfig):
    if not arm.needs_teachers:
        return lambda logits, batch: cross_entropy_loss(logits, None, batch["labels"], 1.0, 0.0)
    if arm.name == "full:kd":
        return lambda logits, batch: kd_loss(logits, batch["teacher_logits"], batch["labels"],
                                             recipe.temperature, recipe.alpha)
    # expert_loop_loss: cross-entropy where a row has no teacher target, KD where it has one (and no gold).
    return expert_loop_loss(recipe)


def point_budgets(arm: Arm, study: StudySettings, pool_size: int) -> tuple[int, ...]:
    return (pool_size,) if arm.kind == "full" else study.budgets


Reporter = Callable[[dict, torch.nn.Module | None, dict], None]


def run_study_arm(study: StudySettings, prepared: Prepared, report: Reporter,
                  resume: dict | None = None, model=None) -> None:
    """Train one fresh student per budget and report one point per budget. `resume` (the state of the
    last report) with `model` (its student, for query arms) continues an interrupted trial."""
    study = dataclasses.replace(study, recipe=study.recipe.decided())
    arm = parse_arm(study.arm)
    labelled, order = initial_and_order(study, prepared)
    budgets = point_budgets(arm, study, len(labelled) + len(order))
    state = LoopState(**resume["loop"]) if resume else LoopState(0, labelled, [], sorted(order))
    done = resume["points_done"] if resume else 0
    recipe = dataclasses.replace(study.recipe, seed=study.seed, expert="teachers" if arm.kind != "oracle"
                                 else "oracle", strategy=arm.strategy if arm.queries else study.recipe.strategy)
    extra_seconds = 0.0
    if arm.queries and model is None and len(state.labelled) + len(state.queried) < budgets[done]:
        # The first budget lies above the initial pool: a student of the initial pool (not a point of the
        # curve) picks the first queries. Its time is counted in the first point's seconds.
        started = time.perf_counter()
        model, _, _ = _train_point(arm, study, recipe, prepared, list(state.labelled), [], None)
        extra_seconds = time.perf_counter() - started
    for index in range(done, len(budgets)):
        budget = budgets[index]
        started = time.perf_counter() - extra_seconds
        new = _grow(arm, recipe, prepared, state, model, budget)
        gold, expert = point_rows(arm, state, order, budget)
        model, data, epochs = _train_point(arm, study, recipe, prepared, gold, expert, model)
        seconds, extra_seconds = time.perf_counter() - started, 0.0
        state.round = index
        metrics = point_metrics(arm, recipe, prepared, model, budget, gold, expert, new)
        metrics.update({m.TRAIN_SECONDS: seconds, m.EPOCH: epochs,
                        "steps": epochs * math.ceil(len(data) / recipe.batch_size)})
        report(metrics, model if arm.queries or study.warm_start else None,
               {"loop": dataclasses.asdict(state), "points_done": index + 1})


def _train_point(arm: Arm, study: StudySettings, recipe: TrialConfig, prepared: Prepared, gold: list[int],
                 expert: list[int], model):
    """A student trained on these rows: fresh from the seed's initialisation, or the given one continued
    (warm start). Returns (model, training set, epochs)."""
    if model is None or not study.warm_start:
        model = build_model(prepared.student, study.seed)
    data = training_set(arm, prepared, gold, expert)
    epochs = epochs_for(recipe.epochs, study.min_steps, recipe.batch_size, len(data))
    train(model, data, loss_for(arm, recipe), loop_settings(recipe, prepared, epochs))
    return model, data, epochs


def _grow(arm: Arm, recipe: TrialConfig, prepared: Prepared, state: LoopState, model, budget: int) -> list[int]:
    """Query arms: the rows the strategy adds to reach `budget` (scored by the previous point's student)."""
    have = len(state.labelled) + len(state.queried)
    if not arm.queries or budget <= have:
        return []
    new = query(model, dataclasses.replace(recipe, query_size=budget - have), prepared, state).tolist()
    state.queried += new
    state.pool = sorted(set(state.pool) - set(new))
    return new


def point_metrics(arm: Arm, recipe: TrialConfig, prepared: Prepared, model, budget: int,
                  gold: list[int], expert: list[int], new: list[int]) -> dict:
    val = _split_metrics(model, prepared, "validation", recipe.bf16)
    test_logits = predict_logits(model, prepared.encoded["test"], bf16=recipe.bf16)
    test = classification_metrics(test_logits, prepared.encoded["test"].labels, prepared.num_labels)
    return {
        "arm": arm.name, BUDGET: budget, GOLD_LABELS: len(gold),
        m.EXPERT_QUERIES: len(expert) + (len(gold) if arm.name == "full:kd" else 0),
        m.VAL_ACCURACY: val["accuracy"], m.VAL_MACRO_F1: val["macro_f1"],
        m.TEST_ACCURACY: test["accuracy"], m.TEST_MACRO_F1: test["macro_f1"],
        m.LABELS_USED: len(gold),
        m.TEACHER_LABELS: prepared.teachers.teacher_labels if arm.needs_teachers else 0,  # the arm needs them
        VALIDATION_LABELS: len(prepared.encoded["validation"]),
        m.EXPERT_LABEL_ACCURACY: expert_accuracy(prepared, expert) if expert else math.nan,
        "expert_label_accuracy_new": expert_accuracy(prepared, new) if arm.kind == "expert" else math.nan,
        TEST_PREDICTIONS: encode_predictions(test_logits.argmax(axis=1)),
    }


def _split_metrics(model, prepared: Prepared, split: str, bf16: bool) -> dict:
    logits = predict_logits(model, prepared.encoded[split], bf16=bf16)
    return classification_metrics(logits, prepared.encoded[split].labels, prepared.num_labels)
