"""The budget study: each arm's label accounting, pairing by seed, AULC and the bootstrap interval on
hand-worked cases, and the command end to end on the smoke task (with resume and bad input)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.fs
import pytest
import torch
from mlflow.tracking import MlflowClient

from search_spaces import MODULES
from tests.conftest import exit_and_line, run_cli, smoke_prepared
from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.early_stopping import BestEpoch, hold_out, selection_count, selection_score
from trainables.errors import UsageError
from trainables.expert_loop import LoopState
from trainables.study_arms import initial_and_order, point_rows, run_study_arm
from trainables.study_settings import (
    QUERY_LOG,
    StoppingRule,
    StudySettings,
    decode_predictions,
    encode_predictions,
    parse_arm,
)
from tuning import study as study_command
from tuning.analysis.bootstrap import replicate_accuracies, statistic_interval
from tuning.budget_study import carry, runner
from tuning.budget_study.report import aulc, baseline_of, common_seeds, leakage_warnings, summarise
from tuning.trials.driver_lock import LOCK_FILE, one_driver

POOL = 48  # the smoke data's 96 training rows minus the teachers' half


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    torch.set_num_threads(1)
    return smoke_prepared(tmp_path_factory, need_teachers=True, teacher_split=0.5)


def study(arm: str, **values) -> StudySettings:
    recipe = TrialConfig(method="active_loop", learning_rate=5e-3, batch_size=8, epochs=1)
    base = dict(arm=arm, seed=3, budgets=(8, 16, 24), initial=8, recipe=recipe,
                stopping=StoppingRule(max_steps=8, patience_steps=4))
    return StudySettings(**{**base, **values})


def run(arm: str, prepared, **values) -> list[dict]:
    reports = []
    run_study_arm(study(arm, **values), prepared, lambda metrics, model, state: reports.append(metrics))
    return reports


def test_a_trial_reports_the_same_whatever_ran_before_it_in_the_process(prepared):
    """Trials reuse their Ray worker process (tuning/trials/tuner.REUSE_ACTORS), so nothing a trial leaves in the
    process (torch's random state, threads, autocast, caches) may change the next trial's results."""
    def without_times(reports: list[dict]) -> str:  # as JSON text: NaN (no expert labels yet) equals NaN
        return json.dumps([{k: v for k, v in r.items() if not k.endswith("seconds")} for r in reports])

    first = run("expert:margin", prepared)
    run("full:kd", prepared, seed=7)  # other arms, seeds and models in between
    run("kd_all", prepared, seed=1, warm_start=True)
    assert without_times(run("expert:margin", prepared)) == without_times(first)


# ---------------------------------------------------------------- accounting (the contract of study.csv)

def test_supervised_and_oracle_count_every_label_as_gold(prepared):
    for arm in ("supervised", "oracle:margin", "oracle:random"):
        reports = run(arm, prepared)
        assert [r["budget"] for r in reports] == [8, 16, 24]
        assert [r["gold_labels"] for r in reports] == [8, 16, 24], arm
        assert [r[m.EXPERT_QUERIES] for r in reports] == [0, 0, 0], arm
        assert all(r[m.TEACHER_LABELS] == 0 for r in reports), arm


def test_the_oracle_logs_the_gold_labels_it_gives_and_needs_no_teachers(prepared):
    """queries.csv's expert label of an oracle arm is the gold label (entropy 0): it logged the teachers' before,
    and a study whose arms ask no teachers (oracle beside @llm arms) has none prepared: it crashed there."""
    for teachers in (prepared.teachers, None):
        reports = run("oracle:margin", dataclasses.replace(prepared, teachers=teachers))
        for report in reports[1:]:
            record = json.loads(report[QUERY_LOG])
            assert record["expert_label"] == record["gold_label"] and len(record["row"]) == 8
            assert record["expert_entropy"] == [0.0] * 8


def test_expert_arm_keeps_the_initial_gold_and_the_teachers_label_the_rest(prepared):
    reports = run("expert:least_confidence", prepared)
    assert [r["gold_labels"] for r in reports] == [8, 8, 8]
    assert [r["gold_labels"] + r[m.EXPERT_QUERIES] for r in reports] == [8, 16, 24]
    assert all(r[m.TEACHER_LABELS] == 48 for r in reports)  # the teachers' half of the 96 rows
    assert math.isnan(reports[0][m.EXPERT_LABEL_ACCURACY]) and 0 <= reports[2][m.EXPERT_LABEL_ACCURACY] <= 1


def test_query_arms_can_start_below_the_first_budget(prepared):
    """A study may start from 50 gold labels and measure 100, 200, 400: a student of the initial pool
    must pick the first queries."""
    for arm in ("expert:margin", "oracle:random"):
        reports = run(arm, prepared, budgets=(16, 24))
        assert [r["budget"] for r in reports] == [16, 24]
        assert [r["gold_labels"] + r[m.EXPERT_QUERIES] for r in reports] == [16, 24]


def test_kd_all_is_one_point_the_initial_gold_and_teacher_labels_for_the_rest_of_the_pool(prepared):
    (point,) = run("kd_all", prepared)
    assert point["budget"] == POOL and point["gold_labels"] == 8 and point[m.EXPERT_QUERIES] == POOL - 8


def test_full_arms_are_one_point_on_the_whole_pool(prepared):
    (supervised,) = run("full:supervised", prepared)
    (kd,) = run("full:kd", prepared)
    assert supervised["budget"] == supervised["gold_labels"] == POOL and supervised[m.EXPERT_QUERIES] == 0
    assert kd["gold_labels"] == POOL and kd[m.EXPERT_QUERIES] == POOL  # every row also got a teacher label


def test_validation_gold_labels_are_counted(prepared):
    assert run("supervised", prepared, budgets=(8,))[0]["validation_labels"] == 24


# ---------------------------------------------------------------- pairing by seed

def test_the_seed_alone_fixes_the_initial_pool_and_it_never_overlaps_the_teachers_rows(prepared):
    first, order = initial_and_order(study("supervised"), prepared)
    again, _ = initial_and_order(study("expert:margin"), prepared)
    other, _ = initial_and_order(study("supervised", seed=4), prepared)
    assert first == again != other and len(first) == 8
    teacher_rows = set(prepared.teachers.train_rows.tolist())
    assert not set(first) & teacher_rows and not set(order) & teacher_rows
    assert sorted(first + order) == sorted(set(range(96)) - teacher_rows)


def test_at_the_initial_budget_every_gold_only_arm_trains_the_same_student(prepared):
    """Same rows, same initialisation, same batch order: the predictions must be identical."""
    points = [run(arm, prepared, budgets=(8, 16))[0] for arm in ("supervised", "oracle:margin", "oracle:random")]
    assert len({p["test_predictions"] for p in points}) == 1
    assert len({p[m.VAL_ACCURACY] for p in points}) == 1


def test_random_queries_take_supervised_rows_so_oracle_random_is_supervised(prepared):
    """Random queries take the next rows of the seed's order: at every budget expert:random holds
    supervised's rows (the labels alone differ) and oracle:random is supervised, prediction for prediction."""
    supervised = run("supervised", prepared)
    oracle = run("oracle:random", prepared)
    assert [p["test_predictions"] for p in oracle] == [p["test_predictions"] for p in supervised]
    labelled, order = initial_and_order(study("supervised"), prepared)
    queried = [json.loads(p[QUERY_LOG])["row"] for p in run("expert:random", prepared)]
    assert queried == [[], order[:8], order[8:16]]  # budgets 8 (the initial pool), 16, 24


def test_supervised_budgets_are_nested(prepared):
    labelled, order = initial_and_order(study("supervised"), prepared)
    # budget 16 = the initial pool + the first 8 rows of the seed's order, and budget 24 extends it

    state = LoopState(0, labelled, [], order)
    gold16, _ = point_rows(parse_arm("supervised"), state, order, 16)
    gold24, _ = point_rows(parse_arm("supervised"), state, order, 24)
    assert set(gold16) < set(gold24) and gold16 == labelled + order[:8]


# ---------------------------------------------------------------- early stopping and model selection

def test_cap_and_patience_in_steps_become_whole_epochs():
    rule = StoppingRule(max_steps=1500, patience_steps=150, max_epochs=40)
    assert rule.epochs(6) == (40, 25)  # 45 rows at batch 8: ceil(1500 / 6) = 250 capped at 40; ceil(150 / 6)
    assert rule.epochs(90) == (17, 2)  # 720 rows: ceil(1500 / 90) = 17; ceil(150 / 90) = 2
    assert rule.epochs(1000) == (3, 2)  # at least 3 epochs and a patience of 2
    assert StoppingRule(max_steps=10, patience_steps=150).epochs(5) == (3, 3)  # patience never beyond the cap


def test_the_best_epoch_is_kept_ties_go_to_the_lower_loss_and_patience_stops():
    model = torch.nn.Linear(1, 1, bias=False)
    best = BestEpoch(patience=2)
    # (accuracy, loss) per epoch, weights set to the epoch's number so that the kept ones can be read back
    decisions = []
    for epoch, (accuracy, loss) in enumerate([(0.5, 1.0), (0.6, 0.9), (0.6, 0.8), (0.6, 0.85), (0.55, 0.7)], 1):
        model.weight.data.fill_(epoch)
        decisions.append(best.update(model, epoch, accuracy, loss))
    # epoch 3 ties epoch 2's accuracy with a lower loss: it is the best; epochs 4 and 5 are not better,
    # and after epoch 5 two epochs have passed: stop
    assert decisions == [False, False, False, False, True] and best.epoch == 3
    best.restore(model)
    assert model.weight.item() == 3.0


def test_the_selection_share_is_ten_percent_at_least_one_and_leaves_one_to_train():
    assert [selection_count(n, 0.1) for n in (2, 5, 45, 50, 720)] == [1, 1, 4, 5, 72]
    with pytest.raises(UsageError, match="at least 2"):
        selection_count(1, 0.1)
    targets = np.array([0] * 10 + [1] * 10)
    held = hold_out(targets, 0.2, seed=0)
    assert held.sum() == 4 and targets[held].tolist().count(0) == 2  # stratified: 2 of each class
    assert (hold_out(targets, 0.2, seed=0) == held).all()


def test_selection_score_by_hand():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    accuracy, loss = selection_score(logits, np.array([0, 0]))
    # row 1 right, row 2 wrong; cross-entropy: (log(1 + e^-2) + log(1 + e^1)) / 2
    assert accuracy == 0.5 and loss == pytest.approx((math.log(1 + math.exp(-2)) + math.log(1 + math.e)) / 2)


def test_by_default_a_point_trains_to_the_cap_and_keeps_its_last_epoch_spending_no_label(prepared):
    """Budgets 8, 16, 24 at batch 8: 1, 2, 3 steps an epoch; the cap of 8 steps is 8, 4, 3 epochs."""
    points = run("supervised", prepared)
    assert [(p[m.EPOCH], p["epochs_run"], p["cap_epochs"]) for p in points] == [(8, 8, 8), (4, 4, 4), (3, 3, 3)]
    assert [p["steps"] for p in points] == [8, 8, 9]
    assert all(p["selection_labels"] == 0 and p["selection_curve"] == "[]" for p in points)
    assert [p["gold_labels"] for p in points] == [8, 16, 24]  # every label trains
    last = study("supervised", budgets=(8,))
    (again,) = run("supervised", prepared, budgets=(8,), stopping=dataclasses.replace(last.stopping, max_steps=16))
    assert again["epochs_run"] == 16  # a higher cap trains on: no early stop without a selection set


def test_a_point_keeps_its_best_epoch_and_holds_out_a_counted_share(prepared):
    points = run("supervised", prepared, budgets=(8, 16, 24), selection="share")
    for point in points:
        curve = json.loads(point["selection_curve"])
        assert point["epochs_run"] == len(curve) and 1 <= point[m.EPOCH] <= point["epochs_run"]
        assert curve[point[m.EPOCH] - 1][1] == max(accuracy for _, accuracy in curve)
        assert point["selection_labels"] == selection_count(point["budget"], 0.1)
        assert point["gold_labels"] == point["budget"]  # the held-out share is inside the budget
    traced = run("supervised", prepared, budgets=(8,), seed=0, selection="share")[0]  # the traced seed
    # budget 8: 7 rows, 1 step an epoch, cap 8 epochs (max_steps 8): every epoch traced (8 <= 10 points)
    assert [step for step, _ in json.loads(traced["validation_curve"])] == list(range(1, traced["epochs_run"] + 1))
    assert points[0]["validation_curve"] == ""  # seed 3: not traced


def test_selecting_on_the_validation_split_counts_its_gold_labels_and_picks_its_best_epoch(prepared):
    (point,) = run("supervised", prepared, budgets=(16,), selection="validation", seed=0)
    assert point["gold_labels"] == 16 + 24 and point["selection_labels"] == 24  # 24 validation rows
    # selected on the validation split itself: the kept epoch's validation accuracy is the curve's best
    best = max(accuracy for _, accuracy in json.loads(point["validation_curve"]))
    assert point[m.VAL_ACCURACY] == pytest.approx(best)


def test_expert_reads_count_the_pool_rows_robust_least_confidence_scores(prepared):
    reads = [r[m.EXPERT_READS] for r in run("expert:robust_least_confidence", prepared)]
    assert reads == [0, 40, 40 + 32]  # the pool holds 48 - 8 rows when budget 16 is queried, 32 at 24
    assert [r[m.EXPERT_READS] for r in run("expert:margin", prepared)] == [0, 0, 0]


@pytest.mark.parametrize("arm", ["expert:bald", "expert:badge", "expert:coreset", "expert:contrastive",
                                 "expert:margin+balanced", "oracle:coreset", "expert:least_confidence",
                                 "expert:entropy"])
def test_the_arms_of_issue_24_query_and_count_like_the_others(prepared, arm):
    """Every strategy in a study arm, in process (the end-to-end study runs five of them)."""
    reports = run(arm, prepared)
    assert [r["gold_labels"] + r[m.EXPERT_QUERIES] for r in reports] == [8, 16, 24]
    rows = [row for r in reports for row in json.loads(r["query_log"])["row"]]
    assert len(rows) == len(set(rows)) == 16
    assert [r[m.EXPERT_READS] for r in reports] == [0, 0, 0]


def test_every_point_records_its_stopping_check_on_the_validation_inputs(prepared):
    for point in run("expert:margin", prepared):
        assert len(decode_predictions(point["stop_predictions"])) == 24  # the validation split's rows
        assert 0 <= point["stop_uncertainty"] <= 1


def test_query_log_holds_every_new_row_with_its_gold_and_expert_labels(prepared):
    reports = run("expert:margin", prepared)
    logs = [json.loads(r["query_log"]) for r in reports]
    assert [len(log["row"]) for log in logs] == [0, 8, 8]
    rows = np.array(logs[1]["row"])
    assert logs[1]["gold_label"] == prepared.encoded["train"].labels[rows].tolist()
    assert logs[1]["expert_label"] == prepared.teachers.ensemble_probs("train")[rows].argmax(axis=1).tolist()


# ---------------------------------------------------------------- settings and arms

@pytest.mark.parametrize("name", ["expert:nope", "oracle", "kd_all:margin", "full:other", ""])
def test_unknown_arms_are_refused(name):
    with pytest.raises(UsageError, match="unknown study arm"):
        parse_arm(name)


@pytest.mark.parametrize("values, message", [
    (dict(budgets=(16, 8)), "increasing"), (dict(budgets=(8, 8)), "increasing"),
    (dict(initial=9), "smallest budget"), (dict(selection="test"), "--selection"),
    (dict(selection_share=1.0), "selection share must lie strictly between 0 and 1"),
    (dict(initial=1, budgets=(1, 8), selection="share"), "at least one label"),
])
def test_bad_settings_are_refused(values, message):
    with pytest.raises(UsageError, match=message):
        study("supervised", **values)


def test_a_pool_sample_smaller_than_a_budget_step_is_refused_before_the_study():
    """budgets 8, 16, 24 from 8 gold: steps of 8 rows queried at once. A sample of 6 pool rows cannot give 8: the
    trial failed at that point, mid-study; now the settings are refused."""
    sampled = TrialConfig(method="active_loop", learning_rate=5e-3, batch_size=8, epochs=1, query_size=4,
                          pool_sample_size=6)
    with pytest.raises(UsageError, match=r"pool_sample_size 6 .* \(8\): set pool_sample_size to 0 .* or >= 8"):
        study("expert:margin", recipe=sampled)
    study("expert:margin", recipe=dataclasses.replace(sampled, pool_sample_size=8))  # enough
    study("expert:random", recipe=sampled)  # random queries score no pool rows
    study("supervised", recipe=sampled)


def test_settings_survive_the_trip_through_a_dict():
    settings = study("expert:margin")
    assert StudySettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


def test_a_first_version_study_is_refused_not_mixed():
    values = {**study("supervised").to_dict(), "min_steps": 250}
    with pytest.raises(UsageError, match="first version of the budget study"):
        StudySettings.from_dict(values)


def test_predictions_round_trip():
    assert decode_predictions(encode_predictions(np.array([0, 3, 1]))).tolist() == [0, 3, 1]
    assert decode_predictions(encode_predictions(np.array([12, 3]))).tolist() == [12, 3]


# ---------------------------------------------------------------- statistics on hand-worked cases

def test_aulc_by_hand():
    # trapezoid: (0.5 + 0.6) / 2 * 100 + (0.6 + 0.8) / 2 * 200 = 55 + 140 = 195; / (400 - 100) = 0.65
    assert aulc(np.array([0.5, 0.6, 0.8]), [100, 200, 400]) == pytest.approx(0.65)
    assert aulc(np.array([[0.5, 0.5], [1.0, 0.0]]), [10, 20]).tolist() == [0.5, 0.5]


def test_bootstrap_interval_matches_the_binomial_interval_for_one_seed():
    """One seed, 4000 test examples, 80% right: the test-sampling 95% interval is about
    0.8 +- 1.96 * sqrt(0.8 * 0.2 / 4000) = 0.8 +- 0.0124."""
    correct = np.zeros((1, 4000), bool)
    correct[0, :3200] = True
    result = statistic_interval(correct, lambda acc: acc, replicates=4000)
    low, high = result["ci"]
    assert result["mean"] == pytest.approx(0.8)
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(0.16 / 4000), rel=0.1)


def test_bootstrap_covers_seed_variation_too():
    """Two seeds, one right on 60% of 1,000 examples and one on all of them: a quarter of the replicates
    draw the weak seed twice (about 0.6), a quarter the strong one twice (1.0), half one of each (0.8)."""
    correct = np.zeros((2, 1000), bool)
    correct[0, :600] = True
    correct[1, :] = True
    values = replicate_accuracies(correct, replicates=4000)
    assert values[0] == pytest.approx(0.8)
    assert np.mean(values[1:] < 0.7) == pytest.approx(0.25, abs=0.03)
    assert np.mean(values[1:] > 1 - 1e-9) == pytest.approx(0.25, abs=0.03)


def test_a_paired_difference_of_identical_arms_is_exactly_zero():
    rng = np.random.default_rng(0)
    correct = rng.random((3, 500)) < 0.7
    both = np.stack([correct, correct])
    result = statistic_interval(both, lambda acc: acc[:, 0] - acc[:, 1])
    assert result == {"mean": 0.0, "ci": [0.0, 0.0]}


def test_baselines_and_common_seeds():
    arms = ["supervised", "expert:random", "expert:margin", "oracle:random", "oracle:entropy"]
    assert baseline_of("expert:margin", arms) == "expert:random"
    assert baseline_of("oracle:entropy", arms) == "oracle:random"
    assert baseline_of("oracle:entropy", ["supervised", "oracle:entropy"]) == "supervised"
    assert baseline_of("expert:random", arms) is None and baseline_of("supervised", arms) is None
    frame = pd.DataFrame({"arm": ["supervised"] * 3 + ["expert:margin"] * 3 + ["kd_all", "full:kd", "full:kd"],
                          "budget": [1, 2, 1, 1, 2, 1, 9, 9, 9], "seed": [0, 0, 1, 0, 0, 1, 0, 0, 1]})
    assert common_seeds(frame, [1, 2]) == [0]  # seed 1 of the curve arms lacks budget 2
    assert common_seeds(frame, [1]) == [0]  # kd_all, a single point, has not run seed 1
    assert common_seeds(frame[frame["arm"] != "kd_all"], [1]) == [0, 1]  # single points: one point a seed
    assert common_seeds(frame[frame["arm"] != "kd_all"].iloc[:-1], [1]) == [0]  # full:kd has not finished seed 1


def test_summary_by_hand_on_a_made_up_study():
    """Four test examples with labels 0, 1, 2, 3; a prediction string right on its first k examples."""
    def prediction(k):
        return "0123"[:k] + "9" * (4 - k)

    def row(arm, budget, seed, k, f1=0.4, gold=None, queries=0):
        return {"arm": arm, "budget": budget, "seed": seed, "gold_labels": gold or budget, "expert_queries": queries,
                "expert_reads": 0, "selection_labels": 1, "val_accuracy": 0.5, "test_accuracy": k / 4,
                "test_macro_f1": f1, "expert_label_accuracy": None, "train_seconds": 1.0, "epoch": 2,
                "epochs_run": 4, "steps": 8, "test_predictions": prediction(k)}
    frame = pd.DataFrame([
        row("supervised", 10, 0, 2), row("supervised", 20, 0, 4),
        row("expert:random", 10, 0, 1, gold=10), row("expert:random", 20, 0, 3, gold=10, queries=10),
        row("expert:margin", 10, 0, 2, gold=10), row("expert:margin", 20, 0, 2, gold=10, queries=10),
        row("full:supervised", 30, 0, 4),
        row("supervised", 10, 1, 0, f1=0.0),  # seed 1 never finished: it must not enter any figure
    ])
    summary = summarise(frame, np.array([0, 1, 2, 3]), [10, 20], {}, replicates=50)
    arms = summary["arms"]
    assert summary["seeds"] == [0]
    assert arms["supervised"]["aulc"] == pytest.approx(0.75)  # (0.5 + 1.0) / 2
    assert arms["expert:random"]["aulc"] == pytest.approx(0.5)  # (0.25 + 0.75) / 2
    assert arms["expert:margin"]["aulc_diff_vs_random"]["mean"] == pytest.approx(0.0)  # 0.5 - 0.5
    assert arms["supervised"]["per_budget"]["10"]["test_macro_f1"] == pytest.approx(0.4)
    reach = arms["supervised"]["gold_labels_to_95pct"]
    assert (reach["budget"], reach["gold_labels"], reach["expert_queries"]) == (20, 20, 0)
    assert arms["expert:random"]["gold_labels_to_90pct"]["budget"] is None  # 0.75 < 0.9 x 1.0
    assert arms["full:supervised"]["test_accuracy"]["mean"] == pytest.approx(1.0)


def test_leakage_warning_only_beyond_noise():
    def summary(queried):
        return {"teacher_accuracy": {"ensemble/test": 0.80}, "test_examples": 500,
                "arms": {"expert:margin": {"per_budget": {"400": {m.EXPERT_LABEL_ACCURACY: queried,
                                                                  m.EXPERT_QUERIES: 350}}}}}
    # noise = 2 * sqrt(0.16 / 500 + q(1-q) / 350): 0.95 is 0.15 above (noise ~0.044), 0.82 is within it
    assert len(leakage_warnings(summary(0.95))) == 1
    assert leakage_warnings(summary(0.82)) == []


# ---------------------------------------------------------------- the command

@pytest.mark.slow
def test_smoke_study_end_to_end_then_resume_rewrites_the_report(tmp_path, session_cache, capsys):
    # End to end: random (the baseline), an uncertainty strategy, the one that reads the teachers for every pool row,
    # one that reads gradient embeddings, the class-balancing wrapper. Every other strategy runs in a study arm in
    # test_the_arms_of_issue_24_query_and_count_like_the_others; each arm here costs about 3 s of the suite.
    strategies = ["margin", "random", "robust_least_confidence", "badge", "margin+balanced"]
    result = run_cli("study.py", "--smoke-test", "--storage-path", str(tmp_path), "--name", "s", "--tracker", "mlflow",
                     "--strategies", ",".join(strategies), cache=session_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    # Tune calls ProgressLines' setup and on_step_begin: once a trial has ended, the line says the time left
    assert "trials done, about " in result.stdout and "left at this run's pace)" in result.stdout
    folder = tmp_path / "s"
    frame = pd.read_csv(folder / "study.csv", dtype={"test_predictions": str, "stop_predictions": str})
    assert list(frame.columns[:8]) == ["arm", "budget", "seed", "gold_labels", "expert_queries", "val_accuracy",
                                       "test_accuracy", "test_macro_f1"]
    oracle_arms = {f"oracle:{s}" for s in study_command.DEFAULTS["oracle_strategies"].split(",")}
    curve_arms = {"supervised", *oracle_arms, *(f"expert:{s}" for s in strategies)}
    assert set(frame["arm"]) == curve_arms | {"kd_all", "full:supervised"}  # full:kd only when asked (--arms)
    assert len(frame) == len(curve_arms) * 3 * 2 + 2 * 2  # 3 budgets x 2 seeds, single-point arms one per seed
    expert = frame[frame["arm"].str.startswith("expert:")]
    assert (expert["gold_labels"] == 8).all() and ((expert["gold_labels"] + expert["expert_queries"])
                                                   == expert["budget"]).all()
    summary = json.loads((folder / "summary.json").read_text())
    assert "trainables/study_arms.py" in json.loads((folder / "study.json").read_text())["code"]  # fingerprinted
    assert summary["code_changes"] == []  # one code throughout
    assert summary["teacher_split"] == 0.5 and summary["seeds"] == [0, 1] and summary["budgets"] == [8, 16, 32]
    assert summary["trials_ended"] == summary["trials_planned"] == len(curve_arms) * 2 + 2 * 2  # not "in progress"
    for arm in curve_arms:
        assert 0 <= summary["arms"][arm]["aulc"] <= 1
        if arm.startswith(("expert:", "oracle:")) and not arm.endswith(":random"):
            diff = summary["arms"][arm]["aulc_diff_vs_random"]
            assert diff["ci"][0] <= diff["mean"] <= diff["ci"][1]
    report = (folder / "report.md").read_text()
    assert report.startswith("# Budget study\n\n## Answer") and "Goal:" in report
    for plot in ("accuracy_vs_gold.png", "accuracy_vs_all_labels.png", "aulc.png", "cost_frontier.png",
                 "class_recall.png", "validation_curves.png", "query_class_balance.png"):
        assert (folder / plot).stat().st_size > 1000
    queries = pd.read_csv(folder / "queries.csv")
    # every query arm x 2 seeds x (8 rows to reach 16 + 16 to reach 32), each with its gold and expert label
    query_arms = len(curve_arms) - 1
    assert len(queries) == query_arms * 2 * 24 and queries.groupby(["arm", "seed"])["row"].nunique().eq(24).all()
    assert set(queries["arm"]) == curve_arms - {"supervised"}
    stopping = summary["stopping_criteria"]["arms"]
    assert set(stopping) == curve_arms - {"supervised"} and "## Stopping criteria" in report
    assert all(0 <= e["mean_labels"] <= 32 for criteria in stopping.values() for e in criteria.values())
    (folder / "report.md").unlink()
    # as if the training code had changed since: a resume that trains nothing must not say it trained with it
    record = json.loads((folder / "study.json").read_text())
    record["code"]["trainables/study_arms.py"] = "0" * 64
    (folder / "study.json").write_text(json.dumps(record))
    again = run_cli("study.py", "--resume", "--name", "s", "--storage-path", str(tmp_path), "--prices",
                    "gold=1,expert=0.1", cache=session_cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "every trial of this study has ended: its report is rewritten, nothing is trained" in again.stdout
    assert (folder / "report.md").is_file()
    assert json.loads((folder / "summary.json").read_text())["prices"]["expert"] == 0.1  # repriced on resume
    assert json.loads((folder / "summary.json").read_text())["code_changes"] == []
    assert "training code changed" not in again.stdout + (folder / "report.md").read_text()
    runs = json.loads((folder / "study.json").read_text())["runs"]  # the start; the --resume trained nothing
    assert [r["trials_ended"] for r in runs] == [len(frame.groupby(["arm", "seed"]))]
    assert pd.read_csv(folder / "study.csv", dtype={"test_predictions": str, "stop_predictions": str}).equals(frame)
    assert_one_mlflow_run_per_trial(tmp_path / "mlruns", frame)
    assert_carried_to_another_machine(tmp_path, frame, session_cache, capsys)


def assert_carried_to_another_machine(tmp_path: Path, frame: pd.DataFrame, cache: Path, capsys) -> None:
    """--export, then the copy continued as on another machine, one trial's points taken out of it: --resume runs
    that trial alone (a new Tune experiment; the teachers carried, none fine-tuned) and writes the study.csv that
    the study measured in one go, to the last prediction (train_seconds aside)."""
    copy = tmp_path / "exported" / "s"
    # in process (it starts no Ray): a subprocess would add its imports to the suite
    assert study_command.main(["--export", str(copy), "--name", "s", "--storage-path", str(tmp_path)]) == 0
    trials = frame.groupby(["arm", "seed"]).ngroups
    assert f"exported {trials} of {trials} ended trials to {copy}" in capsys.readouterr().out
    files = {path.name for path in copy.iterdir()}
    assert {"study.json", carry.POINTS, carry.TEACHERS, "study.csv", "queries.csv", "summary.json"} <= files
    assert not any(path.is_dir() or path.name.startswith(("experiment_state", "tuner")) for path in copy.iterdir())
    assert read_study_csv(copy).equals(frame)
    elsewhere = tmp_path / "elsewhere" / "s"
    shutil.copytree(copy, elsewhere)
    dropped = ("expert:margin", 1)
    carry.write_points(elsewhere, [p for p in carry.read_points(elsewhere) if (p["arm"], p["seed"]) != dropped])
    again = run_cli("study.py", "--resume", "--name", "s", "--storage-path", str(elsewhere.parent), cache=cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{trials - 1} of {trials} trials ended there are carried from {carry.POINTS}" in again.stdout
    assert f"carried from {carry.TEACHERS}" in again.stdout and "fine-tun" not in again.stdout.replace(
        "as fine-tuned when the study started", "")
    ran = [json.loads((path / "params.json").read_text())["point"] for path in elsewhere.iterdir() if path.is_dir()]
    assert ran == [{"arm": dropped[0], "seed": dropped[1]}]
    timing = ["train_seconds"]
    assert read_study_csv(elsewhere).drop(columns=timing).equals(frame.drop(columns=timing))
    assert json.loads((elsewhere / "study.json").read_text())["runs"][-1]["trials_ended"] == trials


def read_study_csv(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "study.csv", dtype={"test_predictions": str, "stop_predictions": str})


def assert_one_mlflow_run_per_trial(store, frame) -> None:
    """--tracker mlflow's default store (mlruns/ in --storage-path): one run per (arm, seed), a val_accuracy
    per budget, and still one run each after --resume (the restored Tuner brings its MLflow callback back)."""
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("s").experiment_id], max_results=100)
    points = frame.groupby(["arm", "seed"]).size()
    assert sorted((r.data.params["point/arm"], int(r.data.params["point/seed"])) for r in runs) == sorted(points.index)
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert len(history) == points[(run.data.params["point/arm"], int(run.data.params["point/seed"]))]
        assert run.info.status == "FINISHED" and "test_predictions" not in run.data.metrics


@pytest.mark.parametrize("args, message", [
    (["--budgets", "16,8"], "increasing"),
    (["--budgets", "8,x"], "whole numbers"),
    (["--initial", "20"], "smallest budget"),
    (["--budgets", "8,16,64"], "larger than the student's pool of 48"),
    (["--arms", "supervised,expert:nope"], "unknown study arm"),
    (["--arms", ","], "--arms names nothing (got ',')"),  # was: teachers fine-tuned, Ray, then an IndexError
    (["--arms", ""], "--arms names nothing (got '')"),  # was: every default arm, silently
    (["--strategies", ","], "--strategies names nothing"),  # was: a study without its expert arms
    (["--oracle-strategies", " , "], "--oracle-strategies names nothing"),
    (["--seeds", "0"], "--seeds"),
    (["--max-concurrent", "0"], "--max-concurrent"),
    (["--set", "learning_rate=-1"], "learning_rate"),
    (["--set", "stop=kappa:0.99"], "after the fact"),  # the study judges every criterion afterwards
    (["--set", "seed=3"], "--set seed=... would be silently replaced"),  # each arm runs --seeds seeds
    (["--set", "expert=human"], "sets expert itself for every arm and seed, from the arm"),
    (["--budg", "8"], "unrecognized arguments"),  # no abbreviations
])
def test_bad_input_exits_2_before_anything_is_written(tmp_path, session_cache, args, message):
    result = run_cli("study.py", "--smoke-test", "--storage-path", str(tmp_path), "--name", "bad", *args,
                     cache=session_cache, timeout=120, python_flags=("-X", "importtime"))
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert result.returncode == 2, errors[-20:]
    assert len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "bad").exists()
    if "pool" not in message:  # only the pool's size needs the data; every other check comes first
        assert not heavy_imports(result.stderr), heavy_imports(result.stderr)


@pytest.mark.parametrize("pair, flag", [
    ("seed=3", "--seeds"), ("expert=human", "the arm"), ("expert=oracle", "the arm"), ("strategy=margin", "the arm"),
    ("initial_pool_size=20", "--initial"), ("max_iterations=5", "--budgets"), ("query_size=10", "--budgets"),
    ("epochs=9", "--max-steps"), ("round_steps=600", "--max-steps"), ("warm_start=true", "--warm-start"),
    ("expert_url=http://h/v1", "--expert-url"), ("expert_model=m", "--expert-model"), ("method=kd", "--arms"),
])
def test_a_setting_the_study_sets_per_arm_is_refused_naming_the_flag_that_sets_it(pair, flag):
    """study_arms.arm_recipe gives every arm its seed, expert and strategy, each point its query size, and
    --initial, --budgets, --max-steps and --warm-start decide the rest: a --set of these changed nothing."""
    name = pair.split("=")[0]
    with pytest.raises(UsageError, match=f"--set {name}=... would be silently replaced: .* from {flag}"):
        study_command.recipe(study_command.parse_args(["--smoke-test", "--set", pair]))
    recipe = study_command.recipe(study_command.parse_args(["--set", "alpha=0.5", "--set", "mc_passes=4"]))
    assert (recipe.alpha, recipe.mc_passes) == (0.5, 4)  # what the study reads from the recipe stays settable


def heavy_imports(importtime_log: str) -> set[str]:
    """Ray, torch and transformers among the packages `python -X importtime` says were imported."""
    names = {line.split("|")[-1].strip().split(".")[0] for line in importtime_log.splitlines()
             if line.startswith("import time:")}
    return names & {"ray", "torch", "transformers"}


@pytest.mark.parametrize("under", ["", "sub"])
def test_a_storage_path_that_is_or_is_under_a_file_exits_2_before_the_teachers(tmp_path, capsys, no_ray, under):
    afile = tmp_path / "afile"
    afile.write_text("x")
    storage = afile / under if under else afile
    code, line = exit_and_line(study_command.main, ["--smoke-test", "--storage-path", str(storage)], capsys)
    assert code == 2 and f"--storage-path {storage}: {afile} is a file, not a folder" in line, line
    assert afile.read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_more_cpus_per_trial_than_this_machine_has_exits_2_instead_of_waiting_forever(tmp_path, capsys, no_ray):
    too_many = (os.cpu_count() or 1) + 1
    code, line = exit_and_line(study_command.main, ["--smoke-test", "--storage-path", str(tmp_path / "r"),
                                                    "--cpus-per-trial", str(too_many)], capsys)
    assert code == 2 and f"--cpus-per-trial {too_many}: this machine has {too_many - 1} CPU(s)" in line, line
    assert not (tmp_path / "r").exists()


def test_an_existing_study_is_never_overwritten(tmp_path, session_cache):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("x")
    result = run_cli("study.py", "--smoke-test", "--storage-path", str(tmp_path), "--name", "taken",
                     cache=session_cache, timeout=120)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (tmp_path / "taken" / "keep.txt").read_text() == "x"


# ---------------------------------------------------------------- one driver per study

def study_files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_resume_while_the_study_runs_elsewhere_exits_2_and_changes_no_file(tmp_path, capsys, monkeypatch, no_ray,
                                                                            session_cache):
    monkeypatch.setattr(runner, "prepare", lambda *args, **kwargs: pytest.fail("the resume prepared the study"))
    folder = tmp_path / "s"
    (folder / "trial_0").mkdir(parents=True)
    args = study_command.parse_args(["--smoke-test"])
    record = {"plan": study_command.study_settings(args), "data": study_command.data_settings(args).to_dict()}
    (folder / runner.STUDY_FILE).write_text(json.dumps(record))
    (folder / "study.csv").write_text("arm,budget,seed\nsupervised,8,0\n")
    (folder / "trial_0" / "result.json").write_text('{"arm": "supervised"}\n')
    with one_driver(folder, "study s"):  # the running study's driver
        before = study_files(folder)
        code, line = exit_and_line(study_command.main, ["--resume", "--name", "s", "--storage-path", str(tmp_path)],
                                   capsys)
        assert code == 2 and f"study s is already running in another process (it holds {folder / LOCK_FILE})" in line
        assert line.endswith(f"continue it with: python tuning/study.py --resume --name s --storage-path {tmp_path}")
        assert study_files(folder) == before


def test_a_resume_refuses_the_flags_that_define_the_study_naming_them(tmp_path, capsys, no_ray):
    """They were silently ignored (--seeds, --budgets, --arms, --set, --expert ... on --resume): the study continues
    with its saved plan."""
    argv = ["--resume", "--name", "s", "--storage-path", str(tmp_path), "--seeds", "3", "--budgets", "100,50",
            "--arms", "bogus", "--set", "alpha=0.5", "--initial", "20", "--quick", "--max-concurrent", "1"]
    code, line = exit_and_line(study_command.main, argv, capsys)
    assert code == 2 and line == ("error: --resume continues study s as it started: --seeds, --budgets, --arms, --set, "
                                  "--initial, --quick cannot change on --resume (they would be ignored); start a new "
                                  "study to change them")
    assert list(tmp_path.iterdir()) == []
    kept = ["--resume", "--name", "s", "--storage-path", str(tmp_path), "--address", "10.0.0.5:6379", "--dashboard",
            "--verbose", "--max-concurrent", "1", "--prices", "gold=1,expert=0.1", "--charge-sunk"]
    code, line = exit_and_line(study_command.main, kept, capsys)
    assert code == 2 and "no study to resume" in line  # past the flags: they are the ones a resume uses


def test_a_resume_of_no_study_leaves_no_lock_file_behind(tmp_path, capsys, no_ray, session_cache):
    (tmp_path / "typo").mkdir()
    code, line = exit_and_line(study_command.main, ["--resume", "--name", "typo", "--storage-path", str(tmp_path)],
                               capsys)
    assert code == 2 and "no study to resume" in line and list((tmp_path / "typo").iterdir()) == []
    code, line = exit_and_line(study_command.main, ["--resume", "--name", "gone", "--storage-path", str(tmp_path)],
                               capsys)
    assert code == 2 and not (tmp_path / "gone").exists()


def refused_beside(folder: Path) -> bool:
    """Whether a second driver of the study `folder` is refused now."""
    try:
        with one_driver(folder, "study s"):
            return False
    except UsageError:
        return True


def test_a_new_study_holds_its_folder_from_before_ray_starts_to_its_end(tmp_path, monkeypatch, session_cache):
    folder, seen = tmp_path / "results" / "s", []

    def prepare(*args, **kwargs):  # where the teachers are fine-tuned and Ray starts
        seen.append(("prepare", sorted(p.name for p in folder.iterdir()), refused_beside(folder)))
        return SimpleNamespace(teachers=None)  # no teachers to save beside study.json

    def run(*args, **kwargs):  # the grid on Ray, then the report
        seen.append(("run", sorted(p.name for p in folder.iterdir()), refused_beside(folder)))
        return 0

    monkeypatch.setattr(runner, "prepare", prepare)
    monkeypatch.setattr(runner, "_announce", lambda *args: None)
    monkeypatch.setattr(runner, "_run", run)
    assert study_command.main(["--smoke-test", "--storage-path", str(tmp_path / "results"), "--name", "s"]) == 0
    assert seen == [("prepare", [LOCK_FILE], True), ("run", [LOCK_FILE, runner.STUDY_FILE], True)]
    assert not refused_beside(folder)  # released at its end


@pytest.mark.parametrize("stop, status", [(UsageError("teacher ./t does not exist"), 2), (KeyboardInterrupt(), 130)])
def test_a_new_study_stopped_before_study_json_leaves_no_folder(tmp_path, monkeypatch, capsys, session_cache, stop,
                                                               status):
    def prepare(*args, **kwargs):
        raise stop

    monkeypatch.setattr(runner, "prepare", prepare)
    code, _ = exit_and_line(study_command.main, ["--smoke-test", "--storage-path", str(tmp_path / "results" / "deep"),
                                                 "--name", "s"], capsys)
    assert code == status and list(tmp_path.iterdir()) == []  # the name stays free, no empty folders left


def test_a_study_folder_holding_only_a_killed_drivers_lock_blocks_no_name(tmp_path, monkeypatch, capsys,
                                                                          session_cache):
    """A study killed (kill -9) before it wrote study.json leaves its lock file: the name was then refused both as an
    existing study and as one with nothing to resume. Now a new study of that name goes ahead."""
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / LOCK_FILE).write_bytes(b"")
    reached = []
    monkeypatch.setattr(runner, "prepare", lambda *args, **kwargs: reached.append(True) or pytest.fail("stop here"))
    with pytest.raises(pytest.fail.Exception):
        study_command.main(["--smoke-test", "--storage-path", str(tmp_path), "--name", "s"])
    assert reached == [True] and list(tmp_path.iterdir()) == []  # past the name; its folder removed on the way out
    folder.mkdir()
    (folder / "study.csv").write_text("a study's file\n")
    code, line = exit_and_line(study_command.main, ["--smoke-test", "--storage-path", str(tmp_path), "--name", "s"],
                               capsys)
    assert code == 2 and line == (f"error: study {folder} already exists: use --resume --name s or another --name")


# ---------------------------------------------------------------- the recipe without a sweep

def test_the_default_recipe_is_the_original_with_the_probes_rate_and_batch():
    """The original research's 2e-5 / batch 16 left the 3-layer student near 0.59 on the full pool; the
    fallback takes the validation-chosen rate and batch of the recipe probe, keeps the original's epochs,
    T and alpha."""
    recipe = study_command.recipe(study_command.parse_args([]))
    assert (recipe.learning_rate, recipe.batch_size) == (2e-4, 16)
    assert recipe.epochs == MODULES["supervised"].ORIGINAL["epochs"]
    original_kd = MODULES["kd"].ORIGINAL
    assert (recipe.temperature, recipe.alpha) == (original_kd["temperature"], original_kd["alpha"])
    assert study_command.recipe(study_command.parse_args(["--set", "learning_rate=1e-4"])).learning_rate == 1e-4
    assert study_command.recipe(study_command.parse_args(["--smoke-test"])).learning_rate == 5e-3


# ---------------------------------------------------------------- no silent loss when reading the trials back

def _fake_result(folder: Path, arm: str, seed: int, last: dict) -> SimpleNamespace:
    """What tuning/budget_study/runner.collect_rows reads of a Tune Result."""
    return SimpleNamespace(path=str(folder), filesystem=pyarrow.fs.LocalFileSystem(), metrics=last, error=None,
                           config={"point": {"arm": arm, "seed": seed}, "template": {"budgets": [8, 16]}})


def test_a_trial_whose_reports_cannot_be_read_is_a_counted_gap_not_a_silent_loss(tmp_path):
    """study_run.py returned no rows for a trial on any OSError, so its points vanished from study.csv
    without a word. Now only a trial that never reported has nothing to read; any other failure is a gap
    named with its arm, seed and reason."""
    def folder(name: str, content: str | None = None) -> Path:
        path = tmp_path / name
        path.mkdir()
        if content is not None:
            (path / "result.json").write_text(content, encoding="utf-8")
        return path

    lines = "".join(json.dumps({"arm": "supervised", "budget": b, "training_iteration": i}) + "\n"
                    for i, b in ((1, 8), (2, 16)))
    unreadable = folder("a-folder-where-the-file-should-be")
    (unreadable / "result.json").mkdir()
    results = [
        _fake_result(folder("good", lines), "supervised", 0, {"training_iteration": 2}),
        _fake_result(folder("cut", '{"arm": "supervised", "bud'), "supervised", 1, {"training_iteration": 1}),
        _fake_result(folder("gone"), "kd_all", 0, {"training_iteration": 2}),  # reported, but no result.json
        _fake_result(unreadable, "kd_all", 1, {"training_iteration": 1}),
        _fake_result(folder("pending"), "kd_all", 2, {}),  # never started: nothing to read, nothing lost
    ]
    rows, gaps = runner.collect_rows(results)
    assert [(r["seed"], r["budget"], r["done"]) for r in rows] == [(0, 8, False), (0, 16, True)]
    assert [(gap["arm"], gap["seed"]) for gap in gaps] == [("supervised", 1), ("kd_all", 0), ("kd_all", 1)]
    assert "not JSON" in gaps[0]["error"] and "missing" in gaps[1]["error"]
    assert all(gap["path"].endswith("result.json") for gap in gaps)


def test_a_study_interrupted_before_its_trials_wrote_anything_is_pending_not_a_crash(tmp_path):
    """Ctrl-C seconds after a study started: Tune's results for its trials have no config and an error
    ('Could not fetch metrics ...'); reading them back raised TypeError instead of saying how to resume."""
    never_wrote = SimpleNamespace(path=str(tmp_path), filesystem=pyarrow.fs.LocalFileSystem(), metrics={},
                                  config=None, error=FileNotFoundError("Could not fetch metrics"))
    failed = _fake_result(tmp_path, "kd_all", 1, {})
    failed.error = RuntimeError("a real failure")
    assert runner.collect_rows([never_wrote]) == ([], [])
    assert runner.failed_points([never_wrote, failed]) == {("kd_all", 1)}
