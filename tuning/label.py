"""A person's answers back into a paused Expert-Loop, which then continues where it stopped.

    expert-loop train --method active_loop --expert human --out runs/h   # round 1's queries: runs/h-queries/
    expert-loop label --checkpoint runs/h --import answers.csv          # answers in; rounds go on to the next pause
    expert-loop label --checkpoint runs/h                               # a run stopped between rounds goes on

The answers file is the round's CSV with its `label` column filled in, or a Label Studio export (JSON or
JSON-MIN) of the round's tasks (an earlier round's rows in it pass when answered as before). Every problem (a
row never queried, a row without an answer, a label outside the label set) ends with one message and exit
status 2 before anything is written; answers that pass are first stored in the checkpoint's state, so a run
that fails afterwards never asks the person again.

A run stopped (killed, or a write failing) after a round's checkpoint and before its next round's queries, or
after an import and before training on it, waits for no answers: without --import, label continues it to the
next pause, as the run would have gone on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

from trainables.atomic import write_text
from trainables.checkpoint import TRIAL_STATE, read_run_config
from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.experts.spec import parse_expert
from trainables.metrics import STOPPED
from tuning.assets.settings import DataSettings
from tuning.cli import Parser, main_guard


def parse_args(argv=None):
    parser = Parser(prog="tuning/label.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="the paused run's checkpoint folder (train.py's --out)")
    parser.add_argument("--import", dest="answers", default=None, metavar="FILE",
                        help="the answers: the round's CSV with 'label' filled in, or a Label Studio JSON export; "
                             "without it, a run stopped between rounds (killed, or a write failing) goes on to its "
                             "next round's queries")
    return parser.parse_args(argv)


def human_run(folder: Path) -> tuple[dict, dict] | None:
    """(run_config.json, the loop's state; {} before its first round) of a checkpoint whose run asks a person
    (--expert human), None for any other run; a UsageError when the folder is not a readable checkpoint."""
    run_config = read_run_config(folder)
    trial = run_config.get("trial", {})
    if trial.get("method") != "active_loop" or parse_expert(str(trial.get("expert", ""))).kind != "human":
        return None
    path = folder / TRIAL_STATE
    try:
        return run_config, (json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {})
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not valid JSON: {error}") from None


def human_checkpoint(folder: Path) -> tuple[dict, dict]:
    """(run_config.json, the loop's state) of a run with --expert human; a UsageError for any other folder."""
    found = human_run(folder)
    if found is None:
        raise UsageError(f"{folder} is not an Expert-Loop run with --expert human")
    if not found[1]:
        raise UsageError(f"{folder} holds no loop state ({TRIAL_STATE}): it cannot be continued")
    return found


def ended(run_config: dict, state: dict) -> str | None:
    """Why a run with --expert human and no pending rows has no round after its last (what the loop checks before
    querying the next), None when it has one."""
    trial, last = TrialConfig.from_dict(run_config["trial"]), state.get("round", 0)
    if last >= trial.max_iterations:
        return f"all its {trial.max_iterations} rounds are done (max_iterations)"
    if (run_config.get("metrics") or {}).get(STOPPED):
        return f"its stopping criterion ({trial.stop}) stopped it after round {last}"
    if not state.get("pool"):
        return f"its pool of unlabelled rows ran out after round {last}"
    return None


def situation(folder: Path, run_config: dict, state: dict) -> tuple[str, str | None]:
    """What a run with --expert human is at, said as 'it ...', and the command that continues it (None: it is
    complete). The checkpoint is saved after every round's training and at every pause; a run stopped in between
    (killed, a write failing) is left with no pending rows, or with pending rows whose answers are stored."""
    after, waiting = state.get("round", 0), state.get("pending") or []
    if unanswered := [row for row in waiting if str(row) not in state.get("answers", {})]:
        from tuning.train import label_command, queries_folder  # noqa: PLC0415 (light; train.py imports this file)

        files = queries_folder(folder) / f"round-{after + 1}-queries.csv"
        return (f"waits for a person's answers to round {after + 1} ({len(unanswered)} rows, in {files} or its "
                "Label Studio tasks)", label_command(folder))
    if waiting:
        return f"stopped after round {after + 1}'s answers were imported, before it trained on them", go_on(folder)
    if why := ended(run_config, state):
        return f"is complete: {why}", None
    return (f"stopped after round {after} before it wrote round {after + 1}'s queries (killed, or a write failed)",
            go_on(folder))


def go_on(folder: Path) -> str:
    """The command that continues a run stopped between two of its steps."""
    return f"expert-loop label --checkpoint {folder}"


def paused_run(folder: Path) -> tuple[dict, dict]:
    """(run_config.json, the loop's state) of a run waiting for a person; a UsageError otherwise."""
    run_config, state = human_checkpoint(folder)
    if not state.get("pending"):
        said, command = situation(folder, run_config, state)
        raise UsageError(f"{folder} waits for no answers: it {said}" +
                         (f"; `{command}` (without --import) continues it" if command else ""))
    return run_config, state


def stopped_run(folder: Path) -> tuple[dict, dict]:
    """(run_config.json, the loop's state) of a run that goes on without new answers; a UsageError otherwise."""
    run_config, state = human_checkpoint(folder)
    said, command = situation(folder, run_config, state)
    if command != go_on(folder):
        raise UsageError(f"{folder} {said}" + (f": `{command}`" if command else ""))
    print(f"{folder} {said}: continuing it", flush=True)
    return run_config, state


def import_answers(folder: Path, answers_file: Path) -> tuple[dict, dict]:
    """Check the answers against the pending rows and store them in the checkpoint's state (atomically)."""
    import numpy as np  # noqa: PLC0415 (after the arguments are parsed)

    from trainables.experts.human import read_answers  # noqa: PLC0415

    run_config, state = paused_run(folder)
    earlier = {int(row): int(np.argmax(probs)) for row, probs in state.get("answers", {}).items()}
    labels = read_answers(answers_file, run_config["label_names"], state["pending"], earlier)
    one_hot = np.eye(len(run_config["label_names"]))[labels]
    state["answers"] = {**state.get("answers", {}),
                        **{str(row): probs.tolist() for row, probs in zip(state["pending"], one_hot, strict=True)}}
    write_text(folder / TRIAL_STATE, json.dumps(state))
    print(f"{len(labels)} answers imported into {folder}", flush=True)
    return run_config, state


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = Path(args.checkpoint)
    if args.answers is None:
        run_config, state = stopped_run(folder)
    else:
        run_config, state = import_answers(folder, Path(args.answers))
    trial = TrialConfig.from_dict(run_config["trial"])
    from trainables.checkpoint import load_weights  # noqa: PLC0415 (torch)
    from trainables.models import build_model  # noqa: PLC0415
    from tuning.assets.prepare import prepare  # noqa: PLC0415
    from tuning.train import needs_teachers, queries_folder, train_into  # noqa: PLC0415

    settings = DataSettings.from_dict(run_config["provenance"]["data"])
    prepared = prepare(settings, need_teachers=needs_teachers(trial), expert=trial.expert,
                       human_folder=queries_folder(folder))
    if prepared.provenance["data_fingerprint"] != run_config["provenance"].get("data_fingerprint"):
        raise UsageError(f"the data {settings.dataset} differ from those {folder} was trained on: its row ids would "
                         "name other rows (the answers stay stored in its state)")
    model = build_model(prepared.student, trial.seed)
    load_weights(model, folder)
    return train_into(folder, trial, prepared, resume=state, model=model, metrics=run_config.get("metrics"))


if __name__ == "__main__":
    main_guard(main)
