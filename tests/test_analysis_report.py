"""tuning/analysis/results.py and tuning/analyze.py on experiments built in memory (no Ray, no training): the
choices and the report's wording, checked against values worked out by hand."""

import json
import re
from itertools import combinations
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from trainables import metrics as m
from trainables.errors import UsageError
from tuning import analyze, cli
from tuning.analysis import plots as analysis_plots
from tuning.analysis import results as a

SPACE = {"method": "kd", "learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
         "batch_size": {"type": "choice", "values": [8, 16]}, "epochs": 4}
DATA = {"dataset": "smoke", "split_seed": 0, "student": "tiny-bert", "teachers": ["tiny-bert"]}


def trial(trial_id: str, val: float, epoch: int = 4, status: str = a.COMPLETED, method: str = "kd",
          experiment: str = "/storage/run/kd", **config) -> a.TrialRecord:
    last = {m.VAL_ACCURACY: val, m.TEST_ACCURACY: val - 0.1, m.TEST_MACRO_F1: val - 0.2, m.EPOCH: epoch,
            "training_iteration": epoch, m.LABELS_USED: 96, m.TEACHER_LABELS: 96, m.EXPERT_QUERIES: 96}
    return a.TrialRecord(method, trial_id, status, {"method": method, "learning_rate": 1e-3, "batch_size": 8,
                                                    "epochs": 4, **config}, last, pd.DataFrame(), None, experiment)


def experiment(trials, path="/storage/run/kd", method="kd", sweep=None, data=None) -> a.Experiment:
    record = {"sweep": {"method": method, "sampler": "tpe", "num_samples": len(trials), "startup_trials": 3,
                        **(sweep or {})}, "space": SPACE, "data": data or DATA}
    return a.Experiment(Path(path), method, record, list(trials))


def test_report_says_which_search_each_sweep_was():
    guided = experiment([trial("a", 0.5)], sweep={"num_samples": 8, "startup_trials": 3})
    old = experiment([trial("b", 0.5, experiment="/storage/old")], path="/storage/old",
                     sweep={"num_samples": 8, "startup_trials": None})
    head = analyze.report_sections([guided, old], {}, None, {})[0]
    lines = [line for line in head.splitlines() if line.startswith("- `")]
    assert "search: TPE: random proposals until 3 of 8" in lines[0]
    assert "search: random search in effect" in lines[1]


def test_report_prints_no_importances_from_four_trials():
    four = experiment([trial(f"t{i}", 0.5 + i / 10, learning_rate=10 ** -(2 + i / 2), batch_size=8 * (1 + i % 2))
                       for i in range(4)])
    section = analyze.importance_section([four])
    assert "| setting | importance |" not in section
    assert "4 completed trial(s) over 2 searched setting(s); fANOVA needs at least 10" in section


# ---------------------------------------------------------------- trial states

def test_a_trial_its_own_stopping_rule_ended_completed():
    """An Expert-Loop trial with a `stop` criterion reports stopped = 1 after its last round: it ran its plan, even
    short of max_iterations, and was counted as stopped by ASHA, with --scheduler none too."""
    loop = {"max_iterations": 5, "stop": "stable_predictions"}
    own_end = {m.ROUND: 2, "pool_left": 9, m.STOPPED: 1}
    assert a.classify("TERMINATED", "active_loop", loop, own_end, errored=False) == a.COMPLETED
    asha = {m.ROUND: 2, "pool_left": 9, m.STOPPED: 0}  # the criterion was checked and said go on: ASHA ended it
    assert a.classify("TERMINATED", "active_loop", loop, asha, errored=False) == a.STOPPED
    assert a.classify("RUNNING", "active_loop", loop, own_end, errored=False) == a.UNFINISHED
    section = analyze.trials_section([experiment([], method="active_loop")])
    assert "own stopping rule, `stop`, ended ran its plan: `completed`" in section


# ---------------------------------------------------------------- choosing the best trial

def test_a_trial_stopped_early_competes_only_when_none_completed():
    """A trial ASHA stopped at epoch 2 of 4 is scored mid-schedule: it won on that score, ahead of trials that ran
    the plan train.py repeats. Now it is chosen only when no trial of the method completed, and that is said."""
    stopped = trial("stopped", 0.9, epoch=2, status=a.STOPPED)
    unfinished = trial("unfinished", 0.95, epoch=1, status=a.UNFINISHED)
    finished = trial("finished", 0.7)
    assert a.best_trial([stopped, unfinished, finished, trial("worse", 0.6)]) is finished
    assert a.best_trial([stopped, unfinished]) is unfinished  # none completed: the best of the rest
    assert a.best_trial([trial("errored", 0.99, status=a.ERRORED), stopped]) is stopped
    kd = experiment([stopped, unfinished])
    best = a.best_configs([kd])["methods"]
    (note,) = a.chosen_early(best)
    assert note.startswith("kd: no trial ran its whole plan") and "(unfinished)" in note
    assert f"**{note}.**" in analyze.best_section([kd], best)
    assert a.chosen_early(a.best_configs([experiment([stopped, finished])])["methods"]) == []


def test_a_loop_trial_stopped_at_round_0_neither_wins_nor_describes_a_strategy():
    """Round 0 trains on the initial gold pool alone: a trial ASHA stopped there asked no expert, yet such a trial
    beat a completed one, and stood in the strategy table for a strategy it never used."""
    def loop(trial_id, val, rounds, status, strategy):
        record = trial(trial_id, val, status=status, method="active_loop", experiment="/s/l", strategy=strategy,
                       max_iterations=3)
        record.last[m.ROUND] = rounds
        return record

    trials = [loop("round0", 0.8, 0, a.STOPPED, "badge"), loop("done", 0.6, 3, a.COMPLETED, "margin"),
              loop("round1", 0.7, 1, a.STOPPED, "margin")]
    assert a.best_trial(trials).trial_id == "done"
    section = analyze.expert_loop_section([experiment(trials, path="/s/l", method="active_loop")])
    strategies = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")][1:]
    assert strategies == ["margin"] and "| margin | 2 |" in section
    assert "Left out: 1 trial(s) stopped at round 0, which asked no expert." in section


def test_best_configs_say_what_the_trial_ran_and_where_its_checkpoint_is():
    stopped = trial("stopped", 0.9, epoch=2, status=a.STOPPED)
    stopped.checkpoint = "/storage/run/kd/student_trial_stopped/checkpoint_000001"
    kd = experiment([stopped, trial("errored", 0.95, status=a.ERRORED)])  # no trial completed: the stopped one
    kd.root = Path("/storage")
    loop_trial = trial("loop", 0.7, status=a.STOPPED, method="active_loop", experiment="/storage/run/active_loop",
                       max_iterations=3)
    loop_trial.last[m.ROUND] = 1
    loop = experiment([loop_trial], path="/storage/run/active_loop", method="active_loop")
    loop.root = Path("/storage")
    best = a.best_configs([kd, loop], "ray_results")
    assert best["storage_path"] == "ray_results"
    entry = best["methods"]["kd"]
    assert entry["trial_id"] == "stopped"
    assert entry["ran"] == {"epochs": 2, "planned": 4, "status": a.STOPPED}
    assert entry["checkpoint"] == "run/kd/student_trial_stopped/checkpoint_000001"
    assert entry["experiment"] == "run/kd"
    assert entry["test_macro_f1"] == pytest.approx(0.7)
    assert best["methods"]["active_loop"]["ran"] == {"rounds": 1, "planned": 3, "status": a.STOPPED}
    assert analyze.ran_text(entry["ran"]) == "2/4 epochs (stopped)"


def counted(method: str, labels_used: int, teacher_labels: int) -> a.TrialRecord:
    record = trial("t", 0.5, method=method, experiment="/storage/run/kd")
    record.last.update({m.LABELS_USED: labels_used, m.TEACHER_LABELS: teacher_labels, m.VALIDATION_LABELS: 500,
                        m.TEACHER_LABELLED_ROWS: 4006})
    return record


def test_gold_labels_count_the_validation_split_and_each_training_label_once():
    """Worked out by hand from trainables/metrics.py's definitions, on 4,006 training rows and 500 validation rows."""
    whole, half = {"teacher_split": 0.0}, {"teacher_split": 0.5}
    assert a.gold_labels(counted("supervised", 4006, 0), whole) == 4506
    assert a.gold_labels(counted("kd", 4006, 4006), whole) == 4506  # the same rows' labels, read by both
    assert a.gold_labels(counted("kd", 4006, 2003), half) == 4506  # kd's student reads the teachers' half too
    assert a.gold_labels(counted("kd", 0, 2003), half) == 2503  # alpha 1: only the teachers read gold labels
    assert a.gold_labels(counted("active_loop", 169, 4006), whole) == 4506  # the teachers learned the pool's rows
    assert a.gold_labels(counted("active_loop", 169, 2003), half) == 2672  # the pool excludes the teachers' half
    assert a.gold_labels(counted("active_loop", 169, 0), {}) == 669  # teachers given as checkpoints, or an llm
    older = trial("t", 0.5)  # reported before validation_labels existed
    assert a.gold_labels(older, whole) is None


def test_validation_labels_and_teacher_labelled_rows_are_in_every_table(tmp_path):
    """A bar saying "gold 169" hid the 4,006 labels the teachers learned and the 500 validation labels that chose
    the configuration: both are carried wherever labels_used is, with their sum."""
    loop = experiment([counted("active_loop", 169, 4006)], path="/storage/run/kd", method="active_loop",
                      data={**DATA, "teacher_split": 0.0})
    best = a.best_configs([loop])["methods"]
    entry = best["active_loop"]
    assert (entry["validation_labels"], entry["teacher_labelled_rows"], entry["gold_labels"]) == (500, 4006, 4506)
    row = a.results_frame([loop]).iloc[0]
    assert (row[m.VALIDATION_LABELS], row[m.TEACHER_LABELLED_ROWS], row["gold_labels"]) == (500, 4006, 4506)
    section = analyze.best_section([loop], best)
    header, cells = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ")]
    shown = dict(zip([h.strip() for h in header], [c.strip() for c in cells], strict=True))
    assert shown[analyze.GOLD_HEADER] == "4506" and shown["validation_labels"] == "500"
    assert shown["teacher_labelled_rows"] == "4006" and shown["labels_used"] == "169"
    assert "`validation_labels` (they chose the settings) plus" in section  # what the column sums
    assert analyze.bar_label("active_loop", entry).startswith("active_loop\ngold 4506 in all\n(student 169, "
                                                              "teachers 4006, validation 500)")


def test_report_says_when_the_teachers_labelled_rows_they_learned():
    """The default sweep fine-tunes the teachers on every training row, the pool's too: the Expert-Loop's expert
    then labels rows it was trained on, which the report said nowhere."""
    def loop(name, teacher_labels=4006, space=None, **data):
        record = counted("active_loop", 169, teacher_labels)
        found = experiment([record], path=f"/storage/{name}", method="active_loop", data={**DATA, **data})
        found.record["space"] = {**SPACE, **(space or {})}
        return found

    def warned(*experiments):
        head = analyze.report_sections(list(experiments), {}, None, {})[0]
        return [line for line in head.splitlines() if line.startswith("**Experts trained on the rows they label")]

    (line,) = warned(loop("default", teacher_split=0.0))
    assert "in `/storage/default` the teachers" in line and "(4006 gold labels, `teacher_split` 0)" in line
    assert "partly an oracle" in line and "`--teacher-split 0.5`" in line
    assert len(warned(loop("old"))) == 1  # a sweep.json from before teacher_split was recorded: the whole split
    assert warned(loop("apart", teacher_split=0.5)) == []
    assert warned(loop("checkpoints", teacher_labels=0, teacher_split=0.0)) == []  # the teachers learned nothing
    assert warned(loop("oracle", space={"expert": "oracle"}, teacher_split=0.0)) == []  # gold labels: no teachers
    assert warned(experiment([counted("kd", 4006, 4006)], data={**DATA, "teacher_split": 0.0})) == []


# ---------------------------------------------------------------- finding experiments

def write_sweep(folder: Path, method: str = "kd", space: dict | None = None, **data) -> Path:
    folder.mkdir(parents=True)
    record = {"sweep": {"method": method, "sampler": "tpe", "num_samples": 8, "startup_trials": 3},
              "space": {**SPACE, **(space or {})}, "data": {**DATA, **data}}
    (folder / "sweep.json").write_text(json.dumps(record))
    return folder


def test_experiments_are_found_at_any_depth(tmp_path):
    """A storage folder holding a `--method all` sweep has its experiments two levels down."""
    nested = [write_sweep(tmp_path / "all" / method, method) for method in ("kd", "supervised")]
    single = write_sweep(tmp_path / "one")
    (single / "student_trial_x").mkdir()  # a trial folder: never searched for experiments
    found = a.find_experiments([str(tmp_path)], "unused")
    assert found == [nested[0].resolve(), nested[1].resolve(), single.resolve()]
    assert a.find_experiments([], str(tmp_path)) == found
    assert a.find_experiments([str(tmp_path / "all")], "unused") == found[:2]


def test_report_names_folders_relative_to_the_storage_path(tmp_path):
    folders = [write_sweep(tmp_path / "all" / "kd").resolve(), write_sweep(tmp_path / "one").resolve()]
    root = a.storage_root(folders, str(tmp_path))
    assert root == tmp_path.resolve()
    experiments = a.read_all(folders, root)
    head = analyze.report_sections(experiments, {}, None, {}, str(tmp_path))[0]
    assert "- `all/kd` (kd" in head and "- `one` (kd" in head
    assert str(tmp_path.resolve()) + "/" not in head  # no absolute experiment folder
    # experiments outside --storage-path: relative to their closest common folder
    assert a.storage_root(folders, str(tmp_path / "elsewhere")) == tmp_path.resolve()


# ---------------------------------------------------------------- mixed settings

def test_differences_in_data_split_student_or_teachers_are_named(tmp_path):
    base = write_sweep(tmp_path / "a")
    other_split = write_sweep(tmp_path / "b", split_seed=1)
    other_teachers = write_sweep(tmp_path / "c", teachers=["tiny-bert-2"])
    supervised = write_sweep(tmp_path / "d", "supervised", teachers=["other"], cpus_per_trial=4)
    read = lambda *folders: a.read_all(list(folders), tmp_path)  # noqa: E731
    assert a.setting_differences(read(base, supervised)) == []  # supervised uses no teachers; cpus are speed
    assert a.setting_differences(read(base, other_split)) == ["split_seed 0 (a), 1 (b)"]
    assert a.setting_differences(read(base, other_teachers)) == ['teachers ["tiny-bert"] (a), ["tiny-bert-2"] (c)']


def test_mixed_experiments_are_refused_in_one_line_unless_allowed(tmp_path, capsys):
    folders = [str(write_sweep(tmp_path / "a")), str(write_sweep(tmp_path / "b", student="minilm-l3"))]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:
        cli.main_guard(lambda: analyze.main([*folders, "--out", str(out)]))
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(err) == 1
    assert 'student "tiny-bert" (a), "minilm-l3" (b)' in err[0] and "--allow-mixed" in err[0]
    assert not out.exists()  # nothing written
    assert analyze.main([*folders, "--out", str(out), "--allow-mixed"]) == 0
    report = (out / "report.md").read_text()
    assert '**Mixed settings (--allow-mixed):** these experiments differ in student "tiny-bert" (a)' in report


def test_expert_loop_sweeps_with_different_experts_are_not_pooled(tmp_path):
    """A teachers-expert sweep and an `--expert oracle` sweep were pooled into one active_loop: its best trial,
    strategy table and learning curves mixed gold labels with the teachers' guesses. The expert is compared like
    the data; a sweep without --expert stored none in its space and had the teachers."""
    teachers = write_sweep(tmp_path / "teachers", "active_loop")
    named = write_sweep(tmp_path / "named", "active_loop", space={"expert": "teachers"})
    oracle = write_sweep(tmp_path / "oracle", "active_loop", space={"expert": "oracle"})
    kd = write_sweep(tmp_path / "kd", space={"expert": "oracle"})  # kd asks no expert: its space entry is moot
    endpoint = {"expert": "openai", "expert_url": "http://127.0.0.1:8080/v1"}
    models = [write_sweep(tmp_path / name, "active_loop", space={**endpoint, "expert_model": name})
              for name in ("qwen", "llama")]
    read = lambda *folders: a.read_all(list(folders), tmp_path)  # noqa: E731
    assert a.setting_differences(read(teachers, named, kd)) == []
    assert a.setting_differences(read(teachers, oracle)) == ['expert "teachers" (teachers), "oracle" (oracle)']
    assert a.setting_differences(read(*models)) == ['expert_model "qwen" (qwen), "llama" (llama)']
    with pytest.raises(UsageError, match='expert "teachers" .*--allow-mixed'):
        analyze.main([str(teachers), str(oracle), "--out", str(tmp_path / "out")])


# ---------------------------------------------------------------- the Expert-Loop table (issue 12)

def test_strategy_table_says_it_mixes_budgets_and_points_to_the_study():
    loop = experiment([trial("a", 0.6, method="active_loop", experiment="/s/l", strategy="margin",
                             max_iterations=1),
                       trial("b", 0.7, method="active_loop", experiment="/s/l", strategy="random",
                             max_iterations=1)], path="/s/l", method="active_loop")
    section = analyze.expert_loop_section([loop])
    assert "(not a comparison of strategies)" in section.splitlines()[0]
    assert "mixes budgets" in section and "`python tuning/study.py`" in section
    assert "(baseline)" not in section  # nothing here is a baseline to beat


def test_comparison_plot_accepts_an_interval_that_misses_its_estimate(tmp_path):
    """A percentile bootstrap interval need not contain the estimate on tiny data (24 test examples, 2 seeds
    in the smoke test): matplotlib refused the negative error bar and analyze --confirm crashed."""
    path = analysis_plots.plot_comparison([("kd", 0.50, [0.52, 0.60]), ("supervised", 0.5, None)], "t",
                                          tmp_path / "c.png")
    assert path.stat().st_size > 1000


# ---------------------------------------------------------------- Optuna's plots of the stored study (issue 15)

LEARNING_RATES = [1e-4, 2e-4, 4e-4, 7e-4, 1e-3, 2e-3, 3e-3, 5e-3, 7e-3, 1e-2]


def stored_study(folder: Path, name: str, rows: list[tuple[float, int, float]], low=1e-4, high=1e-2):
    """A journal as the sweep's searcher writes it (tuning/sweep/search.py): rows of (learning_rate, batch_size,
    val_accuracy), each a completed trial."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(folder / "optuna_journal.log")))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    distributions = {"learning_rate": FloatDistribution(low, high, log=True),
                     "batch_size": CategoricalDistribution([8, 16])}
    for lr, batch, value in rows:
        study.add_trial(optuna.trial.create_trial(params={"learning_rate": lr, "batch_size": batch},
                                                  distributions=distributions, value=value))
    return study


def test_importance_table_and_plots_come_from_the_stored_study(tmp_path):
    """The trials' records say accuracy follows the learning rate; the stored study says it follows the batch
    size. The table follows the stored study, and the slice and importance plots are drawn from it."""
    folder = write_sweep(tmp_path / "run")
    records = [trial(f"t{i}", 0.4 + i / 20, experiment=str(folder), learning_rate=lr, batch_size=8 * (1 + i % 2))
               for i, lr in enumerate(LEARNING_RATES)]
    stored_study(folder, "run", [(lr, 8 * (1 + i % 2), 0.5 + 0.3 * (i % 2)) for i, lr in enumerate(LEARNING_RATES)])
    run = experiment(records, path=folder)
    from_records = a.param_importances(SPACE, records)
    assert from_records["learning_rate"] > from_records["batch_size"]
    section = analyze.importance_section([run])
    assert "From the study in optuna_journal.log." in section
    rows = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")][1:]
    assert rows == ["batch_size", "learning_rate"]  # Optuna lists the most important first
    plots, notes = analyze.make_plots([run], {}, None, tmp_path / "out")
    assert plots == {"run settings (slice)": tmp_path / "out" / "slice_kd.png",
                     "run importance": tmp_path / "out" / "importance_kd.png"} and notes == []
    for path in plots.values():
        assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 5000


def test_no_stored_study_is_said_in_the_report(tmp_path):
    """A sweep of fixed settings over seeds has no searcher and no journal: the report says why its plots
    are missing, and the importance table is worked out from the trials' records."""
    fixed = experiment([trial("a", 0.5, experiment=str(tmp_path / "fixed"))], path=tmp_path / "fixed")
    plots, notes = analyze.make_plots([fixed], {}, None, tmp_path / "out")
    assert plots == {}
    assert notes == ["`fixed`: no slice or importance plot: the folder holds no Optuna study (optuna_journal.log); "
                     "only sweeps with Optuna's searcher store one, not a grid of fixed settings over seeds"]
    section = analyze.plots_section(plots, notes)
    assert "Not drawn:\n- `fixed`: no slice or importance plot" in section
    assert "From the trials' records (no stored study)." in analyze.importance_section([fixed])


def test_too_few_trials_for_an_importance_plot_is_said(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    stored_study(folder, "small", [(1e-3, 8, 0.5), (2e-3, 16, 0.6)])
    plots, notes = analyze.make_plots([experiment([], path=folder)], {}, None, tmp_path / "out")
    assert list(plots) == ["small settings (slice)"]
    assert notes == ["`small`: no importance plot: not enough trials: 2 completed trial(s) over 2 searched "
                     "setting(s); fANOVA needs at least 10 (10, or twice the settings) before its importances "
                     "mean anything"]


@pytest.mark.parametrize(("low", "high"), [(2e-3, 1e-2), (1e-5, 2e-4), (1e-6, 1e-1)])
def test_log_scale_tick_labels_do_not_overlap(tmp_path, low, high):
    """Under a decade or two, matplotlib labels minor ticks too, and on Optuna's narrow subplots they ran
    into each other. Checked on the drawn figure: every pair of visible x tick labels is apart."""
    rates = [low * (high / low) ** (i / 9) for i in range(10)]
    study = stored_study(tmp_path, "ticks", [(lr, 8 * (1 + i % 2), i / 10) for i, lr in enumerate(rates)], low, high)
    with analysis_plots.optuna_figure():
        figure = analysis_plots.slice_figure(study, "ticks")
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        (log_axis,) = [axis for axis in figure.axes if axis.get_xscale() == "log"]
        left, right = log_axis.get_xlim()
        labels = [label for minor in (False, True)  # major and minor ticks: matplotlib labels both on short spans
                  for tick, label in zip(log_axis.get_xticks(minor=minor), log_axis.get_xticklabels(minor=minor),
                                         strict=True)
                  if left <= tick <= right and label.get_text()]
        assert len(labels) >= 2  # a value can be read off
        boxes = [label.get_window_extent(renderer) for label in labels]
        assert not any(first.overlaps(second) for first, second in combinations(boxes, 2)), \
            [label.get_text() for label in labels]
        analysis_plots.plt.close(figure)


def test_committed_reports_name_no_machine_paths():
    """Reports get committed and moved: folders in them are named relative to the storage path."""
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    absolute = re.compile(r"(?<![\w.])/(work|tmp|home|root|Users)/")
    for path in [*results.glob("*/report.md"), *results.glob("*/best_configs.json"), *results.glob("*/results.csv")]:
        found = [line for line in path.read_text(encoding="utf-8").splitlines() if absolute.search(line)]
        assert not found, f"{path.relative_to(results)}: {found[:2]}"
