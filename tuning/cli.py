"""Command-line plumbing shared by run.py, train.py, evaluate.py and analyze.py.

Every entry point runs inside `main_guard`: bad input (a UsageError, or an argparse error) ends with
one line on stderr and exit status 2, before Ray starts and before anything is written."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable

import yaml

from trainables.errors import UsageError
from tuning.prepare import SMOKE_SETTINGS, DataSettings

USAGE_ERROR = 2


class _YamlLoader(yaml.SafeLoader):
    """safe_load, but 1e-4 is a float: YAML 1.1 wants a dot (1.0e-4) and reads '1e-4' as a string."""


_YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                  re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                  list("-+0123456789."))


def load_yaml(text: str):
    """Values of --set/--fix and search-space files: plain data only (a SafeLoader)."""
    return yaml.load(text, Loader=_YamlLoader)


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and exit status 2."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message}")


def main_guard(main: Callable[[], int | None]) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from tokenizers
    try:
        status = main()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        status = USAGE_ERROR
    except KeyboardInterrupt as interrupt:  # its message, when there is one, says how to continue
        print(f"interrupted: {interrupt}" if str(interrupt) else "interrupted", file=sys.stderr)
        status = 130
    sys.exit(status or 0)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data and models (fixed for a whole sweep)")
    group.add_argument("--dataset", default=DataSettings.dataset,
                       help="preset (multiemo-medicine, wikihow-mcq), a CSV/JSON/JSONL/Parquet file or folder, "
                            "or a Hugging Face data set name (needs a network)")
    group.add_argument("--student", default=DataSettings.student,
                       help="preset (minilm-l3, minilm-l6, ...), a local model folder, or a hub name")
    group.add_argument("--teachers", default=",".join(DataSettings.teachers),
                       help="comma-separated presets, folders, fine-tuned checkpoints or hub names")
    group.add_argument("--seed", type=int, default=0, help="seeds the data split and the searcher")
    group.add_argument("--max-length", type=int, default=DataSettings.max_length, help="tokens per sequence")
    group.add_argument("--validation-size", type=_size, default=DataSettings.validation_size)
    group.add_argument("--test-size", type=_size, default=DataSettings.test_size)
    group.add_argument("--max-train-examples", type=int, default=None,
                       help="a stratified subset of the training split, for quick looks")
    group.add_argument("--cpus-per-trial", type=int, default=DataSettings.cpus_per_trial)
    group.add_argument("--teacher-epochs", type=int, default=DataSettings.teacher_epochs)
    group.add_argument("--teacher-split", type=float, default=DataSettings.teacher_split,
                       help="> 0: fine-tune the teachers only on this stratified share of the training split, "
                            "which the Expert-Loop's pool then excludes")
    group.add_argument("--bf16", nargs="?", const="true", default="auto", metavar="{auto,true,false}",
                       help="teachers' bfloat16 autocast: auto (default: where this CPU computes bfloat16 natively "
                            "and is measured faster), true or false; a teacher cached in either precision is reused")
    group.add_argument("--smoke-test", action="store_true",
                       help="seconds, not minutes: a tiny random model on a few dozen generated examples")


def _size(text: str) -> int | float:
    value = float(text)
    return int(value) if value >= 1 else value


def data_settings(args: argparse.Namespace) -> DataSettings:
    values = dict(
        dataset=args.dataset, student=args.student, teachers=split_names(args.teachers),
        split_seed=args.seed, max_length=args.max_length, validation_size=args.validation_size,
        test_size=args.test_size, max_train_examples=args.max_train_examples,
        cpus_per_trial=args.cpus_per_trial, teacher_epochs=args.teacher_epochs,
        teacher_split=args.teacher_split, bf16=args.bf16,
    )
    if args.smoke_test:  # flags given explicitly still win (smoke values are only defaults)
        explicit = getattr(args, "explicit", set())
        values.update({key: value for key, value in SMOKE_SETTINGS.items() if key not in explicit})
    return DataSettings(**values)


def parse_with_explicit(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse, and record in args.explicit which data settings the user gave on the command line
    (so --smoke-test's small defaults never override a flag the user typed)."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    given = {action.dest for action in parser._actions
             if any(word == option or word.startswith(option + "=")
                    for option in action.option_strings for word in words)}
    args.explicit = {"split_seed" if dest == "seed" else dest for dest in given}
    return args


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


def check_name(name: str) -> str:
    """Experiment names become folder names: no separators, no '..', nothing hidden."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or "") or ".." in name:
        raise UsageError(f"invalid experiment name {name!r}: use letters, digits, '.', '_' and '-' only")
    return name
