"""The Expert-Loop: active learning in which an expert labels what the student queries.

Round 0 trains a student on `initial_pool_size` gold-labelled examples (a seeded, stratified draw).
Each further round the student scores the unlabelled pool, `select` picks the `query_size` examples
the strategy ranks highest, the expert labels them (trainables/experts: by default the teachers' soft
labels; the gold label for "oracle"; a language model's soft labels for "llm:..." and "openai"; a
person's label for "human"), and a student is trained again on everything labelled so far. One report
per round, so the scheduler can stop weak trials between rounds.

Teachers (and the oracle, as before) also give the initial pool its distillation term, mixed with gold
by alpha. With any other expert the initial pool trains on its gold labels alone: that expert is asked
only about the rows the student queries, each answer paid for. Answers that cost something are kept in
the loop's state (and so in every checkpoint), beside the expert's summed cost; with a person, a round
writes its queries to files and the run stops (human.AwaitingLabels) until the answers are imported.

The student's copy of the training split has every gold label replaced by -1; gold labels reach it
only for the initial pool (and oracle queries). The hidden labels are read here for the record only
(the accuracy of the experts' labels)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
import torch.nn.functional as F

from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.experts.base import Cost, Expert
from trainables.experts.human import AwaitingLabels, HumanExpert
from trainables.experts.runtime import build_expert
from trainables.experts.spec import parse_expert
from trainables.loop import TrainingSet, epoch_steps, predict_logits, train
from trainables.losses import kd_loss_masked
from trainables.methods import Reporter, evaluation_metrics, loop_settings, teacher_metrics
from trainables.models import build_model
from trainables.pool_outputs import pool_outputs
from trainables.prepared import Prepared
from trainables.query import needs, random_rows, select
from trainables.stopping_criteria import Check, check_of, parse_stop
from trainables.study_settings import StoppingRule

HIDDEN = -1  # the label the student sees where it has no gold label


@dataclasses.dataclass
class LoopState:
    """Which training examples are where. Saved in every checkpoint, so a trial resumes mid-loop."""

    round: int
    labelled: list[int]  # gold-labelled (the initial pool)
    queried: list[int]  # labelled by the experts, in query order
    pool: list[int]  # still unlabelled
    train_seconds: float = 0.0
    # With a stopping criterion: each round's check on the validation split's inputs, {"predictions": the
    # predicted class per row, "uncertainty": mean normalised entropy}; kept so that a resumed trial decides alike.
    checks: list[dict] = dataclasses.field(default_factory=list)
    # Experts whose answers cost something (llm, openai, human): str(row) -> the answer's probabilities.
    answers: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    pending: list[int] = dataclasses.field(default_factory=list)  # queried, awaiting the expert's answer
    expert_cost: dict = dataclasses.field(default_factory=dict)  # Cost.to_dict(), summed over the rounds


def stored_answers(state: LoopState) -> dict[int, np.ndarray]:
    return {int(row): np.asarray(probs) for row, probs in state.answers.items()}


def candidate_rows(prepared: Prepared) -> np.ndarray:
    """Training examples the student may ever see: all, or those the teachers did not learn from."""
    everything = np.arange(len(prepared.encoded["train"]))
    teachers = prepared.teachers
    # Teachers given as already fine-tuned checkpoints (teacher_labels 0) learned nothing here: no row is theirs.
    if teachers is None or teachers.teacher_labels == 0 or teachers.train_rows is None \
            or len(teachers.train_rows) == len(everything):
        return everything
    return np.setdiff1d(everything, teachers.train_rows)


def initial_state(trial: TrialConfig, prepared: Prepared) -> LoopState:
    """Round 0's gold pool: a seeded uniform draw from the candidate rows. Not stratified: a stratified draw reads
    the labels of every candidate row to choose a few, which a user with an unlabelled pool cannot do and which
    no label count would show (the budget study draws the same way by default)."""
    rows = candidate_rows(prepared)
    chosen = np.random.default_rng(trial.seed).permutation(rows)[: trial.initial_pool_size]
    return LoopState(0, sorted(int(i) for i in chosen), [], sorted(set(rows.tolist()) - set(chosen.tolist())))


def training_set(trial: TrialConfig, prepared: Prepared, state: LoopState) -> TrainingSet:
    """The student's view: gold labels on the initial pool (and oracle queries), -1 elsewhere."""
    if parse_expert(trial.expert).answers_in_state:
        return answered_training_set(trial, prepared, state)
    train_split = prepared.encoded["train"]
    student_view = dataclasses.replace(train_split, labels=np.full(len(train_split), HIDDEN))
    rows = np.array(state.labelled + state.queried, dtype=np.int64)
    oracle = parse_expert(trial.expert).gives_gold
    has_gold = np.array([True] * len(state.labelled) + [oracle] * len(state.queried))
    labels = np.where(has_gold, train_split.labels[rows], HIDDEN)
    has_teacher = np.array([True] * len(state.labelled) + [not oracle] * len(state.queried))
    return TrainingSet(student_view, rows, labels, has_gold, prepared.teachers.logits["train"][:, rows],
                       has_teacher)


ANSWER_FLOOR = 1e-8  # log(0) has no place in a distillation target: an answer's zeros become this


def answered_training_set(trial: TrialConfig, prepared: Prepared, state: LoopState) -> TrainingSet:
    """With an expert whose answers are in the state: the initial pool with its gold labels (cross-entropy);
    queried rows with the expert's answer, as one "teacher" whose logits are log(probabilities) for the
    distillation term at the trial's temperature (llm, openai), or as a label for cross-entropy (human)."""
    train_split = prepared.encoded["train"]
    student_view = dataclasses.replace(train_split, labels=np.full(len(train_split), HIDDEN))
    rows = np.array(state.labelled + state.queried, dtype=np.int64)
    initial = len(state.labelled)
    answers = np.array([state.answers[str(r)] for r in state.queried], dtype=np.float64).reshape(
        len(state.queried), prepared.num_labels)
    logits = np.zeros((1, len(rows), prepared.num_labels), dtype=np.float32)
    logits[0, initial:] = np.log(np.maximum(answers, ANSWER_FLOOR))
    hard = parse_expert(trial.expert).hard_labels
    labels = np.concatenate([train_split.labels[state.labelled], answers.argmax(axis=1) if hard
                             else np.full(len(state.queried), HIDDEN)]).astype(np.int64)
    has_gold = np.array([True] * initial + [hard] * len(state.queried))
    has_teacher = np.array([False] * initial + [not hard] * len(state.queried))
    return TrainingSet(student_view, rows, labels, has_gold, logits, has_teacher)


def expert_loop_loss(trial: TrialConfig):
    """Rows with teacher targets: kd_loss_masked (gold mixed in where known); oracle-labelled rows
    (no teacher target): cross-entropy on the gold label. Averaged over the batch."""

    def loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
        labels, with_teacher = batch["labels"], batch["has_teacher"]
        total = logits.new_zeros(())
        if (~with_teacher).any():
            total = total + F.cross_entropy(logits[~with_teacher], labels[~with_teacher], reduction="sum")
        if with_teacher.any():
            part = kd_loss_masked(logits[with_teacher], batch["teacher_logits"][:, with_teacher],
                                  labels[with_teacher], trial.temperature, trial.alpha,
                                  batch["has_gold"][with_teacher])
            total = total + part * with_teacher.sum()
        return total / len(logits)

    return loss


def query(model, trial: TrialConfig, prepared: Prepared, state: LoopState) -> np.ndarray:
    """The pool rows the strategy picks this round (at most what is left in the pool), chosen among
    a seeded random sample of the pool when pool_sample_size is set. One pass of the student over the
    scored rows gives what the strategy reads (query.needs): probabilities, and the classifier's inputs of
    the pool and, for coreset and contrastive, of every labelled row (initial pool and queries) too; BALD
    adds its dropout passes over the pool; plain random needs no pass."""
    pool = np.array(state.pool, dtype=np.int64)
    seed = trial.seed * 1000 + state.round
    if 0 < trial.pool_sample_size < len(pool):
        rng = np.random.default_rng(seed)
        pool = np.sort(rng.choice(pool, trial.pool_sample_size, replace=False))
    n = min(trial.query_size, len(pool))
    wanted = needs(trial.strategy)
    if "probs" not in wanted:  # plain random reads nothing of the student: no pass over the pool
        return pool[random_rows(len(pool), n, seed)]
    labelled = np.array(state.labelled + state.queried if "labelled_embeddings" in wanted else [], dtype=np.int64)
    out = pool_outputs(model, prepared.encoded["train"], np.concatenate([pool, labelled]),
                       embeddings="embeddings" in wanted, mc_passes=trial.mc_passes if "mc_probs" in wanted else 0,
                       seed=seed, bf16=trial.bf16)
    scored = len(pool)
    inputs = {}
    if "teacher_probs" in wanted:
        inputs["teacher_probs"] = torch.softmax(torch.from_numpy(prepared.teachers.logits["train"][:, pool]),
                                                dim=2).numpy()
    if out.embeddings is not None:
        inputs.update(embeddings=out.embeddings[:scored], labelled_embeddings=out.embeddings[scored:],
                      labelled_probs=out.probs[scored:])
    chosen = select(out.probs[:scored], n, trial.strategy, seed=seed, skip_fraction=trial.skip_fraction,
                    mc_probs=out.mc_probs, **inputs)
    return pool[chosen]


def expert_accuracy(prepared: Prepared, rows: list[int], state: LoopState | None = None, oracle: bool = False) -> float:
    """How often the expert's label is the (hidden) gold label on these rows: for the record only. The
    expert's answers in `state` when it has them, else the teacher ensemble's; the oracle's are the gold labels
    (1 by definition: it reads no teachers, which a run may not have)."""
    if not rows:
        return float("nan")
    if oracle:
        return 1.0
    if state is not None and state.answers:
        labels = np.array([np.argmax(state.answers[str(r)]) for r in rows])
    else:
        labels = prepared.teachers.ensemble_probs("train")[rows].argmax(axis=1)
    return float((labels == prepared.encoded["train"].labels[rows]).mean())


def ask_expert(expert: Expert, model, trial: TrialConfig, prepared: Prepared, state: LoopState,
               round_number: int) -> list[int]:
    """The expert's answers for the pending rows, kept in the state with their cost. A person without the
    answers yet gets the round's files (with the student's guesses), and the run stops: AwaitingLabels."""
    rows = list(state.pending)
    if isinstance(expert, HumanExpert) and expert.missing(rows):
        logits = predict_logits(model, prepared.encoded["train"], np.array(rows), bf16=trial.bf16)
        files = expert.write_round(round_number, rows, torch.softmax(torch.from_numpy(logits), dim=1).numpy())
        raise AwaitingLabels(files, rows, dataclasses.asdict(state), model)
    spec = parse_expert(trial.expert)
    if spec.kind in ("llm", "openai"):  # minutes, not milliseconds: say what is being waited for
        print(f"expert {trial.expert}: asking about {len(rows)} rows", flush=True)
    answer = expert.label(rows)
    if spec.kind in ("llm", "openai"):
        print(f"expert {trial.expert}: {answer.cost.calls} answered in {answer.cost.seconds:.1f} s, "
              f"{answer.cost.cache_hits} not asked (read from the cache, or the same text as a row asked)", flush=True)
    if spec.answers_in_state:
        state.answers.update({str(r): probs.tolist() for r, probs in zip(rows, answer.probs, strict=True)})
    state.expert_cost = (Cost(**state.expert_cost) + answer.cost).to_dict()
    return rows


def run_active_loop(trial: TrialConfig, prepared: Prepared, report: Reporter,
                    resume: dict | None = None, model=None) -> None:
    trial = trial.decided()
    state = LoopState(**resume) if resume else initial_state(trial, prepared)
    expert = build_expert(trial, prepared, answered=stored_answers(state))
    criterion = parse_stop(trial.stop)
    started = time.perf_counter() - state.train_seconds
    first_round = state.round + 1 if resume else 0
    if resume and stops(criterion, state, prepared.num_labels):
        return  # the criterion stopped the loop after the round the checkpoint holds
    for round_number in range(first_round, trial.max_iterations + 1):
        new = []
        if round_number > 0:
            if not state.pending:
                if not state.pool:
                    break  # the pool ran out: the last report already said so (pool_left == 0)
                state.pending = query(model, trial, prepared, state).tolist()
            new = ask_expert(expert, model, trial, prepared, state, round_number)
            state.queried += new
            state.pool = sorted(set(state.pool) - set(new))
            state.pending = []
        state.round = round_number
        if model is None or not trial.warm_start:
            model = build_model(prepared.student, trial.seed + round_number)
        data = training_set(trial, prepared, state)
        epochs = round_epochs(trial, len(data))
        train(model, data, expert_loop_loss(trial), loop_settings(trial, prepared, epochs))
        state.train_seconds = time.perf_counter() - started
        validation = predict_logits(model, prepared.encoded["validation"], bf16=trial.bf16)
        metrics = round_metrics(trial, prepared, model, state, new, validation)
        metrics[m.TRAIN_STEPS] = epochs * epoch_steps(len(data), trial.batch_size)
        if criterion is not None:
            state.checks.append(check_record(validation))
            metrics[m.STOPPED] = int(stops(criterion, state, prepared.num_labels))
        report(metrics, model, dataclasses.asdict(state))
        if metrics.get(m.STOPPED):
            break


def round_epochs(trial: TrialConfig, examples: int) -> int:
    """Epochs a round trains on `examples` rows: `epochs`, or with round_steps the budget study's rule (about
    round_steps optimiser steps in whole epochs, 3 to 40), so that a round on 100 rows gets as many steps as
    one on 700 instead of a seventh of them."""
    if not trial.round_steps:
        return trial.epochs
    return StoppingRule(max_steps=trial.round_steps).epochs(epoch_steps(examples, trial.batch_size))[0]


def check_record(logits: np.ndarray) -> dict:
    """A round's stopping check on the validation split's inputs (its labels are not read), as JSON."""
    check = check_of(torch.softmax(torch.from_numpy(logits), dim=1).numpy())
    return {"predictions": check.predictions.tolist(), "uncertainty": check.uncertainty}


def stops(criterion, state: LoopState, classes: int) -> bool:
    """Whether the criterion says stop after the last round of `state`."""
    if criterion is None or not state.checks:
        return False
    checks = [Check(np.array(c["predictions"]), c["uncertainty"], classes) for c in state.checks]
    return criterion.decisions(checks)[-1]


def round_metrics(trial, prepared, model, state: LoopState, new: list[int], validation_logits: np.ndarray) -> dict:
    oracle = parse_expert(trial.expert).gives_gold
    return {
        **evaluation_metrics(model, prepared, trial.bf16, validation_logits),
        m.ROUND: state.round,
        **round_label_counts(trial, prepared, state),
        m.EXPERT_LABEL_ACCURACY: expert_accuracy(prepared, state.queried, state, oracle),
        "expert_label_accuracy_round": expert_accuracy(prepared, new, state, oracle),
        **expert_cost_metrics(trial, state),
        "pool_left": len(state.pool),
        m.TRAIN_SECONDS: state.train_seconds,
        **teacher_metrics(prepared),
    }


def round_label_counts(trial: TrialConfig, prepared: Prepared, state: LoopState) -> dict[str, int]:
    """The rule of trainables/metrics.py: a label counts when the loss reads it. The initial pool has gold
    labels and teacher targets, mixed by alpha (alpha = 1 reads no gold label, alpha = 0 no teacher
    target); rows the experts labelled carry teacher targets only, read whatever alpha; rows the
    oracle labelled carry gold labels only, read whatever alpha."""
    initial, queried = len(state.labelled), len(state.queried)
    if parse_expert(trial.expert).answers_in_state:  # the initial pool on gold alone; no teacher anywhere
        return {m.LABELS_USED: initial, m.EXPERT_QUERIES: queried, m.TEACHER_LABELLED_ROWS: 0, m.TEACHER_LABELS: 0,
                m.VALIDATION_LABELS: len(prepared.encoded["validation"])}
    oracle = parse_expert(trial.expert).gives_gold
    return {
        m.LABELS_USED: (initial if trial.alpha < 1 else 0) + (queried if oracle else 0),
        m.EXPERT_QUERIES: 0 if oracle else queried,
        m.TEACHER_LABELLED_ROWS: (initial if trial.alpha > 0 else 0) + (0 if oracle else queried),
        m.TEACHER_LABELS: prepared.teachers.teacher_labels,
        m.VALIDATION_LABELS: len(prepared.encoded["validation"]),
    }


def expert_cost_metrics(trial: TrialConfig, state: LoopState) -> dict[str, float]:
    """What the expert's answers cost so far: calls, cache hits, seconds, tokens, and priced at expert_price
    per label both what the labels are worth (every queried row) and what this run paid (calls made now)."""
    cost = Cost(**state.expert_cost)
    price = expert_label_price(trial)
    return {m.EXPERT_CALLS: cost.calls, m.EXPERT_CACHE_HITS: cost.cache_hits, m.EXPERT_SECONDS: cost.seconds,
            m.EXPERT_TOKENS: cost.prompt_tokens + cost.completion_tokens,
            m.EXPERT_PRICED_COST: len(state.queried) * price,
            m.EXPERT_PAID: cost.calls * price}


def expert_label_price(trial: TrialConfig) -> float:
    """expert_price, except for the oracle: its answers are gold labels, counted in labels_used (and none in
    expert_queries), so pricing them as expert labels too would count each of them twice."""
    return 0.0 if parse_expert(trial.expert).gives_gold else trial.expert_price
