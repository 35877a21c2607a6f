"""Reading finished (or interrupted) sweeps back with Ray's own readers, and choosing from them.

Every choice here looks at `val_accuracy` of a trial's LAST report, as the searcher and the
scheduler did (and as `print_best` in tuning/sweep/experiment.py does). Test metrics are carried along
for the record only. Reading needs no running Ray: ExperimentAnalysis only parses the files."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from ray import tune
from ray.exceptions import RayTaskError

from trainables import metrics as m
from trainables.config import METHODS
from trainables.errors import UsageError
from trainables.model_card import teacher_accuracies  # noqa: F401 (analyze.py reads it from here)
from tuning.records import OPTUNA_JOURNAL, SWEEP_FILE, reached_the_end

COMPLETED, STOPPED, ERRORED, UNFINISHED = "completed", "stopped", "errored", "unfinished"
STATUSES = (COMPLETED, STOPPED, ERRORED, UNFINISHED)
LAST_METRICS = (m.VAL_ACCURACY, m.VAL_MACRO_F1, m.VAL_LOSS, m.TEST_ACCURACY, m.TEST_MACRO_F1, m.LABELS_USED,
                m.TEACHER_LABELS, m.VALIDATION_LABELS, m.EXPERT_QUERIES, m.TEACHER_LABELLED_ROWS, m.TRAIN_SECONDS,
                m.EPOCH, m.ROUND, m.EXPERT_LABEL_ACCURACY, "expert_label_accuracy_round", "pool_left",
                "training_iteration", m.EXPERT_CALLS, m.EXPERT_CACHE_HITS, m.EXPERT_SECONDS, m.EXPERT_TOKENS,
                m.EXPERT_PRICED_COST, m.EXPERT_PAID)
TEACHER_PREFIX = "teacher_accuracy/"
GOLD_LABELS = "gold_labels"  # every gold label that chose or trained a trial, each once (gold_labels below)


@dataclass
class TrialRecord:
    method: str
    trial_id: str
    status: str  # one of STATUSES
    config: dict
    last: dict  # the trial's last report ({} when it never reported)
    history: pd.DataFrame  # one row per report (empty when it never reported)
    error: str | None = None  # "Name: message" of the exception an errored trial raised
    experiment: str = ""
    checkpoint: str | None = None  # the folder of the checkpoint saved with the last report (absolute)

    @property
    def val_accuracy(self) -> float:
        value = self.last.get(m.VAL_ACCURACY)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else math.nan


@dataclass
class Experiment:
    path: Path
    method: str
    record: dict  # sweep.json: {"sweep": ..., "space": ..., "data": ...}
    trials: list[TrialRecord] = field(default_factory=list)
    root: Path | None = None  # the storage path the analysis names folders relative to

    @property
    def relative(self) -> str:
        return relative(self.path, self.root)

    @property
    def label(self) -> str:
        """'NAME' for a single-method sweep, 'NAME/METHOD' for a part of a `--method all` sweep."""
        return f"{self.path.parent.name}/{self.path.name}" if self.path.name in METHODS else self.path.name

    @property
    def space(self) -> dict:
        return self.record.get("space", {})

    @property
    def data(self) -> dict:
        return self.record.get("data", {})


# ---------------------------------------------------------------- finding and reading experiments

def find_experiments(paths: list[str], storage_path: str) -> list[Path]:
    """Every experiment (a folder with a sweep.json) in the given folders, at any depth, or under
    storage_path: a `--method all` sweep nests its experiments one level down, and a storage folder
    holding such sweeps two levels down."""
    if paths:
        found = [folder for path in paths for folder in _experiments_in(Path(path).expanduser())]
    else:
        root = Path(storage_path).expanduser()
        if not root.is_dir():
            raise UsageError(f"storage path {root} does not exist (run tuning/run.py first, or name experiments)")
        found = experiments_below(root)
        if not found:
            raise UsageError(f"no experiments under {root} (no folder holds a {SWEEP_FILE})")
    return list(dict.fromkeys(p.resolve() for p in found))  # once each, in order


def _experiments_in(path: Path) -> list[Path]:
    if not path.exists():
        raise UsageError(f"experiment folder {path} does not exist")
    nested = experiments_below(path) if path.is_dir() else []
    if not nested:
        raise UsageError(f"{path} is not an experiment of tuning/run.py (no {SWEEP_FILE} in it or its sub-folders)")
    return nested


def experiments_below(root: Path) -> list[Path]:
    """Folders holding a sweep.json, in name order. An experiment's own folder is not searched further:
    its trial folders hold checkpoints, never another experiment."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        if SWEEP_FILE in files:
            found.append(Path(folder))
            subfolders.clear()
    return found


def storage_root(folders: list[Path], storage_path: str) -> Path:
    """The folder reports name paths relative to: the storage path when every experiment lies in it,
    else the experiments' closest common folder."""
    root = Path(storage_path).expanduser().resolve()
    if all(folder.is_relative_to(root) for folder in folders):
        return root
    return Path(os.path.commonpath([str(folder.parent) for folder in folders]))


def relative(path, root: Path | None) -> str | None:
    """A path as reports show it: relative to the storage path (reports get committed and moved; an
    absolute /home/... path says nothing on another machine), unchanged when it lies outside."""
    if path is None:
        return None
    path = Path(path)
    return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)


def read_sweep_file(folder: Path) -> dict:
    try:
        record = json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {folder / SWEEP_FILE}: {error}") from None
    method = record.get("sweep", {}).get("method") if isinstance(record, dict) else None
    if method not in METHODS:
        raise UsageError(f"{folder / SWEEP_FILE} names no known method (got {method!r})")
    return record


def read_experiment(folder: Path, root: Path | None = None) -> Experiment:
    """One experiment with every trial, whatever its state. A sweep killed before Tune wrote its
    state holds no trials: it is returned empty rather than refused."""
    record = read_sweep_file(folder)
    experiment = Experiment(folder, record["sweep"]["method"], record, root=root)
    if not any(folder.glob("experiment_state-*.json")):
        return experiment
    analysis = tune.ExperimentAnalysis(str(folder))
    grid = tune.ResultGrid(analysis)
    # ResultGrid keeps the order of analysis.trials; the Trial objects carry the status and full config.
    for trial, result in zip(analysis.trials, grid, strict=True):
        experiment.trials.append(_trial_record(experiment, trial, result))
    return experiment


def _trial_record(experiment: Experiment, trial, result) -> TrialRecord:
    config = dict(result.config or trial.config or {})
    last = {k: v for k, v in (result.metrics or {}).items() if k != "config"}
    history = result.metrics_dataframe if result.metrics_dataframe is not None else pd.DataFrame()
    if not any(k in last for k in (m.VAL_ACCURACY, "training_iteration")):
        last = {}  # an errored trial that never reported holds only its trial_id
    error = error_line(result.error) if result.error is not None else None
    status = classify(trial.status, experiment.method, config, last, error is not None)
    checkpoint = result.checkpoint.path if result.checkpoint is not None else None  # Ray: the latest one
    return TrialRecord(experiment.method, trial.trial_id, status, config, last, history, error,
                       str(experiment.path), checkpoint)


def error_line(error) -> str:
    """'TrainingDiverged: loss became nan ...': the name and message of the exception a trial raised.
    Ray's ResultGrid hands back the exception object, unpickled by Ray from the error.pkl our own run wrote
    into our results folder (Result.error): a RayTaskError whose `cause` is the trial's own exception, or
    a RayActorError when the worker process died. Only when Ray could not pickle the exception is it the
    text of error.txt, whose last line names it."""
    cause = getattr(error, "cause", None) if isinstance(error, RayTaskError) else error
    if isinstance(cause, BaseException):
        message = str(cause).strip().splitlines()  # a RayActorError's message runs on over several lines
        return f"{type(cause).__name__}: {message[0]}" if message else type(cause).__name__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def classify(ray_status: str, method: str, config: dict, last: dict, errored: bool) -> str:
    """completed (ran its plan, or its own stopping rule ended it) / stopped (the scheduler ended it early) /
    errored / unfinished (the sweep was interrupted)."""
    if errored or ray_status == "ERROR":
        return ERRORED
    if ray_status != "TERMINATED" or not last:
        return UNFINISHED
    return COMPLETED if reached_the_end(method, config, last) else STOPPED


def read_all(folders: list[Path], root: Path | None = None) -> list[Experiment]:
    return [read_experiment(folder, root) for folder in folders]


# ---------------------------------------------------------------- what may be compared

# Settings that decide what a trial's accuracy means: the examples, the split, the student. Methods that
# learn from teachers also depend on which teachers, trained how. (cpus_per_trial and bf16 only change speed.)
COMPARED_DATA = ("dataset", "split_seed", "validation_size", "test_size", "max_train_examples", "max_length",
                 "extra", "student")
COMPARED_TEACHERS = ("teachers", "teacher_split", "teacher_epochs", "teacher_learning_rate", "teacher_batch_size")
# The Expert-Loop's expert (with its defaults): who labels the queries decides what the method is (the teachers, the
# oracle's gold labels, a language model), and it is fixed for a whole sweep, in its space (tuning/sweep/spaces.py).
# Refused like the settings above rather than split into methods of their own (active_loop@oracle): train.py and
# study.py read best_configs.json by method name, and would find no `active_loop` in it.
COMPARED_EXPERT = {"expert": "teachers", "expert_model": "", "expert_url": ""}


def setting_differences(experiments: list[Experiment]) -> list[str]:
    """'split_seed 0 (a/kd), 1 (b/kd)' for each compared setting on which the experiments differ."""
    differences = []
    for name in (*COMPARED_DATA, *COMPARED_TEACHERS, *COMPARED_EXPERT):
        users = [e for e in experiments if uses_setting(e, name)]
        values: dict[str, list[str]] = {}
        for experiment in users:
            value = json.dumps(compared_value(experiment, name), sort_keys=True, default=str)
            values.setdefault(value, []).append(experiment.relative)
        if len(values) > 1:
            differences.append(f"{name} " + ", ".join(f"{value} ({', '.join(where)})"
                                                      for value, where in values.items()))
    return differences


def uses_setting(experiment: Experiment, name: str) -> bool:
    """Supervised learns from no teacher, and only the Expert-Loop asks an expert."""
    if name in COMPARED_EXPERT:
        return experiment.method == "active_loop"
    return name in COMPARED_DATA or experiment.method != "supervised"


def compared_value(experiment: Experiment, name: str):
    """A data setting from sweep.json's data; the expert from its space, where a sweep without --expert has none."""
    if name in COMPARED_EXPERT:
        return experiment.space.get(name, COMPARED_EXPERT[name])
    return experiment.data.get(name)


# ---------------------------------------------------------------- counting and choosing

def status_counts(trials: list[TrialRecord]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for trial in trials:
        counts[trial.status] += 1
    return counts


def by_method(experiments: list[Experiment]) -> dict[str, list[TrialRecord]]:
    """method -> every trial of every experiment of that method, in the project's method order."""
    grouped = {method: [] for method in METHODS}
    for experiment in experiments:
        grouped[experiment.method].extend(experiment.trials)
    return {method: trials for method, trials in grouped.items()
            if trials or any(e.method == method for e in experiments)}


def best_trial(trials: list[TrialRecord]) -> TrialRecord | None:
    """The highest val_accuracy of a last report among the trials that ran their whole plan (completed: every
    planned epoch or round, or ended by their own stopping rule); on a tie the first. A trial stopped early (by
    ASHA, or unfinished) is scored mid-schedule, a kd trial at epoch 1 of 4 or an Expert-Loop trial at round 0,
    before it asked any expert: not what its settings, which train.py repeats, would give. Such trials compete
    only when no trial of the method completed (chosen_early says so). Errored trials are left out: their
    configuration is one that crashes when trained again."""
    candidates = [t for t in trials if t.status != ERRORED and not math.isnan(t.val_accuracy)]
    candidates = [t for t in candidates if t.status == COMPLETED] or candidates
    return max(candidates, key=lambda t: t.val_accuracy) if candidates else None


def chosen_early(best: dict) -> list[str]:
    """One line per method of best_configs.json's `methods` whose best trial did not run its whole plan: no trial
    of it did, so it was chosen on a shorter run's score."""
    return [f"{method}: no trial ran its whole plan, so the best was chosen among trials stopped early "
            f"({entry['ran']['status']}), on the score of a shorter run than its settings plan"
            for method, entry in best.items() if entry["ran"]["status"] != COMPLETED]


def asked_the_expert(trial: TrialRecord) -> bool:
    """Did an Expert-Loop trial get past round 0, the student trained on the initial gold pool alone?"""
    return ran(trial)["rounds"] >= 1


def ran(trial: TrialRecord) -> dict:
    """What the trial actually trained: {"epochs": reached, "planned": n} ({"rounds": ...} for the
    Expert-Loop), so a configuration stopped early is not mistaken for one that ran its epochs."""
    if trial.method == "active_loop":
        reached = trial.last.get(m.ROUND, trial.last.get("training_iteration", 0) - 1)
        return {"rounds": reached, "planned": trial.config.get("max_iterations"), "status": trial.status}
    reached = trial.last.get(m.EPOCH, trial.last.get("training_iteration"))
    return {"epochs": reached, "planned": trial.config.get("epochs"), "status": trial.status}


def experiment_of(trial: TrialRecord, experiments: list[Experiment]) -> Experiment:
    return next(e for e in experiments if str(e.path) == trial.experiment)


def gold_labels(trial: TrialRecord, data: dict) -> int | None:
    """Every gold label that chose or trained the trial, each once: the validation split's (they chose it) and the
    training split's that the student's loss (labels_used) or the teachers (teacher_labels) read. The last two
    overlap unless the Expert-Loop's pool excludes the teachers' share (teacher_split > 0): by default the teachers
    learn every training row, the student's among them, and kd's student reads every row, the teachers' among them,
    so one set holds the other and the larger counts. None when a report lacks a count (older sweeps)."""
    counts = [trial.last.get(key) for key in (m.LABELS_USED, m.TEACHER_LABELS, m.VALIDATION_LABELS)]
    if not all(isinstance(count, int | float) and math.isfinite(count) for count in counts):
        return None
    student, teachers, validation = (int(count) for count in counts)
    apart = trial.method == "active_loop" and float(data.get("teacher_split") or 0) > 0
    return validation + (student + teachers if apart else max(student, teachers))


def best_entry(trial: TrialRecord, experiment: Experiment) -> dict:
    """One method's entry of best_configs.json: what tuning/train.py --config reads, plus provenance."""
    return {
        "config": trial.config,
        "data": experiment.data,
        "val_accuracy": trial.last.get(m.VAL_ACCURACY),
        "test_accuracy": trial.last.get(m.TEST_ACCURACY),
        "labels_used": trial.last.get(m.LABELS_USED),
        "teacher_labels": trial.last.get(m.TEACHER_LABELS),
        "validation_labels": trial.last.get(m.VALIDATION_LABELS),
        GOLD_LABELS: gold_labels(trial, experiment.data),
        "expert_queries": trial.last.get(m.EXPERT_QUERIES),
        "teacher_labelled_rows": trial.last.get(m.TEACHER_LABELLED_ROWS),
        # who labelled the queries (active_loop) and what their labels cost (trainables/metrics.py)
        "expert": trial.config.get("expert", "teachers") if trial.method == "active_loop" else None,
        **{key: trial.last.get(key) for key in (m.EXPERT_CALLS, m.EXPERT_PRICED_COST, m.EXPERT_PAID)},
        "test_macro_f1": trial.last.get(m.TEST_MACRO_F1),
        "experiment": experiment.relative,
        "trial_id": trial.trial_id,
        "ran": ran(trial),
        # the checkpoint saved with the last report, the one val_accuracy above was measured on
        "checkpoint": relative(trial.checkpoint, experiment.root),
    }


def best_configs(experiments: list[Experiment], storage_path: str = "") -> dict:
    """`storage_path`: how to name the folder that `experiment` and `checkpoint` are relative to."""
    methods = {}
    for method, trials in by_method(experiments).items():
        best = best_trial(trials)
        if best is not None:
            methods[method] = best_entry(best, experiment_of(best, experiments))
    return {"created": datetime.now(UTC).isoformat(timespec="seconds"), "storage_path": storage_path,
            "methods": methods}


# ---------------------------------------------------------------- tables and files

def results_frame(experiments: list[Experiment]) -> pd.DataFrame:
    """One row per trial: where it came from, its status, its last metrics, its configuration."""
    rows = []
    for experiment in experiments:
        for trial in experiment.trials:
            row = {"method": trial.method, "trial_id": trial.trial_id, "status": trial.status,
                   "experiment": experiment.label, "experiment_path": experiment.relative}
            row.update({name: trial.last.get(name) for name in LAST_METRICS})
            row[GOLD_LABELS] = gold_labels(trial, experiment.data)
            row.update({k: v for k, v in trial.last.items() if k.startswith(TEACHER_PREFIX)})
            row.update({f"config/{k}": v for k, v in trial.config.items()})
            row["error"] = trial.error or ""
            rows.append(row)
    frame = pd.DataFrame(rows)
    # Fixed columns first, then teacher accuracies and settings grouped (each experiment adds its own).
    grouped = sorted(c for c in frame.columns if c.startswith(TEACHER_PREFIX)) + \
        [c for c in frame.columns if c.startswith("config/")]
    fixed = [c for c in frame.columns if c not in grouped and c != "error"]
    return frame[fixed + grouped + ["error"]] if rows else frame


# ---------------------------------------------------------------- hyperparameter importance

NOT_ENOUGH = "not enough trials"


def distribution(entry):
    """The Optuna distribution of one sweep.json space entry; None for a fixed value (not searched)."""
    # optuna: only for a sweep's stored study.
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: PLC0415

    if not isinstance(entry, dict):
        return None
    kind = entry.get("type")
    if kind == "choice":
        return CategoricalDistribution(list(entry["values"]))
    if kind == "int":
        return IntDistribution(int(entry["low"]), int(entry["high"]))
    return FloatDistribution(float(entry["low"]), float(entry["high"]), log=kind == "loguniform")


def searched(space: dict) -> dict:
    return {name: dist for name, entry in space.items() if name != "method" and (dist := distribution(entry))}


def min_trials_for_importance(settings: int) -> int:
    """fANOVA fits a random forest to (settings -> score): with fewer trials than this its split of the
    variance among the settings is noise (4 trials over 11 settings once printed confident numbers)."""
    return max(10, 2 * settings)


def stored_study(experiment: Experiment):
    """The Optuna study the sweep's searcher stored in the experiment folder (tuning/sweep/search.py), read
    without locking; None when there is none: a sweep over fixed settings (one trial per seed) has no
    searcher, and neither had a sweep on remote storage."""
    journal = experiment.path / OPTUNA_JOURNAL
    if not journal.is_file():  # checked first: JournalFileBackend creates a missing file
        return None
    import optuna  # noqa: PLC0415 (optuna: only for a sweep's stored study)
    from optuna.storages import JournalStorage  # noqa: PLC0415
    from optuna.storages.journal import JournalFileBackend  # noqa: PLC0415

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    names = optuna.get_all_study_names(storage)
    # The study is named after the experiment (run.py --name, or the method under a `--method all` folder).
    name = experiment.path.name if experiment.path.name in names else (names[0] if len(names) == 1 else None)
    return optuna.load_study(study_name=name, storage=storage) if name else None


def records_study(space: dict, trials: list[TrialRecord]):
    """An in-memory Optuna study of the completed trials, for experiments without a stored study. Trials
    ASHA stopped are left out, as the stored study marks them PRUNED: their score is from a shorter run."""
    import optuna  # noqa: PLC0415 (optuna: only for a sweep's stored study)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = searched(space)
    study = optuna.create_study(direction="maximize")
    for trial in trials:
        if trial.status != COMPLETED or math.isnan(trial.val_accuracy) or not set(distributions) <= set(trial.config):
            continue  # stopped/errored/unfinished trials, or trials from before a setting was searched
        params = {name: trial.config[name] for name in distributions}
        try:
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                      value=trial.val_accuracy))
        except ValueError:
            continue  # a value outside the recorded space: the trial came from an edited sweep
    return study


def completed(study) -> list:
    import optuna  # noqa: PLC0415 (optuna: only for a sweep's stored study)

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def importance_shortfall(study, searched_settings: dict | None = None) -> str | None:
    """Why the study's completed trials are too few for fANOVA to mean anything, or None. The searched
    settings are those of the study's trials (a stored study holds its pruned and failed ones too), or
    `searched_settings` when given."""
    used = completed(study)
    settings = searched_settings or {name for trial in study.get_trials(deepcopy=False)
                                     for name in trial.distributions}
    needed = min_trials_for_importance(len(settings))
    if len(used) < needed:
        return (f"{NOT_ENOUGH}: {len(used)} completed trial(s) over {len(settings)} searched setting(s); "
                f"fANOVA needs at least {needed} (10, or twice the settings) before its importances mean anything")
    if not any(len({str(t.params.get(name)) for t in used}) > 1 for name in settings):
        return f"{NOT_ENOUGH}: every completed trial has the same settings"
    return None


def param_importances(space: dict, trials: list[TrialRecord], study=None) -> dict[str, float] | str:
    """fANOVA importance (seeded) of each searched setting for the last val_accuracy, from the completed
    trials of `study` (the stored one, which the importance plot draws too) or, without one, of the
    trials' records. A string saying why when there is too little to learn from."""
    import optuna  # noqa: PLC0415 (optuna: only for a sweep's stored study)

    if study is None:
        study = records_study(space, trials)
        shortfall = importance_shortfall(study, searched(space))
    else:
        shortfall = importance_shortfall(study)
    if shortfall:
        return shortfall
    try:
        importances = optuna.importance.get_param_importances(study, evaluator=importance_evaluator())
    except RuntimeError:  # fANOVA finds zero variance: every trial scored the same
        return f"{NOT_ENOUGH}: all {len(completed(study))} completed trials have the same val_accuracy"
    return {name: float(value) for name, value in importances.items()}


def importance_evaluator():
    """fANOVA with a fixed seed: the table and the plot each run it and must show the same numbers, run
    after run (Optuna's default evaluator, PED-ANOVA, is another method than the report names)."""
    import optuna  # noqa: PLC0415 (optuna: only for a sweep's stored study)

    return optuna.importance.FanovaImportanceEvaluator(seed=0)
