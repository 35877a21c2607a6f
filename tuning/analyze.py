"""Read finished sweeps, pick the best settings per method on validation data, compare on test data.

    python tuning/analyze.py                                  # every experiment under ray_results/
    python tuning/analyze.py ray_results/NAME --confirm 5     # retrain each winner with 5 fresh seeds
    python tuning/train.py --method kd --config ray_results/analysis/best_configs.json

Writes best_configs.json, report.md, results.csv, PNG plots (and confirm.csv with --confirm) into --out
(ray_results/analysis/); folders in them are named relative to the storage path."""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

from trainables import metrics as m
from trainables.atomic import write_text
from trainables.errors import UsageError
from tuning.cli import Parser, check_can_create, main_guard
from tuning.records import OPTUNA_JOURNAL, search_kind, write_json

# tuning.analysis.results (Ray, pandas), the plots (matplotlib) and --confirm (torch) are imported in the functions
# that use them: --help answers at once.
if TYPE_CHECKING:
    from tuning.analysis import results as a

BEST_FILE = "best_configs.json"
CONFIRM_FILE = "confirm.csv"  # one row per (method, seed) of --confirm, with its test predictions


def parse_args(argv=None):
    parser = Parser(prog="tuning/analyze.py", description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", metavar="EXPERIMENT_DIR",
                        help="experiment folders (default: every experiment under --storage-path)")
    parser.add_argument("--storage-path", default="ray_results", help="where run.py stored the experiments")
    parser.add_argument("--out", default=None, help="output folder (default: STORAGE_PATH/analysis)")
    parser.add_argument("--confirm", type=int, default=0, metavar="N",
                        help="retrain each method's best settings with N fresh seeds (paired across methods)")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="compare experiments whose data, split, student, teachers or Expert-Loop expert differ "
                             "(refused by default)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.confirm < 0:
        raise UsageError(f"--confirm must be >= 0, got {args.confirm}")
    import pandas as pd  # noqa: PLC0415 (pandas: --help answers at once)

    from tuning.analysis import results as a  # noqa: PLC0415 (Ray, pandas: --help answers at once)
    from tuning.analysis.confirm import load_groups, retrain, seed_rows, summarise  # noqa: PLC0415 (scikit-learn)

    folders = a.find_experiments(args.experiments, args.storage_path)
    root = a.storage_root(folders, args.storage_path)
    experiments = a.read_all(folders, root)
    mixed = a.setting_differences(experiments)
    if mixed and not args.allow_mixed:  # checked before anything is written
        raise UsageError(f"the experiments differ in {'; '.join(mixed)}: their trials are not comparable "
                         "(--allow-mixed compares them anyway)")
    out = Path(args.out) if args.out else Path(args.storage_path) / "analysis"
    check_can_create(out, "--out")  # before the confirmation's retraining, not at the first file written
    shown_root = args.storage_path if root == Path(args.storage_path).expanduser().resolve() else shown_path(root)
    best = a.best_configs(experiments, shown_root)
    if args.confirm and not best["methods"]:  # checked before anything is written
        raise UsageError("--confirm: no method has a trial with a val_accuracy to retrain")
    for line in a.chosen_early(best["methods"]):
        print(f"note: {line}")
    # the data --confirm would train on, checked against the sweep's before anything is written
    loaded = load_groups(best["methods"], root) if args.confirm else None
    write_json(out / BEST_FILE, best)
    write_text(out / "results.csv", a.results_frame(experiments).to_csv(index=False))
    confirmation = None
    if args.confirm:
        # confirm.csv is written again as each method's seeds finish: a later failure keeps them
        runs = retrain(best["methods"], args.confirm, loaded=loaded, finished=lambda done: write_text(
            out / CONFIRM_FILE, pd.DataFrame(seed_rows(done)).to_csv(index=False)))
        confirmation = summarise(runs)
    plots, notes = make_plots(experiments, best["methods"], confirmation, out)
    sections = report_sections(experiments, best["methods"], confirmation, plots, shown_root, mixed, notes)
    write_text(out / "report.md", "\n\n".join(sections) + "\n")
    print("\n" + "\n\n".join(sections[1:3] + ([sections[3]] if confirmation else [])))
    print(f"\nwritten to {out}: {BEST_FILE}, report.md, results.csv, {len(plots)} plot(s)")
    return 0


def shown_path(path: Path) -> str:
    """A folder as the user would type it from here: relative to the working folder when inside it."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


# ---------------------------------------------------------------- plots

def make_plots(experiments: list[a.Experiment], best: dict, confirmation: list[dict] | None,
               out: Path) -> tuple[dict[str, Path], list[str]]:
    """The plots written, by name, and notes on plots that could not be drawn."""
    from tuning.analysis import plots as p  # noqa: PLC0415 (matplotlib, Ray: --help answers at once)

    plots: dict[str, Path | None] = {}
    notes: list[str] = []
    for method, group in _experiments_by_method(experiments).items():
        for experiment in group:
            suffix = "" if len(group) == 1 else "_" + experiment.label.replace("/", "-")
            study_plots(experiment, f"{method}{suffix}", out, plots, notes)
    loop = [t for e in experiments if e.method == "active_loop" for t in e.trials]
    plots["Expert-Loop learning curves"] = p.plot_learning_curves(loop, out / "learning_curves.png")
    if confirmation:
        # The retrained seeds ran the chosen settings: the same label counts, which the best entry holds in full.
        bars = [(bar_label(r["method"], {**best.get(r["method"], {}), **r}), r[m.TEST_ACCURACY]["mean"],
                 r[m.TEST_ACCURACY]["ci"]) for r in confirmation]
        title = f"test accuracy over {confirmation[0]['n']} seeds, 95% CI over seeds and test examples"
    else:
        bars = [(bar_label(method, e), e["test_accuracy"], None) for method, e in best.items()]
        title = "test accuracy of each method's best trial (one seed: no error bars)"
    plots["method comparison"] = p.plot_comparison(bars, title, out / "comparison.png")
    return {name: path for name, path in plots.items() if path is not None}, notes


def study_plots(experiment: a.Experiment, stem: str, out: Path, plots: dict, notes: list[str]) -> None:
    """Optuna's slice and importance plots of the study the sweep stored; a note where there is none
    (no searcher: every setting fixed) or it has too little in it."""
    from tuning.analysis import plots as p  # noqa: PLC0415 (matplotlib, Ray: --help answers at once)
    from tuning.analysis import results as a  # noqa: PLC0415 (Ray, pandas: --help answers at once)

    study = a.stored_study(experiment)
    name = f"`{experiment.label}`"
    if study is None:
        notes.append(f"{name}: no slice or importance plot: the folder holds no Optuna study "
                     f"({OPTUNA_JOURNAL}); only sweeps with Optuna's searcher store one, not a grid of fixed "
                     "settings over seeds")
        return
    slice_plot = p.plot_slice(study, experiment.label, out / f"slice_{stem}.png")
    plots[f"{experiment.label} settings (slice)"] = slice_plot
    if slice_plot is None:
        notes.append(f"{name}: no slice plot: no trial of the stored study completed (trials ASHA stopped are "
                     "PRUNED there, errored ones FAIL)")
    shortfall = a.importance_shortfall(study)
    if shortfall:
        notes.append(f"{name}: no importance plot: {shortfall}")
        return
    plots[f"{experiment.label} importance"] = p.plot_importances(
        study, experiment.label, out / f"importance_{stem}.png")


def bar_label(method: str, counts: dict) -> str:
    """The method with its label bill under it, so no method looks cheaper than it is: every gold label that chose
    or trained it first (the validation split's too), then the student's, the teachers' and the validation's."""
    return (f"{method}\ngold {fmt(counts.get('gold_labels'))} in all\n(student {fmt(counts.get(m.LABELS_USED))}, "
            f"teachers {fmt(counts.get(m.TEACHER_LABELS))}, validation {fmt(counts.get(m.VALIDATION_LABELS))})"
            f"\nexpert queries {fmt(counts.get(m.EXPERT_QUERIES))}")


def _experiments_by_method(experiments: list[a.Experiment]) -> dict[str, list[a.Experiment]]:
    grouped: dict[str, list[a.Experiment]] = {}
    for experiment in experiments:
        grouped.setdefault(experiment.method, []).append(experiment)
    return grouped


# ---------------------------------------------------------------- the report

def report_sections(experiments, best: dict, confirmation, plots: dict, storage_path: str = "",
                    mixed: list[str] | None = None, plot_notes: list[str] | None = None) -> list[str]:

    head = ["# Sweep analysis", "Chosen on `val_accuracy` of each trial's last report; test metrics are for "
            "the record only. Label counts: `labels_used` = gold labels the student saw, `teacher_labels` = "
            "gold labels the teachers were fine-tuned on, `validation_labels` = gold labels of the validation split, "
            "which chose every configuration, `expert_queries` = examples the expert labelled (the teachers unless "
            "`expert` names another; priced at the sweep's `expert_price` per label), `teacher_labelled_rows` = rows "
            "whose teacher targets the student's loss read.",
            f"Experiments (folders relative to the storage path `{storage_path}`):",
            *[f"- `{e.relative}` ({e.method}, {len(e.trials)} trials; search: "
              f"{search_kind(e.record.get('sweep', {}))})" for e in experiments]]
    if mixed:
        head.append("\n**Mixed settings (--allow-mixed):** these experiments differ in "
                    + "; ".join(mixed) + ". Trials pooled or compared across them are not directly comparable.")
    head += [f"\n{line}" for line in (oracle_warning(e) for e in experiments) if line]
    sections = ["\n".join(head), best_section(experiments, best), trials_section(experiments)]
    if confirmation:
        sections.append(confirmation_section(confirmation, [e.method for e in experiments]))
    sections += [expert_loop_section(experiments), importance_section(experiments),
                 plots_section(plots, plot_notes or [])]
    return [s for s in sections if s]


GOLD_HEADER = "gold labels that chose or trained it"
# What the column sums (tuning/analysis/results.py gold_labels), so a method's bill is read whole.
GOLD_NOTE = (f"`{GOLD_HEADER}`: `validation_labels` (they chose the settings) plus the training split's gold labels "
             "the student (`labels_used`) or the teachers (`teacher_labels`) learned from, each once: by default the "
             "teachers learned every training row and kd's student reads every row, so one of the two holds the "
             "other and the larger counts; only the Expert-Loop with `--teacher-split` above 0 keeps them apart, "
             "and then both count. `expert_queries` and `teacher_labelled_rows` count teacher targets, no gold label.")


def oracle_warning(experiment) -> str:
    """A line when the Expert-Loop's expert, the teachers, learned the very rows it labels: teacher_split 0 (the
    sweeps' default) fine-tunes them on the whole training split, the pool's rows too. Teachers given as
    checkpoints (teacher_labels 0) learned nothing here, and other experts are no teachers."""
    from tuning.analysis import results as a  # noqa: PLC0415 (Ray, pandas: --help answers at once)

    learned = max((t.last.get(m.TEACHER_LABELS) or 0 for t in experiment.trials), default=0)
    if (experiment.method != "active_loop" or a.compared_value(experiment, "expert") != "teachers"
            or experiment.data.get("teacher_split") or not learned):
        return ""
    return (f"**Experts trained on the rows they label:** in `{experiment.relative}` the teachers (the Expert-Loop's "
            f"expert) learned from every training row ({fmt(learned)} gold labels, `teacher_split` 0), the pool's "
            "too, so on the rows they label they are partly an oracle; `--teacher-split 0.5` fine-tunes them on a "
            "disjoint half, which the Expert-Loop's pool then excludes.")


def best_section(experiments, best: dict) -> str:
    headers = ["method", "val_acc", "test_acc", "test_macro_f1", "ran", GOLD_HEADER, "labels_used", "teacher_labels",
               "validation_labels", "expert_queries", "teacher_labelled_rows", "expert: labels priced / paid",
               "ensemble val/test", "teachers test", "trial", "settings"]
    from tuning.analysis import results as a  # noqa: PLC0415 (Ray, pandas: --help answers at once)

    rows = []
    for method, entry in best.items():
        trial = _find_trial(experiments, entry)
        teachers = a.teacher_accuracies(trial.last)
        ensemble = teachers.pop("ensemble", {})
        rows.append([method, acc(entry["val_accuracy"]), acc(entry["test_accuracy"]), acc(entry["test_macro_f1"]),
                     ran_text(entry["ran"]), fmt(entry.get("gold_labels")), fmt(entry["labels_used"]),
                     fmt(entry["teacher_labels"]), fmt(entry.get("validation_labels")), fmt(entry["expert_queries"]),
                     fmt(entry.get("teacher_labelled_rows")), expert_text(entry),
                     f"{acc(ensemble.get('val'))} / {acc(ensemble.get('test'))}" if ensemble else "-",
                     ", ".join(f"{name} {acc(split.get('test'))}" for name, split in teachers.items()) or "-",
                     entry["trial_id"], settings_text(trial, experiments)])
    early = "".join(f"**{line}.**\n\n" for line in a.chosen_early(best))
    return ("## Best trial per method\n\nAmong the trials that ran their whole plan (completed).\n\n" + early
            + GOLD_NOTE + "\n\n" + (table(headers, rows) if rows else "No trial reported a val_accuracy."))


def expert_text(entry: dict) -> str:
    """'llm:smollm2: 0.3 / 0.1 (50 calls)': the expert, what its labels are worth and what the run paid; "-" when
    the method has no expert (best_configs.json written before experts had costs: the expert alone)."""
    if not entry.get("expert"):
        return "-"
    if entry.get(m.EXPERT_PRICED_COST) is None:
        return entry["expert"]
    return (f"{entry['expert']}: {fmt(entry[m.EXPERT_PRICED_COST])} / {fmt(entry.get(m.EXPERT_PAID))} "
            f"({fmt(entry.get(m.EXPERT_CALLS))} calls)")


def ran_text(ran: dict) -> str:
    """'2/4 epochs (stopped)': what the chosen trial trained, against what its settings planned."""
    unit = "rounds" if "rounds" in ran else "epochs"
    return f"{fmt(ran[unit])}/{fmt(ran['planned'])} {unit} ({ran['status']})"


def _find_trial(experiments, entry: dict) -> a.TrialRecord:
    return next(t for e in experiments if e.relative == entry["experiment"] for t in e.trials
                if t.trial_id == entry["trial_id"])


def settings_text(trial: a.TrialRecord, experiments) -> str:
    from tuning.analysis import results as a  # noqa: PLC0415 (Ray, pandas: --help answers at once)

    space = a.experiment_of(trial, experiments).space
    return ", ".join(f"{name}={fmt(trial.config.get(name), 3)}" for name in a.searched(space))


def trials_section(experiments) -> str:
    from tuning.analysis import results as a  # noqa: PLC0415 (Ray, pandas: --help answers at once)

    headers = ["method", "trials", *a.STATUSES]
    rows = []
    for method, trials in a.by_method(experiments).items():
        counts = a.status_counts(trials)
        rows.append([method, str(len(trials)), *[str(counts[s]) for s in a.STATUSES]])
    text = ("## Trials\n\n`stopped`: ended by the ASHA scheduler before its planned epochs/rounds (a trial its "
            "own stopping rule, `stop`, ended ran its plan: `completed`); "
            "`unfinished`: the sweep was interrupted (resume it with `tuning/run.py --resume`).\n\n"
            + table(headers, rows))
    errors = [t for e in experiments for t in e.trials if t.error]
    if errors:
        text += "\n\n### Errors\n\n" + "\n".join(f"- {t.method} `{t.trial_id}`: {t.error}" for t in errors)
    return text


def confirmation_section(rows: list[dict], swept: list[str] | None = None) -> str:
    """swept: the methods of the experiments read, so a method left out of the confirmation is named."""
    from tuning.analysis.confirm import (  # noqa: PLC0415 (scikit-learn: --help answers at once)
        INTERVAL,
        SEED_BASE,
        SEED_INTERVAL,
        few_seeds_warning,
    )

    n = rows[0]["n"]
    headers = ["method", "n", "test_acc", "95% CI", "test_macro_f1 (sd)", "val_acc", "labels_used",
               "teacher_labels", "expert_queries", "difference vs supervised", "95% CI of difference (bootstrap)",
               "95% t-interval over seeds", "verdict"]
    lines = []
    for r in rows:
        test, f1, diff = r[m.TEST_ACCURACY], r[m.TEST_MACRO_F1], r.get("difference")
        lines.append([r["method"], str(r["n"]), acc(test["mean"]), ci_text(test["ci"]),
                      f"{acc(f1['mean'])} ({acc(f1['sd'])})", acc(r[m.VAL_ACCURACY]),
                      count_text(r, m.LABELS_USED), count_text(r, m.TEACHER_LABELS), count_text(r, m.EXPERT_QUERIES),
                      acc(diff["mean"], signed=True) if diff else "-", ci_text(diff["ci"]) if diff else "-",
                      ci_text(diff["seed_ci"]) if diff and diff["seed_ci"] else "-",
                      r.get("verdict", "baseline" if r["method"] == "supervised" else "-")])
    plain = [f"- {r['method']} against supervised: {acc(r['difference']['mean'], signed=True)}, 95% CI "
             f"{ci_text(r['difference']['ci'])} (bootstrap), "
             f"{ci_text(r['difference']['seed_ci']) if r['difference']['seed_ci'] else '-'} (t over seeds): "
             f"**{r['verdict']}**" for r in rows if "difference" in r]
    warning = few_seeds_warning(n)
    return (f"## Confirmation: best settings retrained with {n} fresh seed(s) ({SEED_BASE}..{SEED_BASE + n - 1})\n\n"
            + (f"**Warning: {warning}.**\n\n" if warning else "")
            + f"Same seeds for every method. Intervals: {INTERVAL} ({rows[0]['test_examples']} test examples), "
            "which counts the test set's own sampling error but, with few seeds, only part of the seed-to-seed "
            f"variation; and beside each difference a {SEED_INTERVAL}. A difference is better or worse only "
            "when BOTH intervals exclude 0 on the same side; otherwise it is within noise. Both intervals are "
            "conditioned on the chosen configurations: the search's own variability (another search could have "
            "chosen other settings) is not covered. macro-F1 is the mean over seeds (sd in brackets); label counts "
            "are the mean over seeds (min-max in brackets when seeds differ: a stopping rule or an exhausted pool "
            f"ends the loop at different rounds). Each seed's figures and test predictions: `{CONFIRM_FILE}`.\n\n"
            + table(headers, lines) + ("\n\n" + "\n".join(plain) if plain else "")
            + unpaired_text(rows, swept or [])
            + "\n\n" + recall_table(rows))


def unpaired_text(rows: list[dict], swept: list[str]) -> str:
    """Why a difference is missing: the baseline was not confirmed, a swept method was not (no trial of it
    reported a val_accuracy: every one errored), or a method was tested on other examples (--allow-mixed)."""
    confirmed = {r["method"] for r in rows}
    notes = [f"- {method} was swept but not confirmed: none of its trials reported a val_accuracy (see Trials)"
             for method in dict.fromkeys(swept) if method not in confirmed]
    if "supervised" not in confirmed:
        notes.append("- supervised, the baseline, was not confirmed: no difference against it is shown")
    else:
        notes += [f"- {r['method']} was tested on other test examples or seeds than supervised (--allow-mixed): "
                  "no paired difference" for r in rows if r["method"] != "supervised" and "difference" not in r]
    return "\n\n**Not compared:**\n" + "\n".join(notes) if notes else ""


def count_text(row: dict, key: str) -> str:
    """A label count of the confirmation: the mean over seeds, with its range when the seeds differ."""
    spread = row.get(f"{key}_range")
    return fmt(row[key]) + (f" ({fmt(spread[0])}-{fmt(spread[1])})" if spread else "")


def recall_table(rows: list[dict]) -> str:
    """Per-class recall on test, mean over seeds: shows a class a method ignores (macro-F1 falls, accuracy
    may not)."""
    names = list(rows[0]["per_class_recall"])
    lines = [[r["method"], *[acc(r["per_class_recall"].get(name)) for name in names]] for r in rows]
    return "### Per-class recall on test (mean over seeds)\n\n" + table(["method", *names], lines)


def ci_text(ci: list[float]) -> str:
    signed = ci[0] < 0  # differences straddle 0: show both signs
    return f"[{acc(ci[0], signed)}, {acc(ci[1], signed)}]"


def expert_loop_section(experiments) -> str:
    """The Expert-Loop's trials grouped by query strategy. The sweep searched the budget too (initial
    pool, query size, rounds), so each strategy's trials ran at different budgets and few seeds: the table
    describes the sweep; it does not rank the strategies (tuning/study.py does, at equal budgets)."""
    from tuning.analysis import results as a  # noqa: PLC0415 (Ray, pandas: --help answers at once)

    scored = [t for e in experiments if e.method == "active_loop" for t in e.trials
              if t.status != a.ERRORED and not math.isnan(t.val_accuracy)]
    # A trial stopped at round 0 trained on its initial gold pool alone: no query strategy or expert is in its score.
    trials = [t for t in scored if a.asked_the_expert(t)]
    if not trials:
        return ""
    by_strategy: dict[str, list[a.TrialRecord]] = {}
    for trial in trials:
        by_strategy.setdefault(str(trial.config.get("strategy", "?")), []).append(trial)
    headers = ["strategy", "trials", "best val_acc", "mean test_acc", "mean test_macro_f1", "mean labels_used",
               "mean expert_queries", "mean expert_label_accuracy"]
    rows = [[s, str(len(ts)), acc(max(t.val_accuracy for t in ts)), acc(_mean(ts, m.TEST_ACCURACY)),
             acc(_mean(ts, m.TEST_MACRO_F1)), fmt(_mean(ts, m.LABELS_USED), 4), fmt(_mean(ts, m.EXPERT_QUERIES), 4),
             acc(_mean(ts, m.EXPERT_LABEL_ACCURACY))]
            for s, ts in sorted(by_strategy.items())]
    return ("## Expert-Loop trials by query strategy (not a comparison of strategies)\n\n"
            "**This table mixes budgets:** the sweep searched the initial pool, query size and rounds with "
            "the strategy, so each row averages trials that labelled different numbers of examples, on one "
            "seed each. It describes the sweep; it does not rank the strategies. For that, run "
            "`python tuning/study.py`, which compares strategies at equal budgets over several seeds.\n\n"
            "Last report of each trial; see learning_curves.png for the per-round history. Left out: "
            f"{len(scored) - len(trials)} trial(s) stopped at round 0, which asked no expert.\n\n"
            + table(headers, rows))


def _mean(trials: list[a.TrialRecord], key: str) -> float:
    values = [float(t.last[key]) for t in trials if isinstance(t.last.get(key), int | float)]
    values = [v for v in values if not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def importance_section(experiments) -> str:
    from tuning.analysis import results as a  # noqa: PLC0415 (Ray, pandas: --help answers at once)

    parts = ["## Hyperparameter importance (fANOVA on completed trials, Optuna)"]
    for experiment in experiments:
        study = a.stored_study(experiment)
        result = a.param_importances(experiment.space, experiment.trials, study)
        source = f"the study in {OPTUNA_JOURNAL}" if study is not None else "the trials' records (no stored study)"
        parts.append(f"### {experiment.method} (`{experiment.label}`)\n\nFrom {source}.")
        if isinstance(result, str):
            parts.append(result)
        else:
            parts.append(table(["setting", "importance"], [[k, acc(v)] for k, v in result.items()]))
    return "\n\n".join(parts)


def plots_section(plots: dict, notes: list[str]) -> str:
    lines = [f"- [{name}]({path.name})" for name, path in plots.items()]
    if notes:
        lines += ["", "Not drawn:", *[f"- {note}" for note in notes]]
    return "## Plots\n\n" + "\n".join(lines)


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def fmt(value, digits: int = 4) -> str:
    """Settings and counts: significant digits (a learning rate of 0.00481 stays readable)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float) or isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def acc(value, signed: bool = False) -> str:
    """Accuracies and their differences: three decimals, so columns line up."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = 0.0 if abs(value) < 5e-4 else value  # no "-0.000" from rounding error
    return f"{value:+.3f}" if signed else f"{value:.3f}"


if __name__ == "__main__":
    main_guard(main)
