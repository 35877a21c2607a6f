"""The installed `expert-loop` command: one entry point, a subcommand per script.

    expert-loop run --method active_loop       # = python tuning/run.py --method active_loop
    expert-loop study --quick                  # = python tuning/study.py --quick
    expert-loop analyze | train | evaluate | fetch-assets ...

Each subcommand takes exactly the flags of its script. Nothing heavy (torch, Ray) is imported before a
subcommand is chosen, and each script imports them only after parsing its flags, so `expert-loop --help`
and `expert-loop COMMAND --help` answer at once."""

from __future__ import annotations

import importlib
import sys

from tuning.cli import main_guard, started_as  # light: the scripts import their heavy parts after parsing

COMMANDS = {
    "run": ("tuning.run", "sweep one method or all three with Ray Tune"),
    "study": ("tuning.study", "the budget study: every method at the same label budgets and seeds"),
    "analyze": ("tuning.analyze", "best configuration per method, reports, plots, --confirm"),
    "train": ("tuning.train", "one training run without a search, writing a checkpoint"),
    "label": ("tuning.label", "a person's answers into a paused --expert human run, which continues"),
    "evaluate": ("tuning.evaluate", "metrics of a saved checkpoint"),
    "fetch-assets": ("tuning.fetch_assets", "fetch or confirm the offline models and data sets"),
}
USAGE_ERROR = 2
PROGRAM = "expert-loop"  # [project.scripts] in pyproject.toml


def usage() -> str:
    lines = ["usage: expert-loop COMMAND [flags]  (expert-loop COMMAND --help for its flags)", "", "commands:"]
    lines += [f"  {name:<13} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if words else sys.stderr)  # asked for, or a missing command: an error
        sys.exit(0 if words else USAGE_ERROR)
    command, rest = words[0], words[1:]
    if command not in COMMANDS:
        print(f"error: unknown command '{command}' (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        sys.exit(USAGE_ERROR)
    module = importlib.import_module(COMMANDS[command][0])
    started_as(PROGRAM)
    main_guard(lambda: module.main(rest))


if __name__ == "__main__":
    main()
