"""The budget study's arms: one student per (arm, seed), trained afresh at every label budget.

The budget is an experimental factor here, never a searched setting. Every arm of one seed starts from
the same initial pool (a seeded draw from the rows the teachers did not learn from), builds its students
from the same initialisation and sees batches in the same order, so arms are paired by seed. Arms:

- `supervised`:        B gold labels, drawn uniformly (nested: budget B extends budget B' < B);
- `oracle:<strategy>`: classic active learning; the queried rows get their gold label;
- `expert:<strategy>`: the Expert-Loop; the queried rows get the teacher ensemble's soft labels;
- `expert:<strategy>@llm`, `@openai`: the same loop with a named expert, the language model of --expert llm:... or an
  OpenAI-compatible endpoint: the queried rows get its answers, kept in the trial's state (a resumed trial
  never asks twice) and distilled from log(p) as the Expert-Loop does (expert_loop.answered_training_set);
  no teacher is read, so the arm carries no sunk gold; its points report what the answers cost;
- `kd_all`:            one point: the initial gold pool plus teacher labels for every other pool row
  (where `expert:random`'s curve ends when its budget is the whole pool);
- `full:supervised`, `full:kd`: reference points, every pool row gold-labelled (kd: teachers mixed in
  with alpha, as the kd method does).

Every point follows one training rule (trainables/early_stopping.py): by default it trains to the cap
and keeps its last epoch, no label spent (`--selection last`); keeping the best epoch on a 10% share of
its own labels, or on the validation split, are options, and the labels that select it are then counted.

Each row carries one target: gold rows train with cross-entropy, expert-labelled rows with the
distillation term T**2 KL(teachers || student) (kd_loss_masked without gold). So `expert_queries` counts
exactly the rows the teachers labelled, and alpha matters only for `full:kd`.
No Ray in here: trainables/functions.py wraps `run_study_arm` as a Ray Tune trainable."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.early_stopping import BestEpoch, LastEpoch, hold_out, selection_score
from trainables.encode import EncodedSplit
from trainables.expert_loop import (
    HIDDEN,
    LoopState,
    answered_training_set,
    ask_expert,
    candidate_rows,
    expert_accuracy,
    expert_cost_metrics,
    expert_loop_loss,
    query,
)
from trainables.experts.runtime import build_expert
from trainables.loop import TrainingSet, epoch_steps, predict_logits, train
from trainables.losses import cross_entropy_loss, kd_loss
from trainables.methods import loop_settings
from trainables.metrics import classification_metrics
from trainables.models import build_model
from trainables.prepared import Prepared
from trainables.query import READS_EXPERT, needs
from trainables.sampling import stratified_subset
from trainables.stopping_criteria import check_of
from trainables.study_settings import (
    BUDGET,
    GOLD_LABELS,
    QUERY_LOG,
    STOP_PREDICTIONS,
    STOP_UNCERTAINTY,
    TEST_PREDICTIONS,
    VALIDATION_LABELS,
    Arm,
    StudySettings,
    encode_predictions,
    parse_arm,
)


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
    if arm.kind == "supervised":
        return state.labelled + order[: budget - len(state.labelled)], []
    if arm.kind == "kd_all":
        return list(state.labelled), sorted(set(order))
    if arm.kind == "full":
        return sorted(set(state.labelled) | set(order)), []
    if arm.kind == "oracle":
        return state.labelled + state.queried, []
    return list(state.labelled), list(state.queried)


def training_set(arm: Arm, recipe: TrialConfig, prepared: Prepared, gold: list[int], expert: list[int],
                 answers: dict[str, list[float]]) -> TrainingSet:
    """Gold rows with their labels (and, for full:kd, the teachers' too); expert rows with the
    teachers' logits (a named expert: its answers, as the Expert-Loop reads them) and a hidden label."""
    if arm.answers_in_state:
        return answered_training_set(recipe, prepared, LoopState(0, gold, expert, [], answers=answers))
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
    if arm.answers_in_state:  # gold rows cross-entropy, the expert's answers distilled at the recipe's T
        return expert_loop_loss(recipe)
    if not arm.needs_teachers:
        return lambda logits, batch: cross_entropy_loss(logits, None, batch["labels"], 1.0, 0.0)
    if arm.name == "full:kd":
        return lambda logits, batch: kd_loss(logits, batch["teacher_logits"], batch["labels"],
                                             recipe.temperature, recipe.alpha)
    # expert_loop_loss: cross-entropy where a row has no teacher target, KD where it has one (and no gold).
    return expert_loop_loss(recipe)


def point_budgets(arm: Arm, study: StudySettings, pool_size: int) -> tuple[int, ...]:
    return (pool_size,) if arm.single_point else study.budgets


Reporter = Callable[[dict, torch.nn.Module | None, dict], None]
# Their fixed-validation accuracy is traced every epoch, on one seed: the figure that shows the stopping rule
# reaches a plateau needs one curve per budget, and 500 validation rows an epoch on every seed cost more
# than a study's whole query scoring.
# About TRACE_POINTS epochs of each point are traced (every ceil(cap / TRACE_POINTS)-th).
TRACED_ARMS, TRACED_SEED, TRACE_POINTS = ("supervised", "full:supervised"), 0, 10


@dataclasses.dataclass
class PointFit:
    """How one point's student was trained and selected."""

    train_rows: int
    selection_gold: int  # gold labels that only selected the model (held out, or the validation split)
    selection_expert: int  # expert labels that only selected the model
    steps_per_epoch: int
    cap_epochs: int
    best: BestEpoch | LastEpoch
    validation_curve: list = dataclasses.field(default_factory=list)  # [steps, fixed-validation accuracy]

    @property
    def epochs_run(self) -> int:
        return len(self.best.curve)

    def metrics(self, selection: str) -> dict:
        return {m.EPOCH: self.best.epoch, "epochs_run": self.epochs_run, "cap_epochs": self.cap_epochs,
                "steps": self.epochs_run * self.steps_per_epoch, "best_step": self.best.epoch * self.steps_per_epoch,
                "selection": selection, "selection_labels": self.selection_gold + self.selection_expert,
                "selection_curve": json.dumps([[c["epoch"] * self.steps_per_epoch, c["accuracy"]]
                                               for c in self.best.curve if "accuracy" in c]),
                "validation_curve": json.dumps(self.validation_curve) if self.validation_curve else ""}


def run_study_arm(study: StudySettings, prepared: Prepared, report: Reporter,
                  resume: dict | None = None, model=None) -> None:
    """Train one fresh student per budget and report one point per budget. `resume` (the state of the
    last report) with `model` (its student, for query arms) continues an interrupted trial."""
    study = dataclasses.replace(study, recipe=study.recipe.decided())
    arm = parse_arm(study.arm, study.llm)
    labelled, order = initial_and_order(study, prepared)
    budgets = point_budgets(arm, study, len(labelled) + len(order))
    state = LoopState(**resume["loop"]) if resume else LoopState(0, labelled, [], sorted(order))
    done = resume["points_done"] if resume else 0
    reads = resume.get(m.EXPERT_READS, 0) if resume else 0
    recipe = arm_recipe(arm, study)
    expert = build_expert(recipe, prepared) if arm.answers_in_state else None
    extra_seconds = 0.0
    if arm.queries and "probs" in needs(arm.strategy) and model is None \
            and len(state.labelled) + len(state.queried) < budgets[done]:
        # The first budget lies above the initial pool: a student of the initial pool (not a point of the
        # curve) picks the first queries (plain random reads no student). Its time is counted in the first
        # point's seconds.
        started = time.perf_counter()
        model, _ = _train_point(arm, study, recipe, prepared, list(state.labelled), [], len(state.labelled), None, {})
        extra_seconds = time.perf_counter() - started
    for index in range(done, len(budgets)):
        budget = budgets[index]
        started = time.perf_counter() - extra_seconds
        new, scored = _grow(arm, recipe, prepared, state, model, budget, order)
        reads += scored
        _ask(expert, model, recipe, prepared, state, new, index)
        gold, from_expert = point_rows(arm, state, order, budget)
        model, fit = _train_point(arm, study, recipe, prepared, gold, from_expert, budget, model, state.answers)
        seconds, extra_seconds = time.perf_counter() - started, 0.0
        state.round = index
        metrics = point_metrics(arm, recipe, prepared, model, budget, gold, from_expert, new, state)
        metrics.update({m.TRAIN_SECONDS: seconds, m.EXPERT_READS: reads, m.ROUND: index,
                        **fit.metrics(study.selection)})
        if study.selection == "validation":
            metrics[GOLD_LABELS] += fit.selection_gold  # the validation split chose this point: counted
        if arm.queries:
            metrics[QUERY_LOG] = json.dumps(query_record(arm, prepared, new, state))
        report(metrics, model if arm.queries or study.warm_start else None,
               {"loop": dataclasses.asdict(state), "points_done": index + 1, m.EXPERT_READS: reads})


def _ask(expert, model, recipe: TrialConfig, prepared: Prepared, state: LoopState, new: list[int], index: int) -> None:
    """A named expert's answers for this point's new rows, kept in the state with their summed cost, as the
    Expert-Loop keeps a round's (the teachers' logits need no asking: they are in `prepared`)."""
    if expert is None or not new:
        return
    state.pending = list(new)
    ask_expert(expert, model, recipe, prepared, state, index)
    state.pending = []


def arm_recipe(arm: Arm, study: StudySettings) -> TrialConfig:
    """The study's recipe at the trial's seed, with the arm's strategy and expert (a named expert's endpoint)."""
    recipe = study.recipe
    expert = arm.expert if arm.answers_in_state else "oracle" if arm.kind == "oracle" else "teachers"
    endpoint = {"expert_url": study.expert_url, "expert_model": study.expert_model} if expert == "openai" else {}
    return dataclasses.replace(recipe, seed=study.seed, expert=expert,
                               strategy=arm.strategy if arm.queries else recipe.strategy, **endpoint)


def _train_point(arm: Arm, study: StudySettings, recipe: TrialConfig, prepared: Prepared, gold: list[int],
                 expert: list[int], budget: int, previous, answers: dict) -> tuple[torch.nn.Module, PointFit]:
    """A student trained on these rows (minus a held-out selection share, if that selects) to the cap, or
    to a plateau of its selection score with the best epoch's weights kept. Fresh from the seed's
    initialisation, or (warm start) the previous point's student continued."""
    model = previous if study.warm_start and previous is not None else build_model(prepared.student, study.seed)
    chosen = _selection(study, prepared, gold, expert, budget, answers)
    data = training_set(arm, recipe, prepared, chosen.train_gold, chosen.train_expert, answers)
    steps_per_epoch = epoch_steps(len(data), recipe.batch_size)
    cap, patience = study.stopping.epochs(steps_per_epoch)
    keeper = LastEpoch() if chosen.split is None else BestEpoch(patience)
    fit = PointFit(len(data), chosen.gold, chosen.expert, steps_per_epoch, cap, keeper)
    trace_every = math.ceil(cap / TRACE_POINTS)

    def on_epoch(epoch: int, _stats: dict) -> bool:
        if arm.name in TRACED_ARMS and study.seed == TRACED_SEED and epoch % trace_every == 0:
            validation = _split_metrics(model, prepared, "validation", recipe.bf16)["accuracy"]
            fit.validation_curve.append([epoch * steps_per_epoch, validation])
        if chosen.split is None:
            return fit.best.update(model, epoch)
        logits = predict_logits(model, chosen.split, chosen.rows, bf16=recipe.bf16)
        return fit.best.update(model, epoch, *selection_score(logits, chosen.targets))

    train(model, data, loss_for(arm, recipe), loop_settings(recipe, prepared, cap), on_epoch)
    fit.best.restore(model)
    return model, fit


@dataclasses.dataclass(frozen=True)
class Selection:
    """The rows a point trains on, and what selects its epoch (split None: nothing, the last is kept)."""

    train_gold: list[int]
    train_expert: list[int]
    split: EncodedSplit | None = None
    rows: np.ndarray | None = None
    targets: np.ndarray | None = None
    gold: int = 0  # gold labels that only select the model (held out, or the validation split)
    expert: int = 0  # expert labels that only select the model


def _selection(study: StudySettings, prepared: Prepared, gold: list[int], expert: list[int], budget: int,
               answers: dict) -> Selection:
    if study.selection == "last":
        return Selection(gold, expert)
    if study.selection == "validation":
        split = prepared.encoded["validation"]
        return Selection(gold, expert, split, np.arange(len(split)), split.labels, gold=len(split))
    targets = known_labels(prepared, gold, expert, answers)
    held = hold_out(targets, study.selection_share, seed=study.seed * 100_003 + budget)
    rows = np.array(gold + expert, dtype=np.int64)
    is_gold = np.arange(len(rows)) < len(gold)
    return Selection([int(r) for r in rows[~held & is_gold]], [int(r) for r in rows[~held & ~is_gold]],
                     prepared.encoded["train"], rows[held], targets[held],
                     gold=int((held & is_gold).sum()), expert=int((held & ~is_gold).sum()))


def known_labels(prepared: Prepared, gold: list[int], expert: list[int], answers: dict) -> np.ndarray:
    """The label the point holds for each row: gold where it has gold, the expert's otherwise."""
    gold_labels = prepared.encoded["train"].labels[np.array(gold, dtype=np.int64)]
    if not expert:
        return gold_labels
    return np.concatenate([gold_labels, expert_probs(prepared, expert, answers).argmax(axis=1)])


def expert_probs(prepared: Prepared, rows: list[int], answers: dict) -> np.ndarray:
    """(rows, classes): a named expert's answers where the state holds them, else the teacher ensemble's. No rows
    (a point with no new query) reads neither: a study without teachers has none to read."""
    if not rows:
        return np.zeros((0, prepared.num_labels))
    if answers:
        return np.array([answers[str(r)] for r in rows], dtype=np.float64).reshape(len(rows), prepared.num_labels)
    return prepared.teachers.ensemble_probs("train")[np.array(rows, dtype=np.int64)]


def _grow(arm: Arm, recipe: TrialConfig, prepared: Prepared, state: LoopState, model,
          budget: int, order: list[int]) -> tuple[list[int], int]:
    """Query arms: (the rows the strategy adds to reach `budget`, scored by the previous point's student;
    how many expert outputs the strategy read to choose them). Random queries take the next rows of the
    seed's order, a uniform draw without replacement like any other, and the very rows `supervised` holds
    at that budget: expert:random then differs from supervised by the labels alone, and oracle:random is
    supervised (same rows, same gold labels), so the study need not train it twice."""
    have = len(state.labelled) + len(state.queried)
    if not arm.queries or budget <= have:
        return [], 0
    if arm.strategy == "random":
        new = order[len(state.queried) : budget - len(state.labelled)]
        state.queried += new
        state.pool = sorted(set(state.pool) - set(new))
        return new, 0
    scored = len(state.pool) if not 0 < recipe.pool_sample_size < len(state.pool) else recipe.pool_sample_size
    new = query(model, dataclasses.replace(recipe, query_size=budget - have), prepared, state).tolist()
    state.queried += new
    state.pool = sorted(set(state.pool) - set(new))
    return new, scored if arm.strategy in READS_EXPERT else 0


def query_record(arm: Arm, prepared: Prepared, new: list[int], state: LoopState) -> dict:
    """This point's queried rows in query order, with their (hidden) gold label, the expert's label (the
    ensemble's, a named expert's answer, or for the oracle the gold label it gives) and its entropy in nats: for
    queries.csv, the record only. The oracle never reads the teachers: a study may have none prepared."""
    rows = np.array(new, dtype=np.int64)
    gold = prepared.encoded["train"].labels[rows]
    probs = np.eye(prepared.num_labels)[gold] if arm.gives_gold else expert_probs(prepared, new, state.answers)
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)
    return {"row": rows.tolist(), "gold_label": gold.tolist(),
            "expert_label": probs.argmax(axis=1).tolist(), "expert_entropy": [round(float(e), 6) for e in entropy]}


def point_metrics(arm: Arm, recipe: TrialConfig, prepared: Prepared, model, budget: int,
                  gold: list[int], expert: list[int], new: list[int], state: LoopState) -> dict:
    validation_logits = predict_logits(model, prepared.encoded["validation"], bf16=recipe.bf16)
    val = classification_metrics(validation_logits, prepared.encoded["validation"].labels, prepared.num_labels)
    test_logits = predict_logits(model, prepared.encoded["test"], bf16=recipe.bf16)
    test = classification_metrics(test_logits, prepared.encoded["test"].labels, prepared.num_labels)
    # The stopping criteria are judged after the fact (tuning/budget_study/stopping.py) on the validation split's
    # INPUTS: the student's predictions and their mean normalised entropy, no label read.
    check = check_of(torch.softmax(torch.from_numpy(validation_logits), dim=1).numpy())
    return {
        "arm": arm.name, BUDGET: budget, GOLD_LABELS: len(gold),
        m.EXPERT_QUERIES: len(expert) + (len(gold) if arm.name == "full:kd" else 0),
        m.VAL_ACCURACY: val["accuracy"], m.VAL_MACRO_F1: val["macro_f1"],
        m.TEST_ACCURACY: test["accuracy"], m.TEST_MACRO_F1: test["macro_f1"],
        m.LABELS_USED: len(gold),
        m.TEACHER_LABELS: prepared.teachers.teacher_labels if arm.needs_teachers else 0,  # the arm needs them
        VALIDATION_LABELS: len(prepared.encoded["validation"]),
        # The expert's own labels: a named expert's answers (in the state), else the teacher ensemble's.
        m.EXPERT_LABEL_ACCURACY: expert_accuracy(prepared, expert, state) if expert else math.nan,
        "expert_label_accuracy_new": expert_accuracy(prepared, new, state) if arm.kind == "expert" else math.nan,
        **(expert_cost_metrics(recipe, state) if arm.answers_in_state else {}),
        TEST_PREDICTIONS: encode_predictions(test_logits.argmax(axis=1)),
        STOP_PREDICTIONS: encode_predictions(check.predictions), STOP_UNCERTAINTY: check.uncertainty,
    }


def _split_metrics(model, prepared: Prepared, split: str, bf16: bool) -> dict:
    logits = predict_logits(model, prepared.encoded[split], bf16=bf16)
    return classification_metrics(logits, prepared.encoded[split].labels, prepared.num_labels)
