"""tuning/analysis/confirm.py's statistics on predictions worked out by hand: the paired bootstrap over seeds and
test examples (tuning/analysis/bootstrap.py), macro-F1 and per-class recall beside accuracy, and confirm.csv's rows."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.errors import UsageError
from tuning import analyze
from tuning.analysis import confirm
from tuning.analysis.confirm import (
    Confirmed,
    few_seeds_warning,
    macro_f1,
    per_class_recall,
    read_correct,
    read_predictions,
    seed_rows,
    summarise,
    verdict,
)
from tuning.assets import catalog
from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings

COUNTS = {m.LABELS_USED: 96, m.TEACHER_LABELS: 0, m.EXPERT_QUERIES: 0}


def confirmed(method: str, predictions, labels, names=("neg", "pos")) -> Confirmed:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    reports = [{**COUNTS, m.TEST_ACCURACY: float((p == labels).mean()), m.TEST_MACRO_F1: 0.0, m.VAL_ACCURACY: 0.5}
               for p in predictions]
    return Confirmed(method, [1000 + i for i in range(len(predictions))], reports, predictions, labels, names)


LABELS = [0, 0, 1, 1]
SUPERVISED = [[0, 0, 0, 1], [1, 0, 1, 1]]  # 3 of 4 right on each seed


def test_verdict_needs_both_intervals_of_a_difference():
    """The bootstrap over few seeds understates their variation: its interval alone decided, now the t-interval
    over seeds must agree."""
    assert verdict([0.01, 0.05], [0.02, 0.04]) == "better"
    assert verdict([-0.05, -0.01], [-0.04, -0.02]) == "worse"
    assert verdict([0.01, 0.05], [-0.01, 0.07]) == "within noise"  # the bootstrap alone said better
    assert verdict([-0.05, -0.01], [-0.06, 0.01]) == "within noise"
    assert verdict([-0.01, 0.02], [0.01, 0.02]) == "within noise" and verdict([0.0, 0.0], [0.0, 0.0]) == "within noise"
    assert verdict([0.01, 0.05], None) == "no verdict (one seed)"


def test_a_t_interval_over_seeds_stands_beside_the_bootstrap():
    """kd right on every example; supervised 3 of 4 on seed 1000, all 4 on seed 1001 (its second seed made
    right, so the seeds differ): per-seed differences 0.25 and 0, mean 0.125, sd 0.25 / sqrt(2), and
    t(0.975, 1 df) = 12.7062 x 0.125 = 1.5883 either side."""
    runs = {"supervised": confirmed("supervised", [SUPERVISED[0], LABELS], LABELS),
            "kd": confirmed("kd", [LABELS, LABELS], LABELS)}
    kd = summarise(runs, replicates=200)[1]
    assert kd["difference"]["seed_ci"] == pytest.approx([0.125 - 1.58828, 0.125 + 1.58828], abs=1e-4)
    assert kd["verdict"] == "within noise"


def test_few_seeds_are_warned_of_and_the_report_says_what_the_intervals_cover():
    assert few_seeds_warning(3) == ("intervals with 3 seed(s) understate seed-to-seed variation; use --confirm 5 "
                                    "or more")
    assert few_seeds_warning(5) is None
    runs = {"supervised": confirmed("supervised", SUPERVISED, LABELS), "kd": confirmed("kd", [LABELS, LABELS], LABELS)}
    section = analyze.confirmation_section(summarise(runs, replicates=50))
    assert ("**Warning: intervals with 2 seed(s) understate seed-to-seed variation; use --confirm 5 or more.**"
            in section)
    assert "only when BOTH intervals exclude 0" in section
    assert "conditioned on the chosen configurations: the search's own variability" in section
    lines = [line for line in section.splitlines() if line.startswith("- kd against supervised")]
    assert len(lines) == 1 and "(bootstrap), [0.250, 0.250] (t over seeds)" in lines[0]


def test_per_class_recall_and_macro_f1_by_hand():
    run = confirmed("supervised", SUPERVISED, LABELS)
    # seed 0: recall neg 2/2, pos 1/2; seed 1: neg 1/2, pos 2/2 -> 0.75 each on average
    assert per_class_recall(run) == pytest.approx({"neg": 0.75, "pos": 0.75})
    # seed 0: F1 neg = 2 * (2/3 * 1) / (2/3 + 1) = 0.8, pos = 2 * (1 * 1/2) / (3/2) = 2/3; seed 1 mirrored
    assert macro_f1(run) == pytest.approx([(0.8 + 2 / 3) / 2] * 2)


def test_summary_points_and_a_difference_by_hand():
    runs = {"supervised": confirmed("supervised", SUPERVISED, LABELS),
            "kd": confirmed("kd", [LABELS, LABELS], LABELS)}
    rows = {row["method"]: row for row in summarise(runs, replicates=200)}
    assert rows["supervised"][m.TEST_ACCURACY]["mean"] == pytest.approx(0.75)
    assert rows["kd"][m.TEST_ACCURACY]["mean"] == pytest.approx(1.0)
    assert rows["kd"][m.TEST_ACCURACY]["ci"] == pytest.approx([1.0, 1.0])  # right on every example, every seed
    assert rows["kd"]["difference"]["mean"] == pytest.approx(0.25)
    assert rows["supervised"][m.TEST_MACRO_F1] == pytest.approx({"mean": (0.8 + 2 / 3) / 2, "sd": 0.0})
    assert "difference" not in rows["supervised"]
    low, high = rows["supervised"][m.TEST_ACCURACY]["ci"]
    assert 0 <= low <= 0.75 <= high <= 1


def test_identical_methods_differ_by_exactly_zero():
    runs = {"supervised": confirmed("supervised", SUPERVISED, LABELS), "kd": confirmed("kd", SUPERVISED, LABELS)}
    kd = summarise(runs, replicates=200)[1]
    assert kd["difference"] == {"mean": 0.0, "ci": [0.0, 0.0], "seed_ci": [0.0, 0.0]}
    assert kd["verdict"] == "within noise"


def test_the_intervals_count_the_test_set_not_only_the_seeds():
    """Three seeds that agree exactly: a t-interval over seeds has width 0 and called a 2-point
    difference "better". On 500 test examples the test set's own sampling error remains: at accuracy
    0.8 about 1.96 * sqrt(0.8 * 0.2 / 500) = 0.035, and a difference of +0.02 made of 30 examples won and
    20 lost has a standard error of sqrt(50) / 500 = 0.014: within noise."""
    labels = np.zeros(500, dtype=int)
    base = np.ones(500, dtype=int)
    base[:400] = 0  # supervised right on the first 400 (0.8)
    better = base.copy()
    better[400:430] = 0  # kd also right on 30 more ...
    better[:20] = 1  # ... and wrong on 20 supervised got right: 410 (0.82)
    runs = {"supervised": confirmed("supervised", [base] * 3, labels, ("a", "b")),
            "kd": confirmed("kd", [better] * 3, labels, ("a", "b"))}
    supervised, kd = summarise(runs)
    low, high = supervised[m.TEST_ACCURACY]["ci"]
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(0.8 * 0.2 / 500), rel=0.15)
    assert kd["difference"]["mean"] == pytest.approx(0.02)
    assert kd["verdict"] == "within noise"
    width = kd["difference"]["ci"][1] - kd["difference"]["ci"][0]
    assert width / 2 == pytest.approx(1.96 * math.sqrt(50) / 500, rel=0.15)


def test_methods_on_other_test_sets_are_not_paired():
    runs = {"supervised": confirmed("supervised", SUPERVISED, LABELS),
            "kd": confirmed("kd", [[0, 1, 1, 0, 1]] * 2, [0, 1, 1, 1, 1])}
    rows = summarise(runs, replicates=100)
    assert "difference" not in rows[1] and rows[1][m.TEST_ACCURACY]["mean"] == pytest.approx(0.8)


def test_confirm_csv_rows_hold_each_seeds_predictions_and_correctness():
    rows = seed_rows({"supervised": confirmed("supervised", SUPERVISED, LABELS)})
    assert [(r["method"], r["seed"]) for r in rows] == [("supervised", 1000), ("supervised", 1001)]
    assert [r["test_predictions"] for r in rows] == ["'0001", "'1011"]
    assert [r["test_correct"] for r in rows] == ["'1101", "'0111"]
    assert [r[m.TEST_ACCURACY] for r in rows] == [0.75, 0.75]


def test_label_counts_are_every_seeds_not_the_last_ones():
    """The table showed the last seed's counts; an Expert-Loop that stops at different rounds spends differently."""
    run = confirmed("active_loop", SUPERVISED, LABELS)
    run.reports[0][m.LABELS_USED], run.reports[1][m.LABELS_USED] = 100, 80
    row = summarise({"active_loop": run}, replicates=20)[0]
    assert row[m.LABELS_USED] == 90 and row[f"{m.LABELS_USED}_range"] == [80, 100]
    assert row[m.EXPERT_QUERIES] == 0 and f"{m.EXPERT_QUERIES}_range" not in row  # the same on every seed
    assert analyze.count_text(row, m.LABELS_USED) == "90 (80-100)"
    assert analyze.count_text(row, m.EXPERT_QUERIES) == "0"
    assert "| 90 (80-100) | 0 | 0 |" in analyze.confirmation_section([row])


def test_a_missing_baseline_or_method_is_said():
    """No supervised row left the table without differences and nothing said why; a method whose every trial
    errored was simply absent."""
    rows = summarise({"kd": confirmed("kd", SUPERVISED, LABELS)}, replicates=20)
    section = analyze.confirmation_section(rows, ["supervised", "kd", "active_loop", "kd"])
    notes = section.split("**Not compared:**\n")[1].split("\n\n")[0].splitlines()
    unconfirmed = "was swept but not confirmed: none of its trials reported a val_accuracy (see Trials)"
    assert notes == [f"- supervised {unconfirmed}", f"- active_loop {unconfirmed}",
                     "- supervised, the baseline, was not confirmed: no difference against it is shown"]
    both = {"supervised": confirmed("supervised", SUPERVISED, LABELS), "kd": confirmed("kd", SUPERVISED, LABELS)}
    assert "Not compared" not in analyze.confirmation_section(summarise(both, replicates=20), ["supervised", "kd"])


def test_confirm_csv_reads_back_with_pandas_defaults(tmp_path):
    """Digit strings came back from pd.read_csv as integers ("0001" as 1): leading zeros lost, the pairing by
    test example shifted. Written as text, they read back whole, to the same predictions and correctness."""
    run = confirmed("supervised", SUPERVISED, LABELS)
    pd.DataFrame(seed_rows({"supervised": run})).to_csv(tmp_path / "confirm.csv", index=False)
    frame = pd.read_csv(tmp_path / "confirm.csv")
    assert [read_predictions(cell).tolist() for cell in frame["test_predictions"]] == SUPERVISED
    assert [read_correct(cell).tolist() for cell in frame["test_correct"]] == run.correct.tolist()


# ---------------------------------------------------------------- retraining (prepare real, training stood in for)

def smoke_entry(method: str, **config) -> dict:
    """A best_configs.json entry on the smoke data, as best_configs writes it."""
    return {"config": TrialConfig.from_dict({"method": method, **config}).to_dict(),
            "data": DataSettings(**SMOKE_SETTINGS).to_dict()}


def test_an_llm_experts_rows_are_prepared_and_each_method_is_kept_when_done(tmp_path, monkeypatch):
    """--confirm prepared without the expert, so an Expert-Loop with an llm expert failed at its first seed
    ("this run was prepared without it"), after every other method had been retrained, and nothing was kept.
    prepare() runs for real on the smoke data; the model file and the training are stood in for."""
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(catalog, "resolve_llm", lambda name, progress=print: tmp_path / f"{name}.gguf")
    seen = []

    def final_run(trial, prepared):
        seen.append((trial.method, prepared.expert_context, prepared.teachers))
        if trial.method == "active_loop":
            raise RuntimeError("the loop's seed failed")
        test = len(prepared.encoded["test"].labels)
        return {**COUNTS, m.TEST_ACCURACY: 0.5, m.TEST_MACRO_F1: 0.5, m.VAL_ACCURACY: 0.5}, np.zeros(test, int)

    monkeypatch.setattr(confirm, "final_run", final_run)
    kept = []
    best = {"supervised": smoke_entry("supervised"), "active_loop": smoke_entry("active_loop", expert="llm:smollm2")}
    with pytest.raises(RuntimeError, match="the loop's seed failed"):
        confirm.retrain(best, 1, progress=lambda line: None, finished=lambda runs: kept.append(list(runs)))
    (_, supervised_context, _), (_, loop_context, loop_teachers) = seen
    assert supervised_context is None  # supervised reads no expert
    assert loop_context is not None and loop_context.gguf_file == str(tmp_path / "smollm2.gguf")
    assert len(loop_context.examples) > 0 and loop_teachers is None  # an llm expert needs no teachers
    assert kept == [["supervised"]]  # written before the Expert-Loop began


def test_data_that_changed_since_the_sweep_are_refused_before_training(tmp_path):
    """Only the settings were compared: a data file edited since the sweep went unnoticed. The chosen trial's
    checkpoint records the data fingerprint it trained on."""
    checkpoint = tmp_path / "kd" / "student_trial_x" / "checkpoint_000001"
    checkpoint.mkdir(parents=True)
    entry = {**smoke_entry("kd"), "checkpoint": "kd/student_trial_x/checkpoint_000001"}
    (loaded,) = confirm.load_groups({"kd": entry}, tmp_path, progress=lambda line: None).values()
    for fingerprint in (loaded.fingerprint(), "0" * 64):
        (checkpoint / "run_config.json").write_text(json.dumps({"provenance": {"data_fingerprint": fingerprint}}))
        if fingerprint == loaded.fingerprint():
            confirm.load_groups({"kd": entry}, tmp_path, progress=lambda line: None)  # the same data: accepted
            continue
        with pytest.raises(UsageError, match=r"the data of kd's sweep changed since it ran \(data fingerprint "
                                             r"000000000000 in its checkpoint"):
            confirm.load_groups({"kd": entry}, tmp_path, progress=lambda line: None)
