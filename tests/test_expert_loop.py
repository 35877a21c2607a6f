"""trainables/expert_loop.py on the smoke data with tiny teachers: the pool, the student's view of the
labels, the loop's bookkeeping, the loss, and the experts' accuracy."""

from __future__ import annotations

import copy
import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import trainables.expert_loop as el
from tests.conftest import smoke_prepared
from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.encode import EncodedSplit
from trainables.errors import UsageError
from trainables.expert_loop import (
    HIDDEN,
    LoopState,
    expert_accuracy,
    expert_loop_loss,
    initial_state,
    run_active_loop,
    training_set,
)
from trainables.losses import kd_loss_masked
from trainables.models import build_model
from trainables.pool_outputs import pool_outputs
from trainables.prepared import TeacherOutputs
from trainables.query import select

TRAIN = 96  # the smoke data's training split: 24 per class


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    torch.set_num_threads(1)
    return smoke_prepared(tmp_path_factory, need_teachers=True)


def trial(**values) -> TrialConfig:
    base = dict(method="active_loop", learning_rate=5e-3, batch_size=8, epochs=1, initial_pool_size=16,
                query_size=8, max_iterations=2)
    return TrialConfig(**{**base, **values})


# ---------------------------------------------------------------- the initial pool and the student's view


def test_initial_state_is_a_seeded_uniform_draw_disjoint_from_the_pool(prepared):
    """Uniform, reading no label: a stratified draw read every candidate row's label to choose 20 (5 a class)."""
    state = initial_state(trial(initial_pool_size=20, seed=3), prepared)
    assert state.round == 0 and state.queried == []
    assert len(state.labelled) == 20 and state.labelled == sorted(state.labelled)
    assert state.labelled == sorted(np.random.default_rng(3).permutation(TRAIN)[:20].tolist())
    hidden = dataclasses.replace(prepared.encoded["train"], labels=np.zeros(TRAIN, dtype=np.int64))
    blind = initial_state(trial(initial_pool_size=20, seed=3), dataclasses.replace(prepared, encoded={
        **prepared.encoded, "train": hidden}))
    assert blind == state  # the labels changed, the draw did not: none was read
    assert not set(state.labelled) & set(state.pool)
    assert sorted(state.labelled + state.pool) == list(range(TRAIN))
    assert initial_state(trial(initial_pool_size=20, seed=3), prepared) == state
    assert initial_state(trial(initial_pool_size=20, seed=4), prepared).labelled != state.labelled


def test_rows_the_teachers_learned_from_are_never_in_the_pool(prepared):
    teachers = dataclasses.replace(prepared.teachers, train_rows=np.arange(48))
    state = initial_state(trial(), dataclasses.replace(prepared, teachers=teachers))
    assert min(state.labelled + state.pool) == 48 and len(state.labelled + state.pool) == TRAIN - 48


@pytest.mark.parametrize("expert", ["teachers", "oracle"])
def test_training_set_shows_gold_labels_only_where_allowed(prepared, expert):
    gold = prepared.encoded["train"].labels
    state = LoopState(1, labelled=[1, 5, 9], queried=[40, 2], pool=[])
    view = training_set(trial(expert=expert), prepared, state)
    assert (view.encoded.labels == HIDDEN).all()  # the gold labels are not in the student's copy at all
    assert view.rows.tolist() == [1, 5, 9, 40, 2]
    assert view.labels[:3].tolist() == gold[[1, 5, 9]].tolist()
    oracle = expert == "oracle"
    assert view.labels[3:].tolist() == (gold[[40, 2]].tolist() if oracle else [HIDDEN, HIDDEN])
    assert view.has_gold.tolist() == [True, True, True, oracle, oracle]
    assert view.has_teacher.tolist() == [True, True, True, not oracle, not oracle]
    assert np.array_equal(view.teacher_logits, prepared.teachers.logits["train"][:, [1, 5, 9, 40, 2]])
    assert np.array_equal(view.encoded.features["input_ids"], prepared.encoded["train"].features["input_ids"])


# ---------------------------------------------------------------- the loop


def run(prepared, config: TrialConfig, monkeypatch=None):
    """Run the loop; returns [(metrics, state)] per report and, with monkeypatch, every loss call's batch."""
    reports, batches = [], []
    if monkeypatch is not None:
        def spy_factory(config):
            loss = expert_loop_loss(config)  # the real one, imported before the patch

            def spy(logits, batch):  # while round r trains, r reports have been made
                batches.append((len(reports), {k: None if v is None else v.clone() for k, v in batch.items()}))
                return loss(logits, batch)
            return spy
        monkeypatch.setattr(el, "expert_loop_loss", spy_factory)
    run_active_loop(config, prepared, lambda metrics, model, state: reports.append((metrics, copy.deepcopy(state))))
    return reports, batches


@pytest.fixture(scope="module")
def teacher_run(prepared):
    with pytest.MonkeyPatch.context() as patch:
        return run(prepared, trial(seed=1), patch)


def test_queried_examples_leave_the_pool_and_never_repeat(teacher_run):
    reports, _ = teacher_run
    states = [state for _, state in reports]
    assert [s["round"] for s in states] == [0, 1, 2]
    for before, after in zip(states, states[1:], strict=False):
        new = after["queried"][len(before["queried"]):]
        assert after["queried"][: len(before["queried"])] == before["queried"]
        assert len(new) == 8 and set(new) <= set(before["pool"]) and not set(new) & set(after["pool"])
    for state in states:
        assert len(set(state["queried"])) == len(state["queried"])
        assert sorted(state["pool"] + state["labelled"] + state["queried"]) == list(range(TRAIN))
        assert state["labelled"] == states[0]["labelled"]


def test_label_accounting_with_teachers_as_experts(teacher_run):
    for metrics, state in teacher_run[0]:
        assert metrics[m.ROUND] == state["round"]
        assert metrics[m.LABELS_USED] == 16  # the initial pool only: the experts label the rest
        assert metrics[m.EXPERT_QUERIES] == 8 * state["round"]
        assert metrics[m.TEACHER_LABELS] == TRAIN
        # The teachers' targets reach the initial pool too (alpha 0.7 mixes them with the gold labels).
        assert metrics[m.TEACHER_LABELLED_ROWS] == 16 + 8 * state["round"]
        assert metrics[m.VALIDATION_LABELS] == 24
        assert metrics["pool_left"] == TRAIN - 16 - 8 * state["round"]
        assert 0 <= metrics[m.VAL_ACCURACY] <= 1


def test_the_loss_never_sees_a_gold_label_of_a_teacher_queried_row(prepared, teacher_run):
    reports, batches = teacher_run
    gold = prepared.encoded["train"].labels
    for round_number, (_, state) in enumerate(reports):
        seen = [batch for r, batch in batches if r == round_number]  # one epoch per round
        labels = torch.cat([b["labels"] for b in seen])
        has_gold = torch.cat([b["has_gold"] for b in seen])
        assert int(has_gold.sum()) == len(state["labelled"]) and int((~has_gold).sum()) == len(state["queried"])
        assert (labels[~has_gold] == HIDDEN).all()
        assert sorted(labels[has_gold].tolist()) == sorted(gold[state["labelled"]].tolist())
        assert all(b["has_teacher"].all() for b in seen)


def test_label_accounting_with_an_oracle(prepared):
    reports, _ = run(prepared, trial(expert="oracle", max_iterations=1, seed=2, expert_price=0.25))
    assert [metrics[m.LABELS_USED] for metrics, _ in reports] == [16, 24]  # initial + queried gold labels
    assert [metrics[m.EXPERT_QUERIES] for metrics, _ in reports] == [0, 0]
    # Its 8 labels are among those 24 gold ones: priced as expert labels too (8 x 0.25) they were counted twice.
    assert [(metrics[m.EXPERT_PRICED_COST], metrics[m.EXPERT_PAID]) for metrics, _ in reports] == [(0, 0), (0, 0)]
    assert [metrics[m.TEACHER_LABELLED_ROWS] for metrics, _ in reports] == [16, 16]  # the initial pool only
    assert [metrics[m.VALIDATION_LABELS] for metrics, _ in reports] == [24, 24]
    # the oracle's labels are the gold ones: right on every row it labelled (the teachers' accuracy was reported)
    assert math.isnan(reports[0][0][m.EXPERT_LABEL_ACCURACY]) and reports[1][0][m.EXPERT_LABEL_ACCURACY] == 1.0
    assert reports[1][0]["expert_label_accuracy_round"] == 1.0


@pytest.mark.parametrize(("alpha", "expert", "gold", "teacher"), [
    (1.0, "teachers", [0, 0], [16, 24]),  # alpha 1: the initial pool's gold labels are never read
    (0.0, "teachers", [16, 16], [0, 8]),  # alpha 0: its teacher targets are never read; queries' always are
    (1.0, "oracle", [0, 8], [16, 16]),  # an oracle's gold labels are read whatever alpha
    (0.0, "oracle", [16, 24], [0, 0]),
])
def test_labels_count_when_the_loss_reads_them(prepared, alpha, expert, gold, teacher):
    """The rule kd follows too: labels_used counts gold labels, teacher_labelled_rows teacher targets,
    that the student's loss actually reads (kd_loss_masked weighs gold by 1 - alpha, teachers by alpha)."""
    reports, _ = run(prepared, trial(alpha=alpha, expert=expert, max_iterations=1, epochs=1))
    assert [metrics[m.LABELS_USED] for metrics, _ in reports] == gold
    assert [metrics[m.TEACHER_LABELLED_ROWS] for metrics, _ in reports] == teacher


@pytest.mark.parametrize(("expert", "priced", "paid"), [
    ("teachers", 2.0, 1.5),  # 8 labels x 0.25 are worth 2.0; 6 asked now x 0.25 paid 1.5 (2 came from a cache)
    ("llm:model.gguf", 2.0, 1.5),
    ("oracle", 0.0, 0.0),  # gold labels, in labels_used: no expert price on top
])
def test_expert_labels_are_priced_and_the_oracles_gold_labels_are_not(expert, priced, paid):
    state = LoopState(1, list(range(16)), list(range(16, 24)), list(range(24, TRAIN)),
                      expert_cost={"calls": 6, "cache_hits": 2})
    metrics = el.expert_cost_metrics(trial(expert=expert, expert_price=0.25), state)
    assert (metrics[m.EXPERT_PRICED_COST], metrics[m.EXPERT_PAID]) == (priced, paid)
    assert (metrics[m.EXPERT_CALLS], metrics[m.EXPERT_CACHE_HITS]) == (6, 2)


def test_given_checkpoints_keep_every_row_in_the_pool_despite_a_teacher_split(prepared):
    """teacher_labels 0: no teacher learned from these rows, so none is kept from the student."""
    teachers = dataclasses.replace(prepared.teachers, train_rows=np.arange(48), teacher_labels=0)
    state = initial_state(trial(), dataclasses.replace(prepared, teachers=teachers))
    assert sorted(state.labelled + state.pool) == list(range(TRAIN))


def test_a_pool_that_runs_out_ends_the_loop_cleanly(prepared):
    # 96 - 80 = 16 in the pool: round 1 takes 10, round 2 the last 6, round 3 has nothing to query.
    reports, _ = run(prepared, trial(initial_pool_size=80, query_size=10, max_iterations=3))
    assert [metrics[m.ROUND] for metrics, _ in reports] == [0, 1, 2]
    assert [metrics["pool_left"] for metrics, _ in reports] == [16, 6, 0]
    assert [metrics[m.EXPERT_QUERIES] for metrics, _ in reports] == [0, 10, 16]


@pytest.mark.parametrize("strategy", ["bald", "badge", "coreset", "contrastive", "margin+balanced"])
def test_the_strategies_of_issue_24_run_in_the_loop(prepared, strategy):
    reports, _ = run(prepared, trial(strategy=strategy, mc_passes=3, max_iterations=2))
    states = [state for _, state in reports]
    assert [len(state["queried"]) for state in states] == [0, 8, 16]
    assert len(set(states[-1]["queried"])) == 16 and not set(states[-1]["queried"]) & set(states[-1]["labelled"])


@pytest.mark.parametrize("strategy, labelled, passes", [("margin", False, 0), ("bald", False, 5),
                                                         ("badge", False, 0), ("coreset+balanced", True, 0),
                                                         ("contrastive", True, 0)])
def test_one_pass_scores_what_the_strategy_reads_and_nothing_more(prepared, monkeypatch, strategy, labelled, passes):
    """coreset and contrastive read the labelled rows' embeddings too (initial pool and queries, in the same
    pass); only bald asks for dropout passes; margin reads neither embeddings nor passes."""
    calls = []

    def spy(model, encoded, rows, **kwargs):
        calls.append((rows.copy(), kwargs))
        return pool_outputs(model, encoded, rows, **kwargs)

    monkeypatch.setattr(el, "pool_outputs", spy)
    state = LoopState(1, labelled=[0, 1, 2], queried=[3, 4], pool=list(range(5, 40)))
    config = trial(strategy=strategy, mc_passes=5, pool_sample_size=20, query_size=4)
    model = build_model(prepared.student, 0)
    chosen = el.query(model, config, prepared, state)
    (rows, kwargs), = calls
    assert len(chosen) == 4 and set(chosen.tolist()) <= set(rows[:20].tolist()) <= set(state.pool)
    assert rows[20:].tolist() == ([0, 1, 2, 3, 4] if labelled else [])
    assert kwargs["mc_passes"] == passes and kwargs["embeddings"] == (strategy not in ("margin", "bald"))


def test_random_queries_read_nothing_of_the_student(prepared, monkeypatch):
    """The draw is the same as select's `random` on the scored rows, without a pass over them."""
    monkeypatch.setattr(el, "pool_outputs", lambda *a, **k: pytest.fail("random made a pass over the pool"))
    state = LoopState(2, labelled=[0, 1], queried=[], pool=list(range(2, 60)))
    chosen = el.query(None, trial(strategy="random", pool_sample_size=30, query_size=5), prepared, state)
    pool = np.sort(np.random.default_rng(2).choice(np.arange(2, 60), 30, replace=False))  # seed 0 * 1000 + round 2
    assert chosen.tolist() == pool[select(np.full((30, 2), 0.5), 5, "random", seed=2)].tolist()


def test_a_stopping_criterion_ends_the_loop_and_a_resumed_trial_stays_stopped(prepared):
    reports, _ = run(prepared, trial(stop="max_rounds:1", max_iterations=3))
    assert [metrics[m.ROUND] for metrics, _ in reports] == [0, 1]
    assert [metrics[m.STOPPED] for metrics, _ in reports] == [0, 1]
    state = reports[-1][1]
    assert len(state["checks"]) == 2 and len(state["checks"][0]["predictions"]) == 24  # the validation split
    assert 0 <= state["checks"][0]["uncertainty"] <= 1
    again = []
    run_active_loop(trial(stop="max_rounds:1", max_iterations=3), prepared,
                    lambda metrics, model, state: again.append(metrics), resume=copy.deepcopy(state), model=None)
    assert again == []
    plain, _ = run(prepared, trial(max_iterations=1))
    assert m.STOPPED not in plain[0][0]  # without a criterion nothing is checked or reported


# ---------------------------------------------------------------- the loss, by hand


def ref_softmax(z, t=1.0):
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def ref_kd(student, teachers, t):
    target = [sum(col) / len(teachers) for col in zip(*(ref_softmax(z, t) for z in teachers), strict=True)]
    q = ref_softmax(student, t)
    return t**2 * sum(p * math.log(p / qi) for p, qi in zip(target, q, strict=True))


def ref_ce(z, label):
    return -math.log(ref_softmax(z)[label])


def test_expert_loop_loss_by_hand():
    t, alpha = 2.0, 0.3
    student = [[1.0, -0.5, 0.2], [0.3, 0.3, -1.0], [-0.2, 1.5, 0.0], [2.0, 0.1, -0.4]]
    teachers = [[[0.5, 0.0, 1.0], [1.0, 2.0, 0.0], [0.0, 3.0, 0.5], [1.0, 0.0, 0.0]],
                [[0.0, 0.2, 2.0], [0.0, 1.0, 1.0], [2.0, 0.0, 0.0], [3.0, 0.5, 0.0]]]
    # rows: gold-labelled (2), oracle-queried (0), teacher-queried (hidden), gold-labelled (1)
    batch = {"labels": torch.tensor([2, 0, HIDDEN, 1]), "has_gold": torch.tensor([True, True, False, True]),
             "has_teacher": torch.tensor([True, False, True, True]), "teacher_logits": torch.tensor(teachers)}

    def kd_row(i):
        return ref_kd(student[i], [teachers[0][i], teachers[1][i]], t)

    expected = (alpha * kd_row(0) + (1 - alpha) * ref_ce(student[0], 2)
                + ref_ce(student[1], 0)
                + kd_row(2)
                + alpha * kd_row(3) + (1 - alpha) * ref_ce(student[3], 1)) / 4
    config = TrialConfig(method="active_loop", temperature=t, alpha=alpha)
    loss = expert_loop_loss(config)(torch.tensor(student), batch)
    assert loss.item() == pytest.approx(expected, rel=1e-5)

    teacher_rows = torch.tensor([0, 2, 3])  # and it is the documented mix of CE and kd_loss_masked
    mix = (torch.nn.functional.cross_entropy(torch.tensor(student[1:2]), torch.tensor([0]))
           + 3 * kd_loss_masked(torch.tensor(student)[teacher_rows], batch["teacher_logits"][:, teacher_rows],
                                batch["labels"][teacher_rows], t, alpha, batch["has_gold"][teacher_rows])) / 4
    assert loss.item() == pytest.approx(mix.item(), rel=1e-6)


def test_expert_loop_loss_with_one_kind_of_row_only():
    config = TrialConfig(method="active_loop", temperature=1.0, alpha=0.5)
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    oracle_only = {"labels": torch.tensor([1, 0]), "has_gold": torch.tensor([True, True]),
                   "has_teacher": torch.tensor([False, False]), "teacher_logits": torch.zeros(1, 2, 2)}
    expected = (ref_ce([1.0, 0.0], 1) + ref_ce([0.0, 2.0], 0)) / 2
    assert expert_loop_loss(config)(student, oracle_only).item() == pytest.approx(expected, rel=1e-6)
    teachers_only = {**oracle_only, "labels": torch.tensor([HIDDEN, HIDDEN]),
                     "has_gold": torch.tensor([False, False]), "has_teacher": torch.tensor([True, True])}
    expected = (ref_kd([1.0, 0.0], [[0.0, 0.0]], 1.0) + ref_kd([0.0, 2.0], [[0.0, 0.0]], 1.0)) / 2
    assert expert_loop_loss(config)(student, teachers_only).item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- the experts' accuracy


def test_expert_accuracy_by_hand():
    # Three teachers: one very sure of class 0, two fairly sure of class 1. Averaging probabilities
    # gives class 1 on row 0 (averaged logits would give class 0): (0.99966 + 2 * 0.1192) / 3 = 0.4127.
    logits = np.array([[[8.0, 0.0], [0.0, 1.0], [3.0, 0.0]],
                       [[0.0, 2.0], [0.0, 1.0], [0.0, 3.0]],
                       [[0.0, 2.0], [2.0, 0.0], [0.0, 3.0]]], dtype=np.float32)
    gold = np.array([1, 1, 0])  # ensemble says: row 0 -> 1, row 1 -> 1 (0.73, 0.73, 0.12 on class 1), row 2 -> 1
    split = EncodedSplit({}, np.zeros(4, dtype=np.int64), gold, 1, 0)
    prepared = SimpleNamespace(teachers=TeacherOutputs(("a", "b", "c"), {"train": logits}, 0),
                               encoded={"train": split})
    assert expert_accuracy(prepared, [0, 1, 2]) == pytest.approx(2 / 3)
    assert expert_accuracy(prepared, [2]) == 0.0
    assert expert_accuracy(prepared, [0]) == 1.0
    assert math.isnan(expert_accuracy(prepared, []))


# ---------------------------------------------------------------- a round's training length


@pytest.mark.parametrize("round_steps, rows, batch, epochs", [
    (0, 150, 16, 1),  # round_steps 0: `epochs` epochs, as before
    (300, 150, 16, 30),  # 10 steps an epoch: 30 epochs = 300 steps
    (300, 700, 16, 7),  # 44 steps an epoch: ceil(300 / 44) = 7 epochs = 308 steps
    (300, 20, 16, 40),  # 2 steps an epoch: 150 epochs asked, the cap is 40
    (10, 700, 16, 3),  # 1 epoch would do; at least 3
])
def test_a_round_trains_about_round_steps_steps_in_whole_epochs(round_steps, rows, batch, epochs):
    assert el.round_epochs(trial(round_steps=round_steps, batch_size=batch), rows) == epochs


def test_each_round_trains_and_reports_the_steps_worked_out_by_hand(prepared, monkeypatch):
    """16 initial rows at batch 8 (2 steps an epoch: 12 epochs for 24 steps), then 24 rows (3 steps an epoch:
    8 epochs) and 32 rows (4: 6 epochs): every round 24 steps; without round_steps, 1 epoch: 2, 3, 4 steps.
    The steps trained are counted as loss calls (one per optimiser step)."""
    for config, steps in ((trial(round_steps=24), [24, 24, 24]), (trial(), [2, 3, 4])):
        reports, batches = run(prepared, config, monkeypatch)
        assert [metrics[m.TRAIN_STEPS] for metrics, _ in reports] == steps
        assert [sum(1 for r, _ in batches if r == round_number) for round_number in range(3)] == steps


def test_round_steps_below_zero_is_refused():
    with pytest.raises(UsageError, match="round_steps must be >= 0"):
        trial(round_steps=-1)
