"""Command-line plumbing shared by the entry points (run.py, study.py, train.py, label.py, evaluate.py, analyze.py,
fetch_assets.py).

Every entry point runs inside `main_guard`: bad input (a UsageError, or an argparse error) ends with
one line on stderr and exit status 2, before Ray starts and before anything is written."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from trainables.errors import ExpertError, UsageError
from trainables.experts.spec import parse_expert  # light: no torch
from tuning.assets.catalog import DATASET_PRESETS  # light, as is settings: --help imports no torch, Ray
from tuning.assets.settings import SMOKE_SETTINGS, DataSettings
from tuning.trials.ray_session import RaySettings  # light: Ray is imported when a session starts

USAGE_ERROR = 2
DEFAULT_STORAGE = "ray_results"  # --storage-path of run.py, study.py and analyze.py when not given
# The installed command when tuning/main.py dispatched this process (`expert-loop run ...`), else None: the
# commands a run prints (resume, analyze) are then spelled the way the user started it.
_installed_command: str | None = None


def started_as(command: str) -> None:
    global _installed_command  # noqa: PLW0603 (one process, one way it was started)
    _installed_command = command


def command_words(script: str) -> list[str]:
    """How to run tuning/<script>.py as this process was run: `expert-loop <script>` after the installed
    command (which works from any folder), else `python tuning/<script>.py` (from the project's root)."""
    if _installed_command:
        return [_installed_command, script.replace("_", "-")]
    return ["python", f"tuning/{script}.py"]


def resume_command(args: argparse.Namespace, name: str, *extra: str, script: str = "run") -> str:
    """The command that continues experiment (or study, script="study") `name` as this one ran: the same
    storage path and cluster, shell-quoted, through the installed command if that started it."""
    words = [*command_words(script), "--resume", "--name", name, "--storage-path", args.storage_path]
    if args.address:
        words += ["--address", args.address]
    return shlex.join([*words, *extra])


def closing_hints(args: argparse.Namespace, name: str, errored: bool = False) -> list[str]:
    """What to run after a sweep, naming the experiment's own folder (where its trials' TensorBoard event
    files are, not Ray's temporary session folder); --storage-path when the user gave one."""
    folder = f"{args.storage_path.rstrip('/')}/{name}"
    analyze = [*command_words("analyze"), folder]
    if args.storage_path != DEFAULT_STORAGE:
        analyze += ["--storage-path", args.storage_path]
    hints = [f"compare the methods:   {shlex.join(analyze)}",
             f"curves in TensorBoard: tensorboard --logdir {shlex.quote(folder)}"]
    if errored:
        hints.append(f"re-run errored trials: {resume_command(args, name, '--retry-errored')}")
    return hints


def ray_settings(args: argparse.Namespace) -> RaySettings:
    """run.py's and study.py's --address, --dashboard and --verbose: how the command reaches Ray."""
    return RaySettings(address=args.address, dashboard=args.dashboard, verbose=args.verbose)


class _YamlLoader(yaml.SafeLoader):
    """safe_load, but 1e-4 is a float: YAML 1.1 wants a dot (1.0e-4) and reads '1e-4' as a string."""


_YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                  re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                  list("-+0123456789."))


def load_yaml(text: str):
    """Values of --set/--fix and search-space files: plain data only (a SafeLoader)."""
    return yaml.load(text, Loader=_YamlLoader)


class DefaultsFormatter(argparse.HelpFormatter):
    """Each flag's help ends with its default, unless the help already says it or there is none to show
    (False: a switch; None: decided elsewhere, which the help then says in words). A data flag left at
    None shows DataSettings' value, the one it falls back to."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS:
            return text
        if action.default is None and action.dest in DATA_FLAGS:
            return f"{text} (default: {_shown(data_default(action.dest))})".replace("%", "%%")
        if action.default is None or action.default is False or action.default == []:
            return text
        return f"{text} (default: %(default)s)"


def data_default(dest: str):
    """DataSettings' default for a data flag's argparse dest."""
    return next(f.default for f in dataclasses.fields(DataSettings) if f.name == DATA_FLAGS[dest])


def _shown(value) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and exit status 2, and no abbreviations: with
    them `--data x.csv` meant --dataset, and a later flag sharing the prefix would silently change it.
    --help shows the defaults (DefaultsFormatter)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


def main_guard(main: Callable[[], int | None]) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from tokenizers
    try:
        status = main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        status = USAGE_ERROR
    except ExpertError as error:  # not the input's fault: the expert failed; its message says what was kept
        print(f"error: {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt as interrupt:  # its message, when there is one, says how to continue
        print(f"interrupted: {interrupt}" if str(interrupt) else "interrupted", file=sys.stderr)
        status = 130
    sys.exit(status or 0)


# Data flags (argparse dest -> DataSettings field). They default to None, meaning "not given": the
# value then comes from the entry point's own default (set_defaults), else --smoke-test's, else DataSettings'.
DATA_FLAGS = {"dataset": "dataset", "student": "student", "teachers": "teachers", "seed": "split_seed",
              "max_length": "max_length", "validation_size": "validation_size", "test_size": "test_size",
              "max_train_examples": "max_train_examples", "cpus_per_trial": "cpus_per_trial",
              "teacher_epochs": "teacher_epochs", "teacher_split": "teacher_split", "bf16": "bf16"}
ENTRY_DEFAULTS = "data_defaults"  # attribute of the parsed args: the entry point's set_defaults of data flags
TYPED_FLAGS = "typed_flags"  # attribute of the parsed args: the flags on the command line, as typed (typed_flags)


# How the data flags' help reads in each entry point: what they stay fixed for, what the seed seeds
# (a sweep's split seed also seeds its searcher), what the CPUs are for.
SCOPES = {
    "sweep": ("fixed for a whole sweep", "seeds the data split and the searcher", "CPUs (torch threads) per trial"),
    "study": ("fixed for the whole study", "seeds the data split (each arm runs --seeds seeds of its own)",
              "CPUs (torch threads) per trial"),
    "run": ("with --config, those of its sweep unless given here", "seeds the data split",
            "torch threads of the student's training"),
}


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """run.py's and study.py's --verbose: Ray's own output is kept out of the terminal otherwise."""
    parser.add_argument("--verbose", action="store_true",
                        help="also show Ray's own output: its experiment table and the trials' informational log "
                             "lines, such as \"Checkpoint successfully created\"")


def add_data_arguments(parser: argparse.ArgumentParser, scope: str = "sweep") -> None:
    """The data flags, with help worded for `scope` (a SCOPES key). Their defaults are None ("not
    given"); --help shows the value each falls back to (DefaultsFormatter)."""
    fixed, seed_help, cpus_help = SCOPES[scope]
    group = parser.add_argument_group(f"data and models ({fixed}; --smoke-test changes the defaults of those "
                                      "not given)")
    group.add_argument("--dataset", default=None,
                       help=f"preset ({', '.join(DATASET_PRESETS)}), a CSV/JSON/JSONL/Parquet file or folder, "
                            "or a Hugging Face data set name (needs a network)")
    group.add_argument("--student", default=None,
                       help="preset (minilm-l3, minilm-l6, ...), a local model folder, or a hub name")
    group.add_argument("--teachers", default=None,
                       help="comma-separated presets, folders, fine-tuned checkpoints or hub names")
    group.add_argument("--seed", type=int, default=None, help=seed_help)
    group.add_argument("--max-length", type=int, default=None, help="tokens per sequence")
    group.add_argument("--validation-size", type=_size, default=None,
                       help="examples (or a share, below 1) held out when the data have no validation split")
    group.add_argument("--test-size", type=_size, default=None,
                       help="examples (or a share, below 1) held out when the data have no test split")
    group.add_argument("--max-train-examples", type=int, default=None,
                       help="a stratified subset of the training split, for quick looks (default: the whole split)")
    group.add_argument("--cpus-per-trial", type=int, default=None, help=cpus_help)
    group.add_argument("--teacher-epochs", type=int, default=None, help="epochs of each teacher's fine-tuning")
    group.add_argument("--teacher-split", type=float, default=None,
                       help="> 0: fine-tune the teachers only on this stratified share of the training split, "
                            "which the Expert-Loop's pool then excludes")
    group.add_argument("--bf16", nargs="?", const="true", default=None, metavar="{auto,true,false}",
                       help="teachers' bfloat16 autocast: auto (default: where this CPU computes bfloat16 natively "
                            "and is measured faster), true or false; a teacher cached in either precision is reused")
    group.add_argument("--smoke-test", action="store_true",
                       help="seconds, not minutes: a tiny random model on a few dozen generated examples")


EXPERT_KINDS = "teachers, oracle, llm:<preset or .gguf file>, openai or human"


def add_expert_arguments(parser: argparse.ArgumentParser, kinds: str = EXPERT_KINDS) -> None:
    """--expert (its help lists the `kinds` this command accepts) and its settings (TrialConfig's expert,
    expert_url, expert_model, expert_price)."""
    group = parser.add_argument_group("the Expert-Loop's expert (active_loop)")
    group.add_argument("--expert", default=None,
                       help=f"who labels the queried rows: {kinds} (default: teachers; llm:smollm2 is a small "
                            "local model, offline)")
    group.add_argument("--expert-url", default=None,
                       help="--expert openai: the API's base URL, e.g. http://127.0.0.1:8080/v1: https, or plain "
                            "http to this machine only (the key is read from OPENAI_API_KEY, never from a flag or "
                            "the URL)")
    group.add_argument("--expert-model", default=None, help="--expert openai: the model's name on that endpoint")
    group.add_argument("--expert-price", type=float, default=None,
                       help="what one expert label costs, in your unit (reports: expert_priced_cost, expert_paid)")


def expert_assignments(args: argparse.Namespace, allow_human: bool = True) -> dict:
    """The expert flags given, as TrialConfig settings (they win over --set and --config)."""
    given = {field: getattr(args, field) for field in ("expert", "expert_url", "expert_model", "expert_price")
             if getattr(args, field, None) is not None}
    if not allow_human:
        refuse_human_expert(given.get("expert"))
    spec = parse_expert(str(given["expert"])) if given.get("expert") else None
    if spec is not None and spec.kind == "llm":  # a .gguf file here: kept absolute, as the data paths are
        given["expert"] = str(dataclasses.replace(spec, model=absolute_if_local(spec.model)))
    return given


def refuse_human_expert(expert) -> None:
    """A sweep's or a study's trials would wait in Ray workers for a person no terminal reaches: a person labels
    in one run of train.py. For --expert and for an expert set any other way (--fix, a --space file)."""
    if str(expert or "").strip().lower() == "human":
        raise UsageError("--expert human pauses the run for a person after each round: use "
                         "`expert-loop train --method active_loop --expert human` (one run), not a sweep or a study")


def _size(text: str) -> int | float:
    value = float(text)
    return int(value) if value >= 1 else value


def typed_data_settings(args: argparse.Namespace) -> dict:
    """DataSettings field -> value for every data flag the user gave (a flag left at None was not given), local
    files and folders made absolute."""
    values = _as_fields({dest: getattr(args, dest, None) for dest in DATA_FLAGS})
    if "dataset" in values and values["dataset"] not in (*DATASET_PRESETS, "smoke"):  # presets are read first
        values["dataset"] = absolute_if_local(values["dataset"])
    if "student" in values:
        values["student"] = absolute_if_local(values["student"])
    if "teachers" in values:
        values["teachers"] = tuple(absolute_if_local(name) for name in values["teachers"])
    return values


def absolute_if_local(name: str) -> str:
    """A name that is a file or folder here (a model's path is read before a preset of the same name), made
    absolute: sweep.json and study.json keep it, and a --resume typed from another folder must read the same
    data and models, not what the relative path names there. Presets and names that exist nowhere stay as typed."""
    path = Path(name).expanduser()
    return str(path.absolute()) if path.exists() else name


def _as_fields(flags: dict) -> dict:
    values = {DATA_FLAGS[dest]: value for dest, value in flags.items() if value is not None}
    if isinstance(values.get("teachers"), str):
        values["teachers"] = split_names(values["teachers"])
    return values


def command_line_settings(args: argparse.Namespace) -> dict:
    """The data settings the command line decides: the entry point's defaults, then --smoke-test's,
    then what the user typed (which always wins). Fields absent here keep DataSettings' default (or,
    for train.py --config, the sweep's)."""
    values = _as_fields(getattr(args, ENTRY_DEFAULTS, {}))
    if args.smoke_test:
        values.update(SMOKE_SETTINGS)
    values.update(typed_data_settings(args))
    return values


def data_settings(args: argparse.Namespace) -> DataSettings:
    return DataSettings(**command_line_settings(args))


def parse_with_explicit(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """parse_args, for parsers with add_data_arguments. A data flag the entry point gave a default with
    set_defaults (study.py: teacher_split=0.5) is parsed as None and kept in args.data_defaults, so it
    counts as not given by the user (below --smoke-test's values) yet still wins over DataSettings'."""
    entry_defaults = {dest: parser.get_default(dest) for dest in DATA_FLAGS if parser.get_default(dest) is not None}
    if entry_defaults:
        parser.parse_args(argv)  # --help (which shows the entry point's defaults) and bad input end here
    parser.set_defaults(**dict.fromkeys(entry_defaults))
    try:
        args = parser.parse_args(argv)
    finally:
        parser.set_defaults(**entry_defaults)
    setattr(args, ENTRY_DEFAULTS, entry_defaults)
    setattr(args, TYPED_FLAGS, typed_flags(sys.argv[1:] if argv is None else argv))
    return args


def typed_flags(argv: list[str]) -> list[str]:
    """The long flags on a command line argparse accepted, in order, once each: a flag counts as typed whatever its
    value, its default included (comparing values with the defaults would miss `--sampler tpe` on the resume of a
    random-search sweep). After a successful parse a word starting with -- is a flag (argparse refuses it as a
    value unless written --flag=VALUE), up to a lone --, after which words are positional."""
    words = list(argv)
    words = words[:words.index("--")] if "--" in words else words
    flags = [word.partition("=")[0] for word in words if word.startswith("--")]
    return list(dict.fromkeys(flags))


def refuse_ignored_on_resume(args: argparse.Namespace, kept: set[str] | frozenset[str], what: str) -> None:
    """--resume continues `what` ("sweep NAME", "study NAME") as it was started: a flag that defines the run (its
    method, space, data, samples, CPUs, tracking ...) would be silently ignored, so every typed flag outside `kept`
    (those a resume uses: --resume, --name, --storage-path, --address ...) is refused, all named in one message.
    `args` must come from parse_with_explicit, which records the typed flags."""
    ignored = [flag for flag in getattr(args, TYPED_FLAGS) if flag not in kept]
    if ignored:
        kind = what.split()[0]
        raise UsageError(f"--resume continues {what} as it started: {', '.join(ignored)} cannot change on --resume "
                         f"(they would be ignored); start a new {kind} to change them")


def split_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise UsageError("--teachers needs at least one model")
    return names


def parse_assignments(pairs: list[str], flag: str) -> dict:
    """['lr=1e-4', 'strategy=margin'] -> {'lr': 0.0001, 'strategy': 'margin'} (values read as YAML)."""
    values = {}
    for pair in pairs or []:
        name, equals, text = pair.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()) or not text.strip():
            raise UsageError(f"cannot parse {flag} {pair!r}: expected name=value")
        try:
            values[name.strip()] = load_yaml(text)
        except yaml.YAMLError:
            raise UsageError(f"cannot parse {flag} {pair!r}: the value is not a number, word or list") from None
    return values


def check_can_create(path: str | Path, flag: str) -> Path:
    """A folder the command will write in (or under), checked before Ray starts and before hours of training,
    not when its first file is written: the path, or its nearest existing parent, must be a writable folder."""
    path = Path(path).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {existing} is not writable")
    return path


def check_cpus_fit(cpus_per_trial: int, address: str | None) -> None:
    """A trial asking for more CPUs than a local Ray instance has would wait for them forever (Ray only warns).
    On a cluster (--address) the cluster's size decides, which is not known here."""
    local = os.cpu_count() or 1
    if address is None and cpus_per_trial > local:
        raise UsageError(f"--cpus-per-trial {cpus_per_trial}: this machine has {local} CPU(s) for a local Ray "
                         f"instance, so no trial could start; ask for at most {local}, or run on a cluster with "
                         "--address")


def check_name(name: str) -> str:
    """Experiment names become folder names: no separators, no '..', nothing hidden."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or "") or ".." in name:
        raise UsageError(f"invalid experiment name {name!r}: use letters, digits, '.', '_' and '-' only")
    return name
