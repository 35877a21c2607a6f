"""Running a budget study with Ray Tune: folders, preparation, the grid, resume, and its outputs."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from ray import tune

from trainables import metrics as m
from trainables import precision
from trainables.atomic import write_text
from trainables.expert_loop import candidate_rows
from trainables.functions import study_trial
from trainables.study_settings import BUDGET, DEFAULT_LLM, QUERY_LOG, StudySettings, check_budgets, parse_arm
from tuning.assets.prepare import DataSettings, load_data, prepare, teacher_rows
from tuning.budget_study import carry, code_version
from tuning.budget_study import plots as study_plots
from tuning.budget_study.costs import parse_prices
from tuning.budget_study.report import QUERIES_CSV, STUDY_CSV, SUMMARY_JSON, summarise, write_report, write_study_csv
from tuning.records import write_json
from tuning.tracking.callbacks import tracker_callbacks
from tuning.tracking.settings import Tracking, describe
from tuning.trials.driver_lock import new_experiment_folder, nothing_to_resume, one_driver
from tuning.trials.progress import ProgressLines
from tuning.trials.ray_session import RaySession
from tuning.trials.replayed_reports import TrimReplayedReports
from tuning.trials.tuner import REUSE_ACTORS, SweepInterrupted, fit, trainable

STUDY_FILE = "study.json"  # how the study was made: read back by --resume


def start(folder: Path, plan: dict, settings: DataSettings, session: RaySession, max_concurrent: int | None,
          resume_hint: str, tracking: Tracking | None = None) -> int:
    """A new study in `folder` (study.py checked that it does not exist yet). `resume_hint`: the command
    that continues it, said when Ctrl-C stops it."""
    data = load_data(settings)
    teachers = needs_teachers(plan)
    # Without teachers no row is theirs (expert_loop.candidate_rows): the pool is the whole training split.
    pool = len(data.train) - (len(teacher_rows(settings, data)) if teachers and settings.teacher_split > 0 else 0)
    check_budgets(StudySettings.from_dict(plan["template"]), pool)
    # Held from before Ray starts (prepare) to the study's end; removed with its folder if no study.json came of it.
    with new_experiment_folder(folder, "study", resume_hint, begun=lambda: (folder / STUDY_FILE).exists()):
        prepared = prepare(settings, need_teachers=teachers, data=data, start_ray=session.start,
                           expert=text_expert(plan))
        record = {"plan": plan, "data": settings.to_dict(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "tracking": asdict(tracking) if tracking is not None else None, "code": code_version.fingerprint()}
        write_json(folder / STUDY_FILE, record)
        if prepared.teachers is not None:  # every later point, here or on another machine, asks these
            carry.save_teachers(folder, prepared.teachers)
        _announce(plan, prepared, folder)
        if tracking is not None:
            print(describe(tracking), flush=True)
        return _run(folder, plan, prepared, session, max_concurrent, resume_hint, restore=False, tracking=tracking)


def resume(folder: Path, session: RaySession, max_concurrent: int | None, resume_hint: str,
           reprice: dict | None = None) -> int:
    """Continue the study in `folder` and rewrite its report; `reprice` ({"prices", "charge_sunk"}) changes
    what the report prices labels at (the trials do not depend on it). Refused while another process runs it."""
    if not (folder / STUDY_FILE).is_file():  # checked first: no lock file is left in a folder that is no study
        raise nothing_to_resume(folder, "study", STUDY_FILE)
    with one_driver(folder, f"study {folder.name}", resume_hint):
        return _continue(folder, session, max_concurrent, resume_hint, reprice)


def _continue(folder: Path, session: RaySession, max_concurrent: int | None, resume_hint: str,
              reprice: dict | None) -> int:
    """resume's work, with the study's driver lock held (study.json read under it: another run may have ended)."""
    record = json.loads((folder / STUDY_FILE).read_text(encoding="utf-8"))
    StudySettings.from_dict(record["plan"]["template"])  # a first-version study is refused here, before Ray
    if reprice is not None:
        record["plan"].update(reprice)
    restore = tune.Tuner.can_restore(str(folder))
    carried = carry.read_points(folder)
    # Carried to this machine (no Ray experiment here), the study has ended when its points say so; its runs
    # (study.json) were counted where its Tuner ran.
    finished = (len(carry.ended_trials(carried)) >= len(grid(record["plan"])) if carried and not restore
                else all_trials_ended(record))
    if finished:
        print("every trial of this study has ended: its report is rewritten, nothing is trained", flush=True)
    elif _note_code_changes(record):
        print(f"warning: the training code changed since this study started ({', '.join(record['code_changes'])}): "
              "points trained from now on may differ from the earlier ones; the report says so. For one code "
              "throughout, start a new study.", flush=True)
    if not finished:
        warn_of_mixed_precision(folder, record["plan"])
    if reprice is not None or record.get("code_changes"):
        write_json(folder / STUDY_FILE, record)
    prepared = prepare_study(folder, record, start_ray=session.start)
    if restore:
        print(f"resuming {folder}", flush=True)
    elif carried and not finished:
        print(f"no Ray experiment in {folder} (a study carried from another machine, or exported): "
              f"{len(carry.ended_trials(carried))} of {len(grid(record['plan']))} trials ended there are carried "
              f"from {carry.POINTS}; the others run here", flush=True)
    # Used when the study was interrupted before its Tuner began; a restored Tuner keeps its own callbacks.
    tracking = Tracking(**record["tracking"]) if record.get("tracking") else None
    return _run(folder, record["plan"], prepared, session, max_concurrent, resume_hint, restore, tracking,
                log=not finished, carried=carried)


def prepare_study(folder: Path, record: dict, start_ray=None):
    """The study's data, student and experts for a resume or an export. Its teachers are the ones it saved
    (carry.TEACHERS) when it has them, as fine-tuned where it started; a study of before 2026-12-07 has none
    saved: its teachers come from the cache (or are fine-tuned), then saved."""
    plan = record["plan"]
    saved = carry.load_teachers(folder)
    prepared = prepare(DataSettings.from_dict(record["data"]), need_teachers=needs_teachers(plan) and saved is None,
                       start_ray=start_ray, expert=text_expert(plan))
    if saved is not None:
        carry.check_teachers_fit(saved, {split: len(encoded) for split, encoded in prepared.encoded.items()})
        print(f"teachers: {', '.join(saved.names)}, carried from {carry.TEACHERS} (as fine-tuned when the study "
              "started)", flush=True)
        return replace(prepared, teachers=saved)
    if prepared.teachers is not None:
        carry.save_teachers(folder, prepared.teachers)
    return prepared


def export(folder: Path, destination: Path, hint: str) -> int:
    """A portable copy of the study in `folder` in `destination` (study.py checked that it is empty or an earlier
    copy of this study): study.json, carry's two files and the report over every point measured so far, no
    file of Ray's. To commit, or to copy into another machine's storage path and --resume there. Refused while
    the study runs (`hint`: how to continue it, said if a dead driver's lock is found)."""
    with one_driver(folder, f"study {folder.name}", hint):
        record = json.loads((folder / STUDY_FILE).read_text(encoding="utf-8"))
        rows, unreadable = carry.read_points(folder), []
        if tune.Tuner.can_restore(str(folder)):  # read without starting Ray
            measured, unreadable = collect_rows(tune.ResultGrid(tune.ExperimentAnalysis(str(folder))))
            rows += measured
        prepared = prepare_study(folder, record)
        write_json(destination / STUDY_FILE, record)
        if prepared.teachers is not None:
            carry.save_teachers(destination, prepared.teachers)
        write_outputs(destination, record["plan"], prepared, rows, unreadable)
        ended = len(carry.ended_trials(rows))
        print(f"exported {ended} of {len(grid(record['plan']))} ended trials to {destination}; to continue it "
              f"elsewhere, copy that folder into the storage path and run --resume --name {folder.name}", flush=True)
    return 0


def warn_of_mixed_precision(folder: Path, plan: dict) -> None:
    """'auto' precision is decided where each trial runs: a study resumed on a machine that decides otherwise
    (no native bfloat16, say) trains its next points in another precision than its first. Said before it starts."""
    if plan["template"]["recipe"]["bf16"] != precision.AUTO or not (folder / STUDY_CSV).is_file():
        return
    try:
        so_far = set(pd.read_csv(folder / STUDY_CSV, usecols=[m.PRECISION])[m.PRECISION].dropna().astype(str))
    except ValueError:  # a study.csv of before the column: nothing to compare with
        return
    here = precision.choice()
    name = precision.name(here.bf16)
    if so_far and name not in so_far:
        print(f"warning: students would train in {name} here ({here.reason}), but this study's points so far "
              f"trained in {', '.join(sorted(so_far))}: continuing here mixes precisions (the report will say so). "
              "For one precision throughout, resume on a machine like the one it started on.", flush=True)


def all_trials_ended(record: dict) -> bool:
    """Whether the study's last run ended every trial: resuming it then trains no point (it rewrites the
    report, repriced say), so neither the code running now nor the run's seconds belong to the study's points."""
    runs = record.get("runs") or []
    return bool(runs) and runs[-1].get("trials_ended", 0) >= len(grid(record["plan"]))


def plan_arms(plan: dict) -> list:
    return [parse_arm(name, plan["template"].get("llm", DEFAULT_LLM)) for name in plan["arms"]]


def needs_teachers(plan: dict) -> bool:
    """Whether the teachers are fine-tuned (or read from the cache). Not for a study whose named experts (@llm,
    @openai) stand in for them and no arm asks them. Every other study prepares them as it always has, since
    their share of the training split is out of the student's pool: a study made before named experts (or one
    of supervised and oracle arms) keeps its pool when resumed."""
    arms = plan_arms(plan)
    return any(arm.needs_teachers for arm in arms) or not any(arm.answers_in_state for arm in arms)


def text_expert(plan: dict) -> str:
    """The expert prepare() readies the rows' text for (tuning/assets/experts.py): the study's language model
    when an arm asks it (its file fetched once, here), else the endpoint's, else none ("teachers")."""
    named = {arm.expert_kind: arm.expert for arm in plan_arms(plan) if arm.answers_in_state}
    return named.get("llm") or named.get("openai") or "teachers"


def log_run(folder: Path, started: float, seconds: float, trials_ended: int) -> None:
    """Add this run (a start or a --resume, until it ends or is interrupted) to study.json's runs: a study
    continued over several sessions has no single wall time, but the sum of its runs'."""
    path = folder / STUDY_FILE
    record = json.loads(path.read_text(encoding="utf-8"))
    record.setdefault("runs", []).append({"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
                                          "seconds": round(seconds, 1), "trials_ended": trials_ended})
    write_json(path, record)


def _note_code_changes(record: dict) -> bool:
    """Add to record["code_changes"] the training-code files that differ from the study's start; True if any
    differ now. A study made before fingerprints were recorded has none to compare: nothing is claimed."""
    if "code" not in record:
        return False
    now = code_version.changed(record["code"], code_version.fingerprint())
    record["code_changes"] = sorted(set(record.get("code_changes", [])) | set(now))
    return bool(now)


def _announce(plan: dict, prepared, folder: Path) -> None:
    template = plan["template"]
    print(f"budget study: {len(plan['arms'])} arms x {len(plan['seeds'])} seeds = "
          f"{len(plan['arms']) * len(plan['seeds'])} trials, budgets {template['budgets']}, initial "
          f"{template['initial']}, student pool {len(candidate_rows(prepared))}", flush=True)
    print(f"each point {describe_stopping(template)}", flush=True)
    print(f"arms: {', '.join(plan['arms'])}", flush=True)
    named = sorted({arm.expert for arm in plan_arms(plan) if arm.answers_in_state})
    if named:
        print(f"named experts: {', '.join(named)}; teachers "
              f"{'prepared' if needs_teachers(plan) else 'not prepared (no arm asks them)'}", flush=True)
    chosen = template["recipe"]["bf16"]
    shown = precision.choice().describe() if chosen == precision.AUTO else f"forced bf16={chosen}"
    print(f"students' precision here: {shown}; each trial worker decides again where it runs", flush=True)
    print(f"results in {folder}", flush=True)


def describe_stopping(template: dict) -> str:
    stopping = template["stopping"]
    cap = f"cap {stopping['max_steps']} steps (in whole epochs, at most {stopping['max_epochs']})"
    if template["selection"] == "last":
        return f"trained to the {cap}, the last epoch kept (no labels spent on selection)"
    chooser = (f"a stratified {template['selection_share']:.0%} of each point's own labels, held out and counted"
               if template["selection"] == "share" else "the fixed validation split (its gold labels counted)")
    return (f"trained to a plateau, the best epoch selected on {chooser}; patience {stopping['patience_steps']} "
            f"steps, {cap}")


def grid(plan: dict) -> list[dict]:
    """(arm, seed) pairs, seed by seed, the slowest arms of a seed first: an interrupted study then holds
    whole seeds, and the two CPUs do not end the study waiting on one long trial."""
    slow_first = sorted(plan["arms"], key=lambda arm: not parse_arm(arm).single_point)
    return [{"arm": arm, "seed": seed} for seed in plan["seeds"] for arm in slow_first]


def _run(folder: Path, plan: dict, prepared, session: RaySession, max_concurrent: int | None, resume_hint: str,
         restore: bool, tracking: Tracking | None = None, log: bool = True, carried: list[dict] | None = None) -> int:
    """The grid on Ray (a restored Tuner when `restore`, else one of the trials not ended among the `carried`
    points), then the study's files from what was measured, carried points included; `log` adds this run to
    study.json's runs."""
    carried = carried or []
    trials, ended_elsewhere = grid(plan), carry.ended_trials(carried)
    to_run = [point for point in trials if (point["arm"], point["seed"]) not in ended_elsewhere]
    started = time.time()
    rows, unreadable, errored = list(carried), [], set()
    if restore or to_run:
        grid_result = _fit(folder, plan, prepared, session, max_concurrent, restore, to_run, tracking)
        measured, unreadable = collect_rows(grid_result)
        rows += measured  # after the carried ones: a point measured again here counts (write_outputs)
        errored = failed_points(grid_result)
    for gap in unreadable:
        print(f"cannot read the reports of {gap['arm']} seed {gap['seed']} ({gap['path']}): {gap['error']}",
              flush=True)
    ended = {(r["arm"], r["seed"]) for r in rows if r.get("done")}
    accounted = ended | errored | {(gap["arm"], gap["seed"]) for gap in unreadable}
    if log:
        log_run(folder, started, time.time() - started, len(ended))
    write_outputs(folder, plan, prepared, rows, unreadable)
    if len(accounted) < len(trials):
        raise SweepInterrupted(f"{len(ended)} of {len(trials)} study trials ended; continue with: {resume_hint}")
    if errored:
        print(f"{len(errored)} trial(s) failed; the report compares the seeds every arm finished", flush=True)
    if unreadable:
        print(f"{len(unreadable)} trial(s) whose reports could not be read are left out (listed in summary.json "
              "as unreadable_trials); the report compares the seeds every arm finished", flush=True)
    return 0


def _fit(folder: Path, plan: dict, prepared, session: RaySession, max_concurrent: int | None, restore: bool,
         to_run: list[dict], tracking: Tracking | None):
    """The Tuner's results: the experiment in `folder` restored, or a new one over the (arm, seed) pairs `to_run`."""
    cpus = prepared.num_threads
    with session:
        if restore:
            tuner = tune.Tuner.restore(str(folder), trainable=trainable(study_trial, prepared, cpus),
                                       resume_unfinished=True, resume_errored=False)
        else:
            concurrent = max_concurrent or max(1, (os.cpu_count() or 1) // cpus)
            tuner = tune.Tuner(
                trainable(study_trial, prepared, cpus),
                param_space={"template": plan["template"], "point": tune.grid_search(to_run)},
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=REUSE_ACTORS),
                run_config=tune.RunConfig(name=folder.name, storage_path=str(folder.parent), verbose=0,
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                          callbacks=[ProgressLines(len(to_run), describe_point, word="done"),
                                                     TrimReplayedReports(str(folder.parent)),
                                                     *tracker_callbacks(tracking)]))
        return fit(tuner, session.settings.verbose)


def describe_point(trial, result: dict) -> tuple[str, bool]:
    """A study's progress line for one report (one budget of an arm and seed), and whether it is the trial's
    last: a single-point arm (full:*, kd_all) has one point, every other arm one per budget."""
    arm, seed = result["arm"], trial.config["point"]["seed"]
    last = is_last_point(arm, result["training_iteration"], len(trial.config["template"]["budgets"]))
    return (f"{arm} seed {seed} budget {result[BUDGET]}: val {result[m.VAL_ACCURACY]:.3f} test "
            f"{result[m.TEST_ACCURACY]:.3f}, kept epoch {result[m.EPOCH]} of {result['epochs_run']} "
            f"({result[m.TRAIN_SECONDS]:.0f} s)", last)


def collect_rows(grid_result) -> tuple[list[dict], list[dict]]:
    """Every report of every trial, read from its result.json (a CSV would turn the predictions'
    digit strings into numbers), with the seed, and `done` on a trial's last expected report; and the
    trials whose reports could not be read ({arm, seed, path, error}), so that none vanishes unsaid."""
    rows, unreadable = [], []
    for result in grid_result:
        if result.config is None:  # interrupted before it wrote anything: nothing to read, nothing lost
            continue
        arm, seed = _point_of(result)
        budgets = len(result.config["template"]["budgets"])
        try:
            reports = _reports(result)
        except UnreadableReports as error:
            unreadable.append({"arm": arm, "seed": seed, "path": error.path, "error": error.reason})
            continue
        for report in reports:
            rows.append({**report, "seed": seed,
                         "done": is_last_point(report["arm"], report.get("training_iteration"), budgets)})
    return rows, unreadable


def failed_points(grid_result) -> set[tuple[str, int]]:
    """(arm, seed) of the trials that failed. A trial interrupted before it wrote anything also carries an
    error (Tune cannot read its metrics) but no config: it is pending, not failed, and --resume runs it."""
    return {_point_of(result) for result in grid_result if result.error is not None and result.config is not None}


def _point_of(result) -> tuple[str, int]:
    point = result.config["point"]
    return point["arm"], point["seed"]


def is_last_point(arm: str, iteration: int | None, budgets: int) -> bool:
    """A single-point arm (full:*, kd_all) has one point, every other arm one per budget."""
    return iteration == (1 if parse_arm(arm).single_point else budgets)


class UnreadableReports(Exception):
    """A trial that reported, but whose result.json cannot be read (gone, unreadable, not JSON)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _reports(result) -> list[dict]:
    """The trial's reports; none for a trial that never reported (one an interruption left pending)."""
    path = f"{result.path}/result.json"
    try:
        with result.filesystem.open_input_stream(path) as stream:
            text = stream.read().decode("utf-8")
    except FileNotFoundError:
        if _reported(result):
            raise UnreadableReports(path, "the trial reported, but its result.json is missing") from None
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise UnreadableReports(path, f"{type(error).__name__}: {error}") from None
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as error:  # e.g. a line cut short when the driver was killed while writing it
        raise UnreadableReports(path, f"not JSON lines ({error})") from None


def _reported(result) -> bool:
    """Whether Tune holds a report of this trial (its last result has a training_iteration)."""
    return bool((result.metrics or {}).get("training_iteration"))


KEEP = ("arm", BUDGET, "seed")
QUERY_RECORD = ("row", "gold_label", "expert_label", "expert_entropy")  # the lists of a point's QUERY_LOG
QUERY_COLUMNS = ["arm", "seed", BUDGET, "round", *QUERY_RECORD]


def write_queries_csv(rows: list[dict], path: Path) -> None:
    """One line per queried row: which arm and seed asked, at which budget (its round: the budget's index),
    the row id, its hidden gold label, the expert's label and the expert's entropy (nats). An oracle arm's expert
    label is its row's gold label, entropy 0: studies recorded before 2026-12-07 logged the teachers' there."""
    lines = []
    for row in rows:
        if not row.get(QUERY_LOG):
            continue
        record = json.loads(row[QUERY_LOG])
        if parse_arm(row["arm"]).gives_gold:  # its labels are the gold ones, whatever an older study logged
            record = {**record, "expert_label": record["gold_label"], "expert_entropy": [0.0] * len(record["row"])}
        for position in range(len(record["row"])):
            lines.append({"arm": row["arm"], "seed": row["seed"], BUDGET: row[BUDGET],
                          "round": row[m.ROUND], **{key: record[key][position] for key in QUERY_RECORD}})
    frame = pd.DataFrame(lines, columns=QUERY_COLUMNS).sort_values(["arm", "seed", BUDGET], kind="stable")
    write_text(path, frame.to_csv(index=False))


def teacher_meta(prepared, pool: np.ndarray) -> dict:
    """The teachers' gold labels and accuracy for the report; none when no arm asked them (none prepared)."""
    teachers = prepared.teachers
    if teachers is None:
        return {"teacher_gold_labels": 0, "teacher_accuracy": {}, "ensemble_pool_accuracy": None}
    ensemble_pool = float((teachers.ensemble_probs("train")[pool].argmax(1)
                           == prepared.encoded["train"].labels[pool]).mean())
    return {"teacher_gold_labels": teachers.teacher_labels, "teacher_accuracy": teachers.accuracy,
            "ensemble_pool_accuracy": round(ensemble_pool, 4)}


# What Tune adds to every report: not the point's, so neither in study.csv nor carried (carry.POINTS keeps `done`).
RAY_COLUMNS = frozenset({"trial_id", "date", "timestamp", "time_this_iter_s", "time_total_s", "pid", "hostname",
                         "node_ip", "time_since_restore", "iterations_since_restore", "checkpoint_dir_name",
                         "should_checkpoint", "config", "training_iteration", "node_id"})


def write_outputs(folder: Path, plan: dict, prepared, rows: list[dict], unreadable: list[dict] | None = None) -> None:
    """study.csv, summary.json, report.md and the plots, from whatever has been measured so far; trials
    whose reports could not be read are listed in summary.json (unreadable_trials)."""
    if not rows:
        print("no point has been measured yet: no report written", flush=True)
        return
    points = {}
    for row in rows:  # a resumed trial may repeat a report: the last one counts
        points[(row["arm"], row[BUDGET], row["seed"])] = {k: v for k, v in row.items() if k not in RAY_COLUMNS}
    carry.write_points(folder, list(points.values()))
    latest = [{k: v for k, v in row.items() if k != "done"} for row in points.values()]
    write_queries_csv(latest, folder / QUERIES_CSV)
    frame = write_study_csv([{k: v for k, v in row.items() if k != QUERY_LOG} for row in latest], folder / STUDY_CSV)
    template = plan["template"]
    test_labels = prepared.encoded["test"].labels
    pool = candidate_rows(prepared)
    validation_labels = prepared.encoded["validation"].labels
    meta = {"teacher_split": prepared.provenance["data"]["teacher_split"], "initial": template["initial"],
            "stopping": describe_stopping(template), "selection": template["selection"],
            "stratified_initial": template["stratified_initial"],
            "validation_majority_rate": float(np.bincount(validation_labels).max() / len(validation_labels)),
            "pool_class_counts": np.bincount(prepared.encoded["train"].labels[pool],
                                             minlength=prepared.num_labels).tolist(),
            "label_names": list(prepared.label_names), "prices": plan.get("prices") or parse_prices(None),
            "charge_sunk": bool(plan.get("charge_sunk", False)),
            "warm_start": template["warm_start"], "recipe": template["recipe"], "pool_size": int(len(pool)),
            "validation_labels": len(prepared.encoded["validation"]), **teacher_meta(prepared, pool),
            "llm": template.get("llm", DEFAULT_LLM), "data": prepared.data_name,
            "student": prepared.provenance["data"]["student"],
            "teachers": prepared.provenance["data"]["teachers"],
            "trials_ended": len(carry.ended_trials(list(points.values()))), "trials_planned": len(grid(plan))}
    if unreadable:
        meta["unreadable_trials"] = unreadable
    study_file = folder / STUDY_FILE
    if study_file.is_file():  # code files changed while it was resumed (_note_code_changes); its runs (log_run)
        record = json.loads(study_file.read_text(encoding="utf-8"))
        meta.update(code_changes=record.get("code_changes", []), runs=record.get("runs", []))
    try:
        summary = summarise(frame, test_labels, list(template["budgets"]), meta)
    except ValueError as error:
        print(f"no summary yet: {error}", flush=True)
        return
    write_json(folder / SUMMARY_JSON, summary)
    write_report(summary, folder, study_plots.make_plots(folder, summary, frame, folder / QUERIES_CSV))
    print(f"\nstudy written to {folder}: {STUDY_CSV}, {SUMMARY_JSON}, report.md", flush=True)

