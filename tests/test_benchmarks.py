"""The benchmark's helpers on hand-worked inputs (no timing assertions: timings belong to
benchmarks/results/, not to tests)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from transformers import BertConfig, BertForSequenceClassification

from benchmarks import common, query_cost
from benchmarks.epoch_vs_trainer import _figures as epoch_figures
from benchmarks.epoch_vs_trainer import auto_regret, hf_trainer, trainer_examples
from benchmarks.flops import (
    matmul_flops,
    model_step_flops,
    sequence_flops,
    split_parameters,
    teacher_prep_flops,
    training_step_flops,
)
from benchmarks.memory import descendants, parse_ppid, parse_status
from benchmarks.results import REQUIRED_KEYS, check_targets, cpu_model, markdown, write_results
from benchmarks.step_peak import MATMUL_N
from benchmarks.step_peak import _figures as step_figures
from benchmarks.study_overhead import overhead, point_reports
from benchmarks.teacher_prep import figures
from benchmarks.timing import interleave, interleaved_order, median, ratio
from tests.conftest import ROOT
from trainables.encode import EncodedSplit
from tuning.budget_study import carry


def test_help_runs_without_measuring():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--help"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--with-default-sweep" in done.stdout


def test_training_step_flops_by_hand():
    # 6 * 1000 params * (2 * 4) tokens + 6 * 10 params * 2 sequences + 12 * 1 layer * 4^2 * 8 hidden * 2
    assert training_step_flops(1000, 10, layers=1, hidden=8, batch=2, seq=4) == 48_000 + 120 + 3_072


def test_matmul_flops_by_hand():
    assert matmul_flops(3) == 54  # 9 outputs, 3 multiplies and 3 adds each
    assert matmul_flops(2048) == 17_179_869_184


def test_split_parameters_by_name():
    sizes = {"bert.embeddings.word_embeddings.weight": 100, "bert.embeddings.LayerNorm.weight": 4,
             "bert.encoder.layer.0.attention.self.query.weight": 16, "bert.encoder.layer.0.output.dense.bias": 4,
             "bert.pooler.dense.weight": 16, "classifier.weight": 8, "classifier.bias": 2}
    assert split_parameters(sizes) == {"embedding": 104, "per_token": 20, "per_sequence": 26}


def test_model_step_flops_on_a_tiny_bert():
    config = BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=3)
    flops, counts = model_step_flops(BertForSequenceClassification(config), batch=2, seq=4)
    # Per layer: 4h^2 + 4h (Q, K, V, output) + 2hi + i + h (feed-forward) + 4h (two LayerNorms) = 600 for h=8, i=16.
    # Pooler h^2 + h = 72, classifier 3h + 3 = 27. Embeddings (10 + 16 + 2) * 8 + 2 * 8 = 240.
    assert counts == {"embedding": 240, "per_token": 1200, "per_sequence": 99}
    assert flops == 6 * 1200 * 8 + 6 * 99 * 2 + 12 * 2 * 4**2 * 8 * 2


def test_targets_at_and_beside_their_bounds():
    status = check_targets({"step_peak_fraction_fp32": 0.60, "step_peak_fraction_bf16": 0.59,
                            "accuracy_delta_vs_trainer": -0.01, "epoch_time_ratio_vs_trainer": 0.61,
                            "ray_overhead_seconds_per_trial": 3.0, "kd_cache_time_ratio": None,
                            "concurrency_throughput_ratio": float("nan")})
    assert status["step_peak_fraction_fp32"] == "met"
    assert status["step_peak_fraction_bf16"] == "missed"
    assert status["accuracy_delta_vs_trainer"] == "met"
    assert status["epoch_time_ratio_vs_trainer"] == "missed"
    assert status["ray_overhead_seconds_per_trial"] == "missed"  # the bound is strict: < 3 s
    assert status["kd_cache_time_ratio"] == "not measured"
    assert status["concurrency_throughput_ratio"] == "not measured"


def test_write_results_round_trip(tmp_path):
    results = {"date": "2026-01-01", "mode": "quick", "machine": {"cpu_model": "Test CPU", "cores": 2},
               **dict.fromkeys(REQUIRED_KEYS), "kd_cache_time_ratio": 0.25, "bf16_meets_default_rule": False,
               "raw": {"kd": {"seconds": {"cached": [1.0], "per_batch": [4.0]}}}, "notes": ["a note"]}
    json_path, md_path = write_results(results, tmp_path / "out")
    stored = json.loads(json_path.read_text())
    assert stored["kd_cache_time_ratio"] == 0.25
    assert stored["targets"]["kd_cache_time_ratio"] == "met"
    assert stored["raw"]["kd"]["seconds"]["per_batch"] == [4.0]
    text = md_path.read_text()
    assert "| `kd_cache_time_ratio` | 0.25 | KD with cached logits <= 0.5 x without | met |" in text
    assert "| `bf16_meets_default_rule` | false |" in text
    assert all(f"`{key}`" in text for key in REQUIRED_KEYS)
    assert "- a note" in text and "Test CPU" in text
    assert markdown(stored) == text


def test_cpu_model_from_cpuinfo():
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t: fpu\n") == "AMD EPYC 9B14"
    assert cpu_model("processor\t: 0\n") == "unknown"


def test_interleaving_and_ratios():
    assert interleaved_order(["a", "b"], 3) == ["a", "b", "b", "a", "a", "b"]
    calls = []
    seconds = interleave({"a": lambda r: calls.append(("a", r)) or 1.0 + r,
                          "b": lambda r: calls.append(("b", r)) or 10.0}, repeat=2)
    assert calls == [("a", 0), ("b", 0), ("b", 1), ("a", 1)]
    assert seconds == {"a": [1.0, 2.0], "b": [10.0, 10.0]}
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([]) is None
    assert ratio(1.0, 4.0) == 0.25 and ratio(None, 1.0) is None and ratio(1.0, 0.0) is None


def test_proc_parsing():
    status = "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
    assert parse_status(status) == {"VmRSS": 1024, "VmHWM": 2048}
    assert parse_status("Name:\tkthreadd\n") == {"VmRSS": 0, "VmHWM": 0}
    assert parse_ppid("4242 (ray::Implicit) Func)) S 17 4242 1 0") == 17
    assert descendants(1, {2: 1, 3: 2, 4: 9, 5: 3}) == {1, 2, 3, 5}


@pytest.mark.parametrize("value", [0.0, 1])
def test_zero_and_integer_figures_are_written(tmp_path, value):
    json_path, _ = write_results({"peak_rss_mb_sweep": value}, tmp_path)
    assert json.loads(json_path.read_text())["peak_rss_mb_sweep"] == value


def test_epoch_figures_pair_the_defaults_and_each_precision():
    def runs(seconds, accuracies):
        return [{"seed": seed, "seconds": seconds, "accuracy": a} for seed, a in enumerate(accuracies)]

    records = {"ours_fp32": runs(30.0, [0.57, 0.58]), "trainer_fp32": runs(32.0, [0.55, 0.59]),
               "ours_bf16": runs(20.0, [0.56, 0.59]), "trainer_bf16": runs(25.0, [0.56, 0.57])}
    figures = epoch_figures(records, ours_default="ours_bf16")
    assert figures["epoch_time_ratio_vs_trainer"] == pytest.approx(20 / 32)  # our bf16 against Trainer's fp32
    assert figures["accuracy_delta_vs_trainer"] == pytest.approx(0.005)  # (0.01 + 0.0) / 2
    assert figures["epoch_time_ratio_vs_trainer_fp32"] == pytest.approx(30 / 32)
    assert figures["epoch_time_ratio_vs_trainer_bf16"] == pytest.approx(20 / 25)
    assert figures["accuracy_delta_vs_trainer_fp32"] == pytest.approx(0.005)
    assert figures["accuracy_delta_vs_trainer_bf16"] == pytest.approx(0.01)  # (0.0 + 0.02) / 2
    assert figures["bf16_accuracy_delta"] == pytest.approx(0.0) and figures["bf16_meets_default_rule"]
    assert figures["bf16_epoch_speedup"] == pytest.approx(1.5)
    assert epoch_figures(records, ours_default="ours_fp32")["epoch_time_ratio_vs_trainer"] == pytest.approx(30 / 32)
    without_trainer = epoch_figures({**records, "trainer_fp32": [], "trainer_bf16": []})
    assert without_trainer["epoch_time_ratio_vs_trainer"] is None


def test_trainer_sees_exactly_the_token_ids_our_loop_trains_on(tiny_bert_task):
    _, encoded, _ = tiny_bert_task
    split = encoded["train"]
    examples = trainer_examples(split)
    assert len(examples) == len(split)
    for index in (0, len(split) // 2, len(split) - 1):
        padded = split.batch([index])  # one example: no padding, so it is the example itself
        assert examples[index]["input_ids"] == padded["input_ids"][0].tolist()
        assert examples[index]["labels"] == int(split.labels[index])
        assert set(examples[index]) == {*split.features, "labels"}


@pytest.mark.parametrize("bf16", [False, True])
def test_the_trainer_side_runs_with_the_installed_transformers(tiny_bert_task, bf16):
    # Guards section 2 against API drift (TrainingArguments, accelerate): `make test`'s set-up installs
    # accelerate, so a fresh clone runs the whole benchmark.

    blueprint, encoded, num_labels = tiny_bert_task
    record = hf_trainer(blueprint, encoded, num_labels, seed=0, bf16=bf16)
    assert record["seconds"] > 0 and 0.0 <= record["accuracy"] <= 1.0
    assert record["optimizer"] == "OptimizerNames.ADAMW_TORCH_FUSED"  # the same fused AdamW as our loop


# ---------------------------------------------------------------- teacher preparation, precision, study


def test_sequence_flops_by_hand():
    # training (passes 3): 6 * (10 * (2 + 3) + 1 * 2) + 12 * 1 layer * (4 + 9) * 4 hidden = 312 + 624
    assert sequence_flops(10, 1, layers=1, hidden=4, lengths=[2, 3], passes=3) == 312 + 624
    # forward only (passes 1): a third of it
    assert sequence_flops(10, 1, layers=1, hidden=4, lengths=[2, 3], passes=1) == (312 + 624) // 3
    # the same count as a training step of equal-length sequences (section 1's formula)
    assert sequence_flops(1000, 10, 1, 8, [4, 4], 3) == training_step_flops(1000, 10, 1, 8, batch=2, seq=4)


def test_teacher_prep_flops_on_a_tiny_bert():
    config = BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=3)
    # per-token 1200, per-sequence 99 (test_model_step_flops_on_a_tiny_bert); 2 epochs on lengths 4 and 2,
    # logits on lengths 4, 2 and 3.
    train = 2 * (6 * 1200 * 6 + 6 * 99 * 2 + 12 * 2 * (16 + 4) * 8)
    logits = 2 * 1200 * 9 + 2 * 99 * 3 + 4 * 2 * (16 + 4 + 9) * 8
    assert teacher_prep_flops(BertForSequenceClassification(config), [4, 2], 2, [4, 2, 3]) == train + logits


def test_teacher_prep_figures_by_hand():
    # peak = 2 * 2048^3 / 0.1 s; 40 s on Ray, 60 s in process
    peak = matmul_flops(MATMUL_N) / 0.1
    result = figures({"ray_tasks": [40.0, 50.0, 30.0], "in_process": [60.0], "matmul": [0.1, 0.1]}, int(peak * 10))
    assert result["teacher_prep_seconds"] == 40.0
    assert result["teacher_prep_peak_fraction"] == pytest.approx(10 / 40)
    assert result["teacher_prep_peak_fraction_in_process"] == pytest.approx(10 / 60)
    assert result["teacher_parallel_speedup"] == pytest.approx(1.5)


def test_precision_auto_regret_by_hand():
    assert auto_regret({"ours_fp32": 30.0, "ours_bf16": 20.0}, "ours_bf16") == 0.0
    assert auto_regret({"ours_fp32": 30.0, "ours_bf16": 20.0}, "ours_fp32") == pytest.approx(0.5)
    assert auto_regret({"ours_fp32": 30.0}, "ours_fp32") is None  # bf16 not run


def test_epoch_figures_without_bf16_runs_are_null():
    runs = [{"seed": 0, "seconds": 30.0, "accuracy": 0.5}]
    figures = epoch_figures({"ours_fp32": runs, "trainer_fp32": runs, "ours_bf16": [], "trainer_bf16": []},
                       ours_default="ours_fp32")
    assert figures["epoch_time_ratio_vs_trainer"] == 1.0
    assert figures["bf16_epoch_speedup"] is None and figures["precision_auto_regret"] is None


def test_step_figures_without_bf16_runs_are_null():
    seconds = {"step_fp32": [2.0], "matmul_fp32": [0.5], "step_fp32_1thread": [3.0], "matmul_fp32_1thread": [1.0]}
    figures = step_figures(seconds, step_flops=matmul_flops(MATMUL_N))
    assert figures["step_peak_fraction_fp32"] == pytest.approx(0.25)  # same FLOPs, 4 x the time
    assert figures["step_peak_fraction_bf16"] is None and figures["step_bf16_speedup"] is None
    assert figures["step_two_thread_speedup"] == pytest.approx(1.5)


def test_a_null_with_a_reason_is_not_applicable_never_missed(tmp_path):
    results = {**dict.fromkeys(REQUIRED_KEYS), "cpu_native_bf16": False, "precision_auto_choice": "fp32",
               "null_reasons": {"precision_auto_regret": "no native bfloat16"}, "teacher_prep_peak_fraction": 0.4}
    status = check_targets(results)
    assert status["precision_auto_regret"] == "not applicable: no native bfloat16"
    assert status["step_peak_fraction_bf16"] == "not measured"
    assert status["teacher_prep_peak_fraction"] == "missed"
    json_path, md_path = write_results(results, tmp_path)
    assert json.loads(json_path.read_text())["precision_auto_choice"] == "fp32"
    assert "native bfloat16 false" in md_path.read_text()


def test_study_overhead_from_reports(tmp_path):
    for trial, lines in (("t1", [{"train_seconds": 30.0, "time_this_iter_s": 40.0}]),
                         ("t2", [{"train_seconds": 20.0, "time_this_iter_s": 25.0},
                                 {"train_seconds": 25.0, "time_this_iter_s": 30.0}])):
        (tmp_path / trial).mkdir()
        (tmp_path / trial / "result.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    reports = point_reports(tmp_path)
    assert len(reports) == 3
    # 2 slots x 50 s = 100 s of capacity; 75 s training, 95 s inside trials
    # 3 points in 50 s: 216 an hour
    assert overhead(reports, 50.0, 2) == pytest.approx({"study_quick_seconds": 50.0, "study_overhead_fraction": 0.25,
                                                        "study_in_trial_fraction": 0.95, "study_points_per_hour": 216})
    assert overhead(reports, 100.0, 2, full=True) == pytest.approx({"study_full_seconds": 100.0,
                                                                    "study_full_points_per_hour": 108})


def test_full_length_batch_packs_short_rows_end_to_end(monkeypatch):
    monkeypatch.setattr(common, "MAX_LENGTH", 4)
    # three rows of 3, 2 and 5 tokens: packed, rows (1,2,3,4) and (6,7,8,9) are cut at 4 tokens each
    short = EncodedSplit(features={"input_ids": np.arange(1, 11, dtype=np.int32)},
                         offsets=np.array([0, 3, 5, 10]), labels=np.array([2, 0, 1]), num_choices=1, pad_token_id=0)
    packed = common.full_length_batch(short, 2)
    assert packed.features["input_ids"].tolist() == [1, 2, 3, 4, 6, 7, 8, 9]
    assert packed.lengths().tolist() == [4, 4] and packed.labels.tolist() == [2, 0]
    batch = packed.batch(np.arange(2))
    assert batch["attention_mask"].sum().item() == 8  # no padding: the step's FLOP count is exact
    with pytest.raises(RuntimeError, match="packs into 2 rows of 4 tokens; 3 needed"):
        common.full_length_batch(short, 3)


def test_query_cost_state_and_table():
    state = query_cost.loop_state(1000)
    assert (len(state.labelled), len(state.queried), len(state.pool)) == (100, 50, 850)
    assert sorted(state.labelled + state.queried + state.pool) == list(range(1000))
    results = {"repeat": 2, "plain_pass_seconds": 2.0, "ratio_to_plain_pass": {"bald": 11.0},
               "seconds": {"plain_pass": [1.0, 3.0], "bald": [20.0, 24.0]}}
    assert query_cost.markdown(results).splitlines()[2:] == ["| plain pass over the pool | 2.00 | 1.00 |",
                                                             "| `bald` | 22.00 | 11.00 |"]


def test_a_full_study_run_over_several_sessions_is_timed_from_its_logged_runs(tmp_path):
    """Its wall time is the sum of the runs study.py logged (a start and two --resume: 100 + 200.5 + 59.5 s);
    3 points in 360 s are 30 an hour."""
    from benchmarks.study_overhead import logged  # noqa: PLC0415

    runs = [{"seconds": 100.0, "trials_ended": 0}, {"seconds": 200.5, "trials_ended": 1},
            {"seconds": 59.5, "trials_ended": 2}]
    plan = {"arms": ["supervised", "expert:margin"], "seeds": [0]}
    (tmp_path / "study.json").write_text(json.dumps({"plan": plan, "runs": runs[:2]}))
    figures, raw = logged(tmp_path, 2)  # 1 of 2 trials ended: 300.5 s would pass for the whole study's time
    assert figures == {} and raw["error"].endswith("is not finished: 1 of 2 trials ended (resume it first)")
    (tmp_path / "study.json").write_text(json.dumps({"plan": plan, "runs": runs}))
    for trial, points in (("t1", 2), ("t2", 1)):
        (tmp_path / trial).mkdir()
        (tmp_path / trial / "result.json").write_text("".join(json.dumps({"budget": b}) + "\n" for b in range(points)))
    figures, raw = logged(tmp_path, 2)
    assert figures == pytest.approx({"study_full_seconds": 360.0, "study_full_points_per_hour": 30.0})
    assert raw["points"] == 3 and raw["runs"] == runs
    figures, raw = logged(tmp_path / "nowhere", 2)
    assert figures == {} and "is not a study folder with logged runs" in raw["error"]
    # carried from another machine: its points are in the ledger, only the last machine's in trial folders
    carry.write_points(tmp_path, [{"arm": "supervised", "seed": 0, "budget": b} for b in (8, 16, 24, 32)])
    figures, raw = logged(tmp_path, 2)
    assert raw["points"] == 4 and figures["study_full_points_per_hour"] == pytest.approx(40.0)
