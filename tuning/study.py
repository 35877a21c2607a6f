"""The budget study: which method wins at each label budget, against equal-budget baselines.

    python tuning/study.py                      # all arms, 10 seeds, budgets 50..800 (hours on 2 cores)
    python tuning/study.py --quick              # 3 seeds, budgets 50,100,200, four arms (tens of minutes)
    python tuning/study.py --prices gold=1,expert=0.1   # every arm on one priced-cost axis
    python tuning/study.py --arms supervised,expert:margin,expert:margin@llm --prices gold=1,expert=0.1,llm=0.01
                                                # the teachers against a local language model (smollm2)
    python tuning/study.py --expert llm:model.gguf   # the default arms, their expert arms asking that model
    python tuning/study.py --smoke-test         # a minute: tiny models on generated data
    python tuning/study.py --resume --name NAME # continue an interrupted study (or rewrite its report)
    python tuning/study.py --export DIR --name NAME  # a portable copy, to commit or to --resume on another machine

The budget is an experimental factor, never searched. Every arm runs every seed, and a seed fixes the
initial pool, the initialisation and the batch order, so arms are compared in pairs. Trials are Ray Tune
trials (a grid over arm x seed): they run in parallel, resume after a kill and run on a cluster.
An arm may name its expert: expert:<strategy>@llm asks a language model (--expert llm:<preset or .gguf file>,
default smollm2, offline; its answers cached on disk), expert:<strategy>@openai an OpenAI-compatible endpoint
(--expert openai, --expert-url, --expert-model); neither has sunk gold labels, and their labels are priced at
--prices llm=... and openai=.... Without --arms, --expert llm:... or openai makes the default expert arms ask it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

from search_spaces import MODULES
from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.experts.spec import parse_expert
from trainables.precision import AUTO
from trainables.query import needs
from trainables.study_settings import (  # light: no torch, Ray
    DEFAULT_LLM,
    SELECTIONS,
    StoppingRule,
    StudySettings,
    parse_arm,
)
from tuning.assets.catalog import LLM_PRESETS  # light: the asset catalogue, nothing fetched here
from tuning.budget_study.costs import parse_prices  # light: no pandas, scipy, torch or Ray
from tuning.cli import (
    TYPED_FLAGS,
    Parser,
    add_data_arguments,
    add_expert_arguments,
    add_verbose_argument,
    check_can_create,
    check_cpus_fit,
    check_name,
    data_settings,
    expert_assignments,
    main_guard,
    parse_assignments,
    parse_with_explicit,
    ray_settings,
    refuse_ignored_on_resume,
    resume_command,
)
from tuning.tracking.settings import add_tracker_arguments, tracking_settings
from tuning.train import read_config_file
from tuning.trials.driver_lock import refuse_existing  # light: no Ray

# The flags an export uses: which study, where, and the copy's folder.
KEPT_ON_EXPORT = frozenset({"--export", "--name", "--storage-path", "--verbose"})
# The flags a resumed study uses (runner.resume): which study, where, how Ray is reached, how many trials at once when
# its Tuner never began, and the prices its rewritten report uses. Every other flag defines the study.
KEPT_ON_RESUME = frozenset({"--resume", "--name", "--storage-path", "--address", "--dashboard", "--verbose",
                            "--max-concurrent", "--prices", "--charge-sunk"})

# The expert:<strategy> arms of the full study: issue 22's five and issue 24's strategies from the literature.
STRATEGIES_ALL = ("least_confidence", "margin", "entropy", "random", "robust_least_confidence",
                  "badge", "bald", "coreset", "contrastive", "margin+balanced")
DEFAULTS = {"budgets": "50,100,200,400,800", "initial": 50, "seeds": 10, "oracle_strategies": "margin",
            "strategies": ",".join(STRATEGIES_ALL), "max_steps": 1000, "patience_steps": 150}
# --quick: the cheap end of the curves (a point's cost grows with its budget: about 39,000 training examples
# per curve from 50 to 800 labels, 13,000 up to 200) and the arms that answer "expert labels or gold ones".
QUICK = {"budgets": "50,100,200", "initial": 50, "seeds": 3, "arms": "supervised,kd_all,expert:random,expert:margin"}
SMOKE = {"budgets": "8,16,32", "initial": 8, "seeds": 2, "max_steps": 24, "patience_steps": 8}
SMOKE_RECIPE = {"learning_rate": 5e-3, "batch_size": 8}  # a tiny random model learns only at a high rate
# The recipe without --config or --from: the original research's settings (2e-5, batch 16, tuned for a
# 6-layer DistilBERT) with the rate the budget study's recipe probe chose on validation for the 3-layer
# student trained to a plateau (benchmarks/results/recipe-probe-2026-12-06): 2e-4 and batch 16 reach the
# best epoch after as many examples as 5e-5 and batch 8 (the sweep's choice for a fixed 3 epochs) but higher
# on validation (800 labels: 0.604-0.608 against 0.564), at 1.25x the examples per second.
DEFAULT_RECIPE = {"learning_rate": 2e-4, "batch_size": 16}
RECIPE_KEYS = ("learning_rate", "batch_size", "epochs", "weight_decay", "warmup_ratio")


def parse_args(argv=None):
    parser = Parser(prog="tuning/study.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from", dest="from_dir", default=None,
                        help="take the training recipe from a sweep's best trials (an experiment folder) "
                             "(default: the original research's recipe with learning rate 2e-4 and batch 16)")
    source.add_argument("--config", default=None,
                        help="take the recipe from best_configs.json (analyze.py) (default: as for --from)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override one recipe setting (learning_rate, epochs, temperature, bf16, ...)")
    parser.add_argument("--budgets", default=None, help=f"labelled examples per point (default {DEFAULTS['budgets']})")
    parser.add_argument("--initial", type=int, default=None, help="gold labels the query arms start from (default 50)")
    parser.add_argument("--seeds", type=int, default=None, help=f"seeds per arm (default {DEFAULTS['seeds']})")
    parser.add_argument("--strategies", default=None, help="expert:<strategy> arms (default: all strategies)")
    parser.add_argument("--oracle-strategies", default=None,
                        help="oracle:<strategy> arms (default margin; oracle:random is supervised: random queries "
                             "take supervised's rows, so it is compared against supervised)")
    parser.add_argument("--arms", default=None,
                        help="the exact arms, comma-separated (overrides the two above); expert:<strategy>@llm and "
                             "@openai name the expert in place of the teachers")
    parser.add_argument("--max-steps", type=int, default=None,
                        help=f"cap on a point's optimiser steps, in whole epochs (default {DEFAULTS['max_steps']})")
    parser.add_argument("--patience-steps", type=int, default=None,
                        help="early stopping: steps without a better selection score before a point stops "
                             f"(default {DEFAULTS['patience_steps']})")
    parser.add_argument("--selection", choices=SELECTIONS, default=SELECTIONS[0],
                        help="which epoch a point keeps: the last of the capped schedule, no labels spent (default; "
                             "measured within 0.012 of the validation-best), or the best on a stratified 10%% of the "
                             "point's own labels, held out and counted (with --patience-steps), or on the fixed "
                             "validation split (its gold labels counted)")
    parser.add_argument("--prices", default=None,
                        help="price of a label, e.g. gold=1,expert=0.1,read=0.001,llm=0.01 (read: an expert output "
                             "used only to choose rows; llm, openai: a label of an @llm, @openai arm); puts every arm "
                             "on one cost axis (default gold=1,expert=1, read, llm and openai at the expert's price); "
                             "with --resume, reprices the report")
    parser.add_argument("--charge-sunk", action="store_true",
                        help="charge the teachers' own gold labels to every arm that uses them")
    parser.add_argument("--stratified-initial", action="store_true",
                        help="draw the initial pool stratified by the (hidden) labels: label-informed, and marked so")
    parser.add_argument("--warm-start", action="store_true", help="continue the previous budget's student")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['seeds']} seeds, budgets {QUICK['budgets']}, arms {QUICK['arms']}")
    parser.add_argument("--name", default=None, help="study name (default: study-DATE-TIME)")
    parser.add_argument("--storage-path", default="ray_results", help="where the study's folder goes")
    parser.add_argument("--address", default=None,
                        help="an existing Ray cluster: auto, or HOST:6379 (default: a new local Ray instance)")
    parser.add_argument("--resume", action="store_true", help="continue the study --name and rewrite its report")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="copy the study --name into DIR without Ray's files (its points, teachers' outputs and "
                             "report): to commit it, or to continue it on another machine (copy DIR into that "
                             "machine's --storage-path, then --resume)")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="trials at once (default CPUs / cpus-per-trial)")
    parser.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1")
    add_verbose_argument(parser)
    add_tracker_arguments(parser, "study")
    add_data_arguments(parser, scope="study")
    add_expert_arguments(parser, kinds="teachers, llm:<preset or .gguf file> or openai")  # + url, model, price
    parser.set_defaults(teacher_split=0.5)  # the experts learn from rows the student never gets
    args = parse_with_explicit(parser, argv)
    args.named_expert = study_expert(args)  # parsed once: arms, recipe and settings read it
    return args


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{flag} takes whole numbers separated by commas, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _listed(text: str, flag: str, hint: str) -> list[str]:
    """The names of a list flag. An empty list is refused (`hint`: what to type instead): `--arms ,` left a study
    of no arms to fail inside Ray, `--arms ""` silently ran every default arm, and `--strategies ,` a study without
    the expert arms it is about; an unset shell variable looks just like that."""
    names = _names(text)
    if not names:
        raise UsageError(f"{flag} names nothing (got {text!r}): {hint}")
    return names


# What an empty --strategies or --oracle-strategies should have been.
STRATEGIES_HINT = "name at least one strategy, or leave the flag out for its default; --arms lists the exact arms"


def choose(args, key: str):
    """A flag's value: what the user typed, else the --smoke-test / --quick default, else the default."""
    value = getattr(args, key, None)
    if value is not None:
        return value
    for active, table in ((args.smoke_test, SMOKE), (args.quick, QUICK)):
        if active and key in table:
            return table[key]
    return DEFAULTS.get(key)


def arm_names(args) -> list[str]:
    explicit = choose(args, "arms")
    if explicit is not None:
        names = _listed(explicit, "--arms", "name at least one arm, e.g. --arms supervised,expert:margin")
    else:
        suffix = default_arm_suffix(args)
        oracle = _listed(choose(args, "oracle_strategies"), "--oracle-strategies", STRATEGIES_HINT)
        names = ["supervised", "kd_all", *[f"oracle:{s}" for s in oracle],
                 *[f"expert:{s}{suffix}" for s in expert_strategies(args, suffix)], "full:supervised"]
    for name in names:
        parse_arm(name, args.named_expert.llm)
    if len(set(names)) != len(names):
        raise UsageError(f"an arm is named twice in {', '.join(names)}")
    return names


def recipe(args):
    """One student recipe for every arm (so arms differ only in which rows carry which labels): the
    supervised entry's optimiser settings, the kd (else active_loop) entry's temperature and alpha."""
    entries = _recipe_source(args)
    student = entries.get("supervised", {}).get("config") or MODULES["supervised"].ORIGINAL
    teacher = (entries.get("kd") or entries.get("active_loop") or {}).get("config") or MODULES["kd"].ORIGINAL
    values = {key: student[key] for key in RECIPE_KEYS if key in student}
    values.update({key: teacher[key] for key in ("temperature", "alpha") if key in teacher})
    if not (args.config or args.from_dir):
        values.update(SMOKE_RECIPE if args.smoke_test else DEFAULT_RECIPE)
    values.update(refuse_what_the_study_sets(parse_assignments(args.set, "--set")))
    if args.named_expert.price is not None:
        values["expert_price"] = args.named_expert.price
    # Each trial decides "auto" precision where it runs (study_settings keeps "auto"); checking the recipe
    # here must not import torch to measure this machine, so "auto" is checked as false.
    if str(values.get("bf16", AUTO)).strip().lower() == AUTO:
        values["bf16"] = False
    return TrialConfig.from_dict({**values, "method": "active_loop"})


# Settings the study decides itself for every arm, seed and point (trainables/study_arms.arm_recipe and
# _train_point): given with --set they would be silently replaced, so each is refused with the flag that sets it.
STUDY_SETS = {
    "method": "--arms (an arm names its method)",
    "seed": "--seeds (every arm runs seeds 0 to N-1)",
    "expert": "the arm (expert:<strategy> asks the teachers, expert:<strategy>@llm or @openai --expert's model)",
    "expert_url": "--expert-url",
    "expert_model": "--expert-model",
    "strategy": "the arm (expert:<strategy>, oracle:<strategy>: --arms, --strategies, --oracle-strategies)",
    "initial_pool_size": "--initial",
    "query_size": "--budgets (each point queries up to its budget)",
    "max_iterations": "--budgets (one point per budget)",
    "epochs": "--max-steps (a point trains to that cap, or to a plateau with --patience-steps)",
    "round_steps": "--max-steps (a point trains to that cap, or to a plateau with --patience-steps)",
    "warm_start": "--warm-start",
}


def refuse_what_the_study_sets(assigned: dict) -> dict:
    """--set's settings, none of which the study would replace or ignore."""
    if "stop" in assigned:
        raise UsageError("--set stop=... does nothing in the budget study: it judges every stopping criterion after "
                         "the fact on every query arm (the report's 'Stopping criteria' section)")
    for name, flag in STUDY_SETS.items():
        if name in assigned:
            raise UsageError(f"--set {name}=... would be silently replaced: the budget study sets {name} itself "
                             f"for every arm and seed, from {flag}")
    return assigned


def _recipe_source(args) -> dict:
    if args.config:
        return {method: read_config_file(args.config, method) for method in ("supervised", "kd", "active_loop")
                if _has_method(args.config, method)}
    if args.from_dir:
        from tuning.analysis import results as analysis  # noqa: PLC0415 (Ray, pandas: only to read --from)

        experiments = analysis.read_all(analysis.find_experiments([args.from_dir], args.storage_path))
        return analysis.best_configs(experiments)["methods"]
    return {}


def _has_method(path: str, method: str) -> bool:
    try:
        return method in json.loads(Path(path).read_text(encoding="utf-8")).get("methods", {})
    except (OSError, ValueError, AttributeError):
        raise UsageError(f"config file {path} is not a readable best_configs.json") from None


def study_settings(args) -> dict:
    """Everything one trial needs except the arm and the seed, checked before anything runs."""
    seeds = choose(args, "seeds")
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    stopping = StoppingRule(max_steps=choose(args, "max_steps"), patience_steps=choose(args, "patience_steps"))
    template = StudySettings(arm="supervised", seed=0, budgets=_ints(choose(args, "budgets"), "--budgets"),
                             initial=choose(args, "initial"), recipe=recipe(args), stopping=stopping,
                             selection=args.selection, stratified_initial=args.stratified_initial,
                             warm_start=args.warm_start, **named_experts(args))
    arms = arm_names(args)
    for name in arms:  # each arm checked as its trials will be: an @openai arm needs its endpoint
        dataclasses.replace(template, arm=name)
    values = template.to_dict()
    # The recipe was checked here, but its precision is decided in each trial's process ("auto" stays).
    values["recipe"]["bf16"] = parse_assignments(args.set, "--set").get("bf16", AUTO)
    return {"template": values, "arms": arms, "seeds": list(range(seeds)), **price_settings(args)}


@dataclasses.dataclass(frozen=True)
class NamedExpert:
    """Whom a study's @llm and @openai arms ask (--expert, --expert-url, --expert-model) and --expert-price."""
    kind: str  # teachers, llm or openai
    llm: str  # the language model's preset or .gguf file (the default one unless --expert llm:...)
    url: str = ""
    model: str = ""
    price: float | None = None


def study_expert(args) -> NamedExpert:
    """--expert in a study: teachers (the default), llm:<preset or .gguf file> or openai; it names whom the @llm
    or @openai arms ask and, without --arms, whom the default expert arms ask. oracle and human are refused."""
    given = expert_assignments(args, allow_human=False)
    spec = parse_expert(given.get("expert", "teachers"), llm_presets=LLM_PRESETS)
    if spec.kind == "oracle":
        raise UsageError("--expert oracle: in a study the oracle has arms of its own, oracle:<strategy> "
                         "(--oracle-strategies)")
    return NamedExpert(kind=spec.kind, llm=spec.model if spec.kind == "llm" else DEFAULT_LLM,
                       url=given.get("expert_url", ""), model=given.get("expert_model", ""),
                       price=given.get("expert_price"))


def expert_strategies(args, suffix: str) -> list[str]:
    """The default expert arms' strategies; asking another expert than the teachers, those that read the teachers
    (robust_least_confidence) are left out, said once."""
    strategies = _listed(choose(args, "strategies"), "--strategies", STRATEGIES_HINT)
    if not suffix:
        return strategies
    kept = [s for s in strategies if "teacher_probs" not in needs(s)]
    if len(kept) < len(strategies):
        print(f"expert arms {suffix}: {', '.join(sorted(set(strategies) - set(kept)))} left out (it reads the "
              "teachers, which these arms do not ask)", flush=True)
    return kept


def default_arm_suffix(args) -> str:
    """'@llm' or '@openai' for the default expert arms when --expert names a language model or an endpoint."""
    kind = args.named_expert.kind
    return "" if kind == "teachers" else f"@{kind}"


def named_experts(args) -> dict:
    """StudySettings' llm, expert_url, expert_model: whom the @llm and @openai arms ask."""
    expert = args.named_expert
    return {"llm": expert.llm, "expert_url": expert.url, "expert_model": expert.model}


def price_settings(args) -> dict:
    """{"prices": ..., "charge_sunk": ...}: what the report prices labels at (no torch, no Ray)."""
    return {"prices": parse_prices(args.prices or ""), "charge_sunk": args.charge_sunk}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.export is not None:
        return export(args)
    if args.resume:
        if not args.name:
            raise UsageError("--resume needs --name (the study to continue)")
        name = check_name(args.name)
        # Its plan, data, expert and tracking are restored as saved (study.json, the Tuner's state).
        refuse_ignored_on_resume(args, KEPT_ON_RESUME, f"study {name}")
        # Ray, torch: after the arguments are checked.
        from tuning.budget_study import runner as study_run  # noqa: PLC0415
        from tuning.trials.ray_session import RaySession  # noqa: PLC0415

        reprice = price_settings(args) if args.prices or args.charge_sunk else None
        return study_run.resume(study_folder(args.storage_path, name), RaySession(ray_settings(args)),
                                args.max_concurrent, resume_command(args, name, script="study"), reprice)
    name = check_name(args.name or f"study-{time.strftime('%Y%m%d-%H%M%S')}")
    check_can_create(args.storage_path, "--storage-path")  # found otherwise after the teachers were fine-tuned
    folder = study_folder(args.storage_path, name)
    refuse_existing(folder, "study")
    tracking = tracking_settings(args, name, args.storage_path)
    plan, data = study_settings(args), data_settings(args)
    check_cpus_fit(data.cpus_per_trial, args.address)  # else every trial waits for CPUs a local Ray lacks
    # Every check that needs no data is done: only now Ray, torch and transformers (seconds) are imported.
    from tuning.budget_study import runner as study_run  # noqa: PLC0415
    from tuning.trials.ray_session import RaySession  # noqa: PLC0415

    return study_run.start(folder, plan, data, RaySession(ray_settings(args)), args.max_concurrent,
                           resume_command(args, name, script="study"), tracking)


def export(args) -> int:
    """--export DIR: every check before Ray or torch is imported, then runner.export."""
    if args.resume:
        raise UsageError("--export and --resume are two commands: export the study, or continue it")
    if not args.name:
        raise UsageError("--export needs --name (the study to copy)")
    name = check_name(args.name)
    typed = [flag for flag in getattr(args, TYPED_FLAGS) if flag not in KEPT_ON_EXPORT]
    if typed:
        raise UsageError(f"--export copies study {name} as it is: {', '.join(typed)} cannot be given with --export")
    folder = study_folder(args.storage_path, name)
    if not (folder / "study.json").is_file():
        raise UsageError(f"no study to export at {folder} (no study.json)")
    destination = Path(args.export).expanduser().resolve()
    check_export_destination(folder, destination)
    from tuning.budget_study import runner as study_run  # noqa: PLC0415 (Ray, torch: after the checks)

    return study_run.export(folder, destination, resume_command(args, name, script="study"))


def check_export_destination(folder: Path, destination: Path) -> None:
    """The copy goes into a new or empty folder, or over an earlier copy of the same study (a study exported
    again as it goes on); never into the study itself, nor over anything else."""
    if destination == folder or folder in destination.parents:
        raise UsageError(f"--export {destination} is the study's own folder or inside it: give another folder")
    if destination.exists() and not destination.is_dir():
        raise UsageError(f"--export {destination} is a file: give a folder")
    if not destination.is_dir() or not any(destination.iterdir()):
        check_can_create(str(destination), "--export")
        return
    try:
        earlier = json.loads((destination / "study.json").read_text(encoding="utf-8"))
        same = json.loads((folder / "study.json").read_text(encoding="utf-8"))["created"] == earlier["created"]
    except (OSError, ValueError, KeyError, TypeError):
        same = False
    if not same:
        raise UsageError(f"--export {destination} holds files that are not a copy of this study: give a new or "
                         "empty folder (nothing was written)")


def study_folder(storage_path: str, name: str) -> Path:
    return Path(storage_path).expanduser().resolve() / name


if __name__ == "__main__":
    main_guard(main)
