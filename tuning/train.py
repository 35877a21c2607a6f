"""One training run without a search: the method's defaults, a best_configs.json entry, or --set.

    python tuning/train.py --method kd --config ray_results/analysis/best_configs.json --out runs/kd
    python tuning/train.py --method supervised --set learning_rate=3e-5 --set epochs=2
    python tuning/train.py --method active_loop --expert llm:smollm2 --expert-price 0.002
    python tuning/train.py --method active_loop --expert human --out runs/human   # then: expert-loop label ...

Writes a checkpoint folder (model.safetensors, config.json, tokenizer, run_config.json) after every
epoch or round, replacing the previous one atomically, and prints the metrics as it goes. With
--expert human a round's queries go to OUT-queries/ and the run stops; `expert-loop label --import FILE
--checkpoint OUT` reads the person's answers and continues (tuning/label.py)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

from trainables.atomic import replace_folder, staging_folder
from trainables.config import METHODS, TrialConfig
from trainables.errors import UsageError
from trainables.experts.spec import parse_expert  # light, and imported by trainables.config anyway
from tuning.assets.settings import DataSettings
from tuning.cli import (
    Parser,
    add_data_arguments,
    add_expert_arguments,
    check_can_create,
    command_line_settings,
    data_settings,
    expert_assignments,
    main_guard,
    parse_assignments,
    parse_with_explicit,
)

# torch and transformers are imported in main(), after the arguments are parsed: --help answers at once.


def parse_args(argv=None):
    parser = Parser(prog="tuning/train.py", description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True, choices=METHODS, help="the method to train")
    parser.add_argument("--config", default=None,
                        help="best_configs.json (from analyze.py: the method's best settings and its sweep's data "
                             "settings), a checkpoint's run_config.json (the same run again) or a JSON settings "
                             "file (default: the defaults of trainables/config.py)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override one setting (repeatable), e.g. learning_rate=3e-5")
    parser.add_argument("--out", default=None,
                        help="a new (or empty) checkpoint folder: one holding files is refused, never trained over "
                             "(default: checkpoints/METHOD-DATE-TIME)")
    add_expert_arguments(parser)
    add_data_arguments(parser, scope="run")
    return parse_with_explicit(parser, argv)


def read_config_file(path: str, method: str) -> dict:
    """{'config': {...}, 'data': {...}} for `method`: from best_configs.json or a plain settings file."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"config file {file} does not exist")
    try:
        loaded = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"config file {file} is not valid JSON: {error}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"config file {file} must hold a JSON object")
    if "methods" in loaded:  # best_configs.json
        if method not in loaded["methods"]:
            raise UsageError(f"{file} has no best configuration for method '{method}'")
        return loaded["methods"][method]
    if isinstance(loaded.get("trial"), dict) and isinstance(loaded.get("provenance"), dict):
        return run_config_entry(file, loaded, method)
    return {"config": loaded}


def run_config_entry(file: Path, loaded: dict, method: str) -> dict:
    """A checkpoint's run_config.json: its settings and data settings, so the run can be redone (the
    model card's command)."""
    trained = loaded["trial"].get("method")
    if trained != method:
        raise UsageError(f"{file} is a checkpoint of method '{trained}', not '{method}'")
    return {"config": loaded["trial"], "data": loaded["provenance"].get("data")}


def sweep_data_settings(args) -> DataSettings:
    """The data settings of the sweep the config came from (every field, also those without a flag,
    such as the teachers' learning rate), with the flags typed here (and --smoke-test's) on top."""
    stored = read_config_file(args.config, args.method).get("data") if args.config else None
    if not stored:
        return data_settings(args)
    return dataclasses.replace(DataSettings.from_dict(stored), **command_line_settings(args))


def trial_config(args) -> TrialConfig:
    values = read_config_file(args.config, args.method).get("config", {}) if args.config else {}
    values = {**values, **parse_assignments(args.set, "--set"), **expert_assignments(args), "method": args.method}
    return TrialConfig.from_dict(values)


def main(argv=None) -> int:
    args = parse_args(argv)
    trial = trial_config(args)
    if expert_assignments(args) and trial.method != "active_loop":
        raise UsageError(f"--expert and its settings are for --method active_loop (the Expert-Loop); {trial.method} "
                         "would ignore them")
    settings = sweep_data_settings(args)
    out = Path(args.out or f"checkpoints/{args.method}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_can_create(out, "--out")  # found otherwise when the first epoch's checkpoint is written
    refuse_to_overwrite(out)
    refuse_to_overwrite_queries(out, trial)
    if note := round_length_note(trial):
        print(note, flush=True)
    trial = trial.decided()  # "auto" precision: decided here, where it trains, and recorded in the checkpoint
    from tuning.assets.prepare import prepare  # noqa: PLC0415 (torch: once the arguments are checked)

    prepared = prepare(settings, need_teachers=needs_teachers(trial), expert=trial.expert,
                       human_folder=queries_folder(out))
    return train_into(out, trial, prepared)


def refuse_to_overwrite(out: Path) -> None:
    """train.py always trains afresh (a paused --expert human run is continued by label.py, never here), so an --out
    that exists is refused: its first epoch would replace an earlier run's checkpoint, or a sweep trial's. An empty
    folder (made beforehand by `mkdir`) replaces nothing and is used."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not (out / "run_config.json").is_file():
        raise UsageError(f"--out {out} exists and is not a checkpoint of this tool: refusing to overwrite it")
    refuse_to_drop_answers(out)  # first: it says how to continue that run
    raise UsageError(f"--out {out} already holds a checkpoint, which this run would replace: choose another --out, "
                     "or delete it first")


def refuse_to_overwrite_queries(out: Path, trial: TrialConfig) -> None:
    """A run with --expert human writes round 1's files for a person into OUT-queries: files already there (a person
    may be filling one in) are never replaced."""
    if trial.method != "active_loop" or parse_expert(trial.expert).kind != "human":
        return
    folder = check_can_create(queries_folder(out), "the queries folder of --out")
    if folder.is_dir() and any(folder.iterdir()):
        raise UsageError(f"{folder} already holds query files for a person, which this run would replace: choose "
                         "another --out, or delete that folder first")


def refuse_to_drop_answers(out: Path) -> None:
    """A checkpoint holding a person's answers is never trained over from scratch: they cost a person's time. One
    of a run with --expert human that can go on says what it is at and how to continue it."""
    from tuning.label import human_run, situation  # noqa: PLC0415 (a checkpoint's files, read only when --out holds one)

    if not (out / "run_config.json").is_file():
        return  # not a checkpoint of this tool: nothing of a person's in it
    found = human_run(out)
    if found is None or not found[1]:
        return
    said, command = situation(out, *found)
    if command is not None:
        raise UsageError(f"--out {out} holds a run with --expert human that {said}: continue it with `{command}`, "
                         "or choose another --out")
    if found[1].get("answers"):
        raise UsageError(f"--out {out} holds a run with --expert human that {said}, and the person's answers it "
                         "trained on: choose another --out")


def round_length_note(trial: TrialConfig) -> str | None:
    """An Expert-Loop run trains `epochs` epochs a round unless round_steps is set (old configs mean that): said
    once, since a few epochs of a round's rows are few optimiser steps."""
    if trial.method != "active_loop" or trial.round_steps:
        return None
    return (f"each round trains {trial.epochs} epochs (round_steps 0): a round's few hundred rows are few steps an "
            "epoch, and rounds of 21-96 steps left 5 of 8 sweep students at the majority class; --set "
            "round_steps=600 trains about 600 optimiser steps a round (sweeps search 200-1000)")


def needs_teachers(trial: TrialConfig) -> bool:
    """kd distils them; the Expert-Loop reads them with the teachers or the oracle as its expert."""
    return trial.method == "kd" or (trial.method == "active_loop" and parse_expert(trial.expert).needs_teachers)


def queries_folder(out: Path) -> Path:
    """Where a person's round files go: beside the checkpoint, which is replaced whole after every round."""
    return out.parent / f"{out.name}-queries"


def train_into(out: Path, trial: TrialConfig, prepared, resume: dict | None = None, model=None,
               metrics: dict | None = None) -> int:
    """Train (or continue from `resume` and `model`, whose last report was `metrics`), replacing the checkpoint
    in `out` after every epoch or round. A round that waits for a person saves the loop's state there (with the
    last report's metrics) and says what to do next."""
    from trainables.checkpoint import save_checkpoint  # noqa: PLC0415 (torch)
    from trainables.experts.human import AwaitingLabels  # noqa: PLC0415
    from trainables.functions import run_method  # noqa: PLC0415

    last: dict = dict(metrics or {})

    def report(metrics: dict, model, state: dict) -> None:
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                          if not k.startswith("teacher_accuracy/"))
        print(shown, flush=True)
        last.clear()
        last.update(metrics)
        replace_checkpoint(out, lambda folder: save_checkpoint(folder, model, prepared, trial, metrics, state))

    try:
        run_method(trial, prepared, report, resume=resume, model=model)
    except AwaitingLabels as pause:
        replace_checkpoint(out, lambda folder, paused=pause: save_checkpoint(folder, paused.model, prepared, trial,
                                                                             last, paused.state))
        print(f"round {pause.state['round'] + 1}: {len(pause.rows)} rows for a person to label:\n"
              f"  {pause.files.csv} (fill in the column 'label'), or import {pause.files.tasks} into Label Studio "
              f"with the interface {pause.files.label_config}\n"
              f"then: {label_command(out)}", flush=True)
        return 0
    print(f"checkpoint: {out}")
    return 0


def label_command(out: Path) -> str:
    return f"expert-loop label --checkpoint {out} --import ANSWERS.csv (or a Label Studio JSON export)"


def replace_checkpoint(out: Path, write) -> None:
    """Write into a fresh sibling folder, then swap it in: a kill never leaves a half-written checkpoint."""
    with staging_folder(out, prefix=f".{out.name}-") as staging:
        write(staging)
        replace_folder(staging, out)


if __name__ == "__main__":
    main_guard(main)
