"""Search spaces: the data in search_spaces/, with the user's overrides, turned into Ray Tune domains.

Overrides: `--space FILE` (YAML or JSON, the same format as search_spaces/*.py: a name maps to a
distribution or a fixed value) and `--fix name=value`. Every range is checked before Ray starts:
unknown names, empty ranges and values the trial config would refuse are errors."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import yaml
from ray import tune

from search_spaces import MODULES
from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.query import needs
from tuning.cli import load_yaml, refuse_human_expert

# A smoke sweep trains a tiny model on ~100 examples: higher learning rates, small sizes. A random
# 2-layer BERT needs about 100 steps to learn the smoke task: 8 epochs of 12 batches (4 left most trials
# near chance; tests/test_loop.py checks it learns).
SMOKE_OVERRIDES = {
    "learning_rate": {"type": "loguniform", "low": 2e-3, "high": 1e-2},
    "batch_size": 8,
    "epochs": 8,
    "round_steps": 64,  # the Expert-Loop: 8-32 epochs of its 16-64 rows (8 epochs were 16-64 steps)
    "initial_pool_size": {"type": "int", "low": 16, "high": 32},
    "query_size": {"type": "int", "low": 8, "high": 16},
    "max_iterations": {"type": "int", "low": 1, "high": 2},
}


def base_space(method: str, smoke: bool) -> dict:
    space = dict(MODULES[method].SPACE)
    if smoke:
        space.update({key: value for key, value in SMOKE_OVERRIDES.items() if key in space})
    return space


def read_space_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise UsageError(f"search-space file {path} {what}")
    try:
        loaded = load_yaml(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UsageError(f"search-space file {path} is not valid YAML/JSON: {str(error).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"search-space file {path} must map parameter names to ranges or values")
    return loaded


EXPERT_FIELDS = ("expert", "expert_url", "expert_model", "expert_price")  # checked together: openai needs two


def build_space(method: str, smoke: bool, overrides: dict | None = None, fixed: dict | None = None) -> dict:
    """The checked space as data: {name: distribution dict or fixed value}, including `method`."""
    space = base_space(method, smoke)
    space.update(overrides or {})
    space.update(fixed or {})
    known = {field.name for field in dataclasses.fields(TrialConfig)} - {"method"}
    unknown = sorted(set(space) - known)
    if unknown:
        raise UsageError(f"unknown search-space parameter(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    expert = expert_settings(space)
    if method == "active_loop":
        _drop_teacher_strategies(space, expert.get("expert", "teachers"), explicit=overrides or {})
        _refuse_idle_epochs(space, explicit={**(overrides or {}), **(fixed or {})})
    for name, entry in space.items():
        _check_entry(method, name, entry, expert, space)
    return {"method": method, **space}


def expert_settings(space: dict) -> dict:
    """The expert fields of a space. The expert is an experimental factor, never a searched setting (every trial
    of a sweep is labelled by the same expert): a distribution over experts is refused."""
    if isinstance(space.get("expert"), dict):
        raise UsageError("expert is fixed for a whole sweep (--expert), not searched: compare experts as sweeps or "
                         "study arms, each at its own cost")
    refuse_human_expert(space.get("expert"))  # set by --fix expert=human or a --space file, not only --expert
    return {name: space[name] for name in EXPERT_FIELDS if name in space and not isinstance(space[name], dict)}


def _drop_teacher_strategies(space: dict, expert: str, explicit: dict) -> None:
    """With an expert other than the teachers (or the oracle, which has them too), the default strategy choice
    loses the strategies that read the teachers, said once; a --space that names one is refused by the check."""
    from trainables.experts.spec import parse_expert  # noqa: PLC0415

    entry = space.get("strategy")
    if parse_expert(str(expert)).needs_teachers or "strategy" in explicit or not isinstance(entry, dict):
        return
    values = [v for v in entry.get("values", []) if "teacher_probs" not in needs(v)]
    if len(values) < len(entry.get("values", [])):
        dropped = sorted(set(entry["values"]) - set(values))
        print(f"strategies searched with --expert {expert}: {', '.join(values)} "
              f"({', '.join(dropped)} reads the teachers, which this sweep does not have)", flush=True)
        space["strategy"] = {**entry, "values": values}


def _refuse_idle_epochs(space: dict, explicit: dict) -> None:
    """An Expert-Loop round trains round_steps steps when that is set, and `epochs` only when it is 0: epochs
    given while round_steps can be non-zero would do nothing, silently."""
    steps = space.get("round_steps", 0)
    if "epochs" in explicit and (isinstance(steps, dict) or steps):
        raise UsageError("epochs does nothing in an Expert-Loop sweep while round_steps is set (each round trains "
                         "about round_steps optimiser steps): set round_steps instead, or fix round_steps=0 to "
                         "train `epochs` epochs a round")


# Settings TrialConfig checks against each other (query_size <= pool_sample_size unless it is 0). Each is checked
# with every end of its partner's range in this space, so with what trials will actually get: TrialConfig's default
# for the partner (a query_size of 50) is used only when the space leaves the partner out, as the trials then do.
PARTNERS = {"query_size": "pool_sample_size", "pool_sample_size": "query_size"}


def _check_entry(method: str, name: str, entry, expert: dict, space: dict) -> None:
    partner = PARTNERS.get(name)
    partner_values = [{partner: value} for value in _endpoints(partner, space[partner])] if partner in space else [{}]
    for value in _endpoints(name, entry):
        for other in partner_values:  # raises UsageError with the reason
            TrialConfig.from_dict({"method": method, **expert, **other, name: value})


def _endpoints(name: str, entry) -> list:
    """The values to check an entry at: a fixed value, a choice's values, a range's two ends."""
    if not isinstance(entry, dict):
        return [entry]
    kind = entry.get("type")
    if kind == "choice":
        values = entry.get("values") or []
        if not isinstance(values, list):
            raise UsageError(f"search-space parameter {name}: choice values must be a list, got {values!r}")
        if not values:
            raise UsageError(f"search-space parameter {name}: choice has no values")
        return list(values)
    if kind in ("uniform", "loguniform", "int"):
        low, high = entry.get("low"), entry.get("high")
        for end in (low, high):
            if end is not None and not _finite_number(end):
                raise UsageError(f"search-space parameter {name}: {kind} needs finite numbers for low and high, "
                                 f"got {low!r}..{high!r}")
        if low is None or high is None or not low <= high or (kind != "int" and low == high):
            raise UsageError(f"search-space parameter {name}: empty range {low}..{high}")
        if kind == "loguniform" and low <= 0:
            raise UsageError(f"search-space parameter {name}: loguniform needs low > 0, got {low}")
        return [low, high]
    raise UsageError(f"search-space parameter {name}: unknown type {kind!r} (choice, uniform, loguniform, int)")


def _finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def to_tune(space: dict) -> dict:
    """Ray Tune domains (OptunaSearch converts them to Optuna distributions)."""
    converted = {}
    for name, entry in space.items():
        if not isinstance(entry, dict):
            converted[name] = entry
        elif entry["type"] == "choice":
            converted[name] = tune.choice(list(entry["values"]))
        elif entry["type"] == "uniform":
            converted[name] = tune.uniform(entry["low"], entry["high"])
        elif entry["type"] == "loguniform":
            converted[name] = tune.loguniform(entry["low"], entry["high"])
        else:  # int, both ends included (tune.randint excludes the upper end)
            converted[name] = tune.randint(int(entry["low"]), int(entry["high"]) + 1)
    return converted


def starting_points(method: str, space: dict) -> list[dict]:
    """The original research's settings as the first trial, when they lie inside the space. Optuna
    needs a value for every searched setting: those the original left open take TrialConfig's default
    (or the point is dropped when that default lies outside the space)."""
    defaults = TrialConfig(method=method)
    if isinstance(space.get("bf16"), dict):  # precision searched: the original's is this machine's auto choice
        defaults = defaults.decided()
    defaults = defaults.to_dict()
    original = {**defaults, **MODULES[method].ORIGINAL}
    point = {}
    for name, entry in space.items():
        if not isinstance(entry, dict):
            continue  # fixed by the user or not searched: the fixed value wins
        value = original[name]
        inside = value in entry["values"] if entry["type"] == "choice" else entry["low"] <= value <= entry["high"]
        if not inside:
            return []
        point[name] = value
    return [point] if point else []


def searched_names(space: dict) -> list[str]:
    """The settings left to search (a distribution rather than a fixed value), in the space's order."""
    return [name for name, entry in space.items() if isinstance(entry, dict)]


def is_searched(space: dict) -> bool:
    """Whether any setting is left to search (a distribution rather than a fixed value)."""
    return bool(searched_names(space))


def replicate_seeds(space: dict, num_samples: int) -> list[int] | None:
    """The trial seeds of a space with nothing left to search (None when something is searched): Optuna
    refuses an empty space, and the one configuration is then worth running once per seed, 0..N-1.
    A seed fixed too would make N identical runs: refused unless N is 1."""
    if is_searched(space):
        return None
    if "seed" in space:
        if num_samples > 1:
            raise UsageError(f"every setting is fixed, the seed too: --num-samples {num_samples} would repeat one "
                             "identical run; drop --fix seed (trials then take seeds 0..N-1) or use --num-samples 1")
        return [int(space["seed"])]
    return list(range(num_samples))


def largest(space: dict, name: str):
    entry = space.get(name)
    if isinstance(entry, dict):
        return max(entry["values"]) if entry["type"] == "choice" else entry["high"]
    return entry


def describe(space: dict) -> str:
    return json.dumps(space, default=str)
