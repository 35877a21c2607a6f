"""One priced-cost axis for every arm of a budget study, its Pareto frontier, and which arm to use at
which price of an expert label.

Every price is in gold labels (a gold label costs `gold`, 1 by default, so "cost 120" reads "as dear as
120 gold labels"). What a point spends:
  gold_labels x gold      every gold label it used, for training and for choosing the model
  expert_queries x expert expert labels it trained or chose the model on, at the price of its expert:
                          `expert` for the teachers, `llm` for an @llm arm's language model, `openai` for
                          an @openai arm's endpoint
  expert_reads x read     expert outputs read only to choose rows (robust least confidence reads the
                          teachers on the whole scored pool every round)
  teacher_gold x gold     the gold labels the teachers were fine-tuned on: a sunk cost, charged only
                          with charge_sunk, and only to the arms that use teachers

Light on purpose: study.py parses --prices before Ray, torch or pandas are imported."""

from __future__ import annotations

import math

import numpy as np

from trainables.errors import UsageError
from trainables.study_settings import parse_arm

PRICE_NAMES = ("gold", "expert", "read", "llm", "openai")
# The price that an arm's expert labels cost, by its expert's kind (study_settings.Arm.expert_kind): the teachers'
# is "expert", the name the study had before experts were named; an arm with no expert labels any of them.
LABEL_PRICE = {"teachers": "expert", "llm": "llm", "openai": "openai"}
# An expert label is priced like a gold one unless said otherwise: the default that makes no method look
# cheaper than it is (DESIGN.md, honest label accounting). A read is an expert call whose answer chooses
# rows instead of labelling them, so it costs what an expert label costs unless priced apart.
DEFAULT_GOLD = 1.0
DEFAULT_EXPERT = 1.0
# Expert prices (in gold labels) at which the report says which arm to use: from free (a model already
# running) to dearer than gold (a specialist's time).
EXPERT_PRICE_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def parse_prices(text: str | None) -> dict[str, float]:
    """'gold=1,expert=0.1,llm=0.01' -> {"gold": 1.0, "expert": 0.1, "read": 0.1, "llm": 0.01, "openai": 0.1}.
    Any name may be left out: gold and expert default to 1; read, llm and openai to the expert's price (a label
    is an expert label, as dear as the teachers', unless priced apart). None or '' gives the defaults."""
    given: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = (piece.strip() for piece in part.partition("="))
        if not sep or name not in PRICE_NAMES:
            raise UsageError(f"--prices takes NAME=PRICE pairs with NAME one of {', '.join(PRICE_NAMES)}, "
                             f"got {part.strip()!r}")
        if name in given:
            raise UsageError(f"--prices names {name} twice")
        given[name] = _price(name, value)
    gold = given.get("gold", DEFAULT_GOLD)
    if gold == 0:
        raise UsageError("--prices: the price of gold must be above 0 (every cost is stated in gold labels)")
    expert = given.get("expert", DEFAULT_EXPERT)
    return {"gold": gold, "expert": expert, **{name: given.get(name, expert) for name in ("read", "llm", "openai")}}


def _price(name: str, value: str) -> float:
    try:
        price = float(value)
    except ValueError:
        raise UsageError(f"--prices: the price of {name} must be a number, got {value!r}") from None
    if not math.isfinite(price) or price < 0:
        raise UsageError(f"--prices: the price of {name} must be a finite number >= 0, got {value!r}")
    return price


def describe_prices(prices: dict[str, float]) -> str:
    return ", ".join(f"{name}={prices[name]:g}" for name in PRICE_NAMES if name in prices)  # older studies: 3


def label_price(arm: str, prices: dict[str, float]) -> float:
    """What one of this arm's expert labels costs (a study priced before llm and openai existed: the expert's)."""
    return prices.get(LABEL_PRICE.get(parse_arm(arm).expert_kind, "expert"), prices["expert"])


def priced_cost(frame, prices: dict[str, float], teacher_gold: int, charge_sunk: bool) -> np.ndarray:
    """The priced cost of every row of study.csv (columns arm, gold_labels, expert_queries, expert_reads)."""
    expert_price = np.array([label_price(arm, prices) for arm in frame["arm"]], dtype=float)
    cost = (frame["gold_labels"].to_numpy(float) * prices["gold"]
            + frame["expert_queries"].to_numpy(float) * expert_price
            + frame["expert_reads"].to_numpy(float) * prices["read"])
    if charge_sunk:
        cost = cost + np.array([parse_arm(arm).needs_teachers for arm in frame["arm"]]) * teacher_gold * prices["gold"]
    return cost


def cost_points(frame, prices: dict[str, float], teacher_gold: int, charge_sunk: bool) -> list[dict]:
    """Each (arm, budget): its mean priced cost and mean test accuracy over the rows' seeds."""
    costed = frame.assign(cost=priced_cost(frame, prices, teacher_gold, charge_sunk))
    means = costed.groupby(["arm", "budget"], sort=True)[["cost", "test_accuracy"]].mean()
    return [{"arm": arm, "budget": int(budget), "cost": float(row["cost"]),
             "test_accuracy": float(row["test_accuracy"])} for (arm, budget), row in means.iterrows()]


def simplicity(arm: str) -> int:
    """Breaks exact ties (same cost, same accuracy: at the initial budget supervised, oracle:* and
    expert:* train the same student on the same rows): the simplest arm is named, not a query rule that
    has not queried anything yet."""
    if arm in ("supervised", "full:supervised"):
        return 0
    return 1 if ":random" in arm else 2


def pareto_frontier(points: list[dict]) -> list[dict]:
    """The points no other point beats on both axes (cheaper or as cheap, and at least as accurate),
    cheapest first. Of two points with equal cost the more accurate stays; of equal accuracy the cheaper;
    of identical ones the simplest arm."""
    frontier, best = [], -math.inf
    for point in sorted(points, key=lambda p: (p["cost"], -p["test_accuracy"], simplicity(p["arm"]))):
        if point["test_accuracy"] > best:
            frontier.append(point)
            best = point["test_accuracy"]
    return frontier


def grid_prices(prices: dict[str, float], expert: float) -> dict[str, float]:
    """The given prices with the teachers' label at `expert`; a read keeps its ratio to an expert label
    (it is the same call to the same expert), or its given price when the given expert price is 0. A named
    expert's label (llm, openai) keeps its given price: the grid asks what the teachers' labels may cost."""
    read = prices["read"] * expert / prices["expert"] if prices["expert"] > 0 else prices["read"]
    return {**prices, "expert": expert, "read": read}


def best_within(points: list[dict], spend: float) -> dict | None:
    """The most accurate point costing at most `spend` (the cheaper of equals, then the simplest), or None."""
    affordable = [p for p in points if p["cost"] <= spend + 1e-9]
    return min(affordable, key=lambda p: (-p["test_accuracy"], p["cost"], simplicity(p["arm"]))) if affordable else None


def recommendations(frame, prices: dict[str, float], teacher_gold: int, charge_sunk: bool,
                    spends: list[float], grid: tuple[float, ...] = EXPERT_PRICE_GRID) -> list[dict]:
    """For each spend level, the best point (by mean test accuracy) at each expert price of the grid.
    Spends and grid prices are in gold labels (times the gold price); a point's cost there too."""
    unit = prices["gold"]
    by_price = {expert: cost_points(frame, grid_prices(prices, expert * unit), teacher_gold, charge_sunk)
                for expert in grid}
    return [{"spend": float(spend), "choices": [{"expert_price": expert, "best": best_within(points, spend * unit)}
                                                for expert, points in by_price.items()]}
            for spend in spends]


def recommendation_sentences(recs: list[dict]) -> list[str]:
    """One sentence per spend level, the grid's expert prices grouped into runs with the same best point."""
    return [_sentence(rec) for rec in recs]


def _sentence(rec: dict) -> str:
    runs: list[list[dict]] = []
    for choice in rec["choices"]:
        key = _key(choice["best"])
        if runs and _key(runs[-1][0]["best"]) == key:
            runs[-1].append(choice)
        else:
            runs.append([choice])
    parts = []
    for i, run in enumerate(runs):
        low, high = run[0]["expert_price"], run[-1]["expert_price"]
        span = f"at {low:g}" if low == high else f"from {low:g} to {high:g}"
        if len(runs) == 1:
            when = f"at every expert price from {low:g} to {high:g} gold labels"
        elif i == 0:
            when = (f"if an expert label costs {high:g} gold labels or less" if high > 0 else
                    "if an expert label is free")
        elif i == len(runs) - 1:
            when = f"{span} (the dearest price tried)"
        else:
            when = span
        parts.append(f"{when}, {_use(run[0]['best'])}")
    return f"With the price of {rec['spend']:g} gold labels to spend: " + "; ".join(parts) + "."


def recommendation_table(recs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The same choices as a grid: a row per spend level, a column per expert price, "arm @ budget"."""
    head = ["spend (gold labels)", *(f"expert = {c['expert_price']:g}" for c in recs[0]["choices"])] if recs else []
    rows = [[f"{rec['spend']:g}", *("-" if c["best"] is None else f"{c['best']['arm']} @ {c['best']['budget']}"
                                   for c in rec["choices"])] for rec in recs]
    return head, rows


def _key(point: dict | None):
    return None if point is None else (point["arm"], point["budget"])


def _use(point: dict | None) -> str:
    if point is None:
        return "no measured point costs that little"
    return f"use {point['arm']} at budget {point['budget']} (test accuracy {point['test_accuracy']:.3f})"
