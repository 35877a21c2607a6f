"""The stopping criteria (trainables/stopping_criteria.py) judged after the fact on the budget study's query
arms: for each arm and seed, where each criterion would have stopped the curve, the labels spent there, and
the test accuracy lost against the curve's end (its largest budget).

A study's points are its rounds: check i is the student of the i-th budget, judged as the loop judges a round,
from its predictions on the validation split's INPUTS (study_settings.STOP_PREDICTIONS and STOP_UNCERTAINTY,
recorded by every point; no label is read). A criterion that never says stop runs the curve to its end,
where nothing is lost. Pure pandas and numpy: no Ray, no torch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainables import metrics as m
from trainables.stopping_criteria import Check, first_stop, parse_stop
from trainables.study_settings import (
    BUDGET,
    GOLD_LABELS,
    STOP_PREDICTIONS,
    STOP_UNCERTAINTY,
    decode_predictions,
    parse_arm,
)

# small-text's default thresholds and windows; max_rounds:2 is the blind rule to beat (stop at the third budget).
STUDY_CRITERIA = ("kappa:0.99", "delta_f:0.05", "uncertainty:0.05", "max_rounds:2")
STOPPING_SET = "the validation split's inputs (the student's predictions and their entropy; no label read)"


def stopping_summary(frame: pd.DataFrame, budgets: list[int], seeds: list[int], classes: int) -> dict:
    """{arm: {criterion: its stops per seed and their means}} for every query arm (oracle:*, expert:*); {} for
    a study whose points did not record their stopping checks (made before they did)."""
    if STOP_PREDICTIONS not in frame or STOP_UNCERTAINTY not in frame:
        return {}
    out = {}
    for arm in sorted(frame["arm"].unique()):
        if parse_arm(str(arm)).queries:
            points = frame[frame["arm"] == arm].set_index([BUDGET, "seed"])
            out[arm] = {spec: _criterion(parse_stop(spec), points, budgets, seeds, classes) for spec in STUDY_CRITERIA}
    return out


def _criterion(criterion, points: pd.DataFrame, budgets: list[int], seeds: list[int], classes: int) -> dict:
    stops = [_stop(criterion, [points.loc[(budget, seed)] for budget in budgets], budgets, seed, classes)
             for seed in seeds]
    return {"stopped_early": sum(stop["budget"] < budgets[-1] for stop in stops), "of": len(stops),
            **{f"mean_{key}": float(np.mean([stop[key] for stop in stops]))
               for key in ("budget", "labels", GOLD_LABELS, m.EXPERT_QUERIES, "accuracy_lost")},
            "seeds": stops}


def _stop(criterion, curve: list[pd.Series], budgets: list[int], seed: int, classes: int) -> dict:
    """Where the criterion stops one seed's curve (its end if it never does) and what that costs."""
    checks = [Check(decode_predictions(point[STOP_PREDICTIONS]), float(point[STOP_UNCERTAINTY]), classes)
              for point in curve]
    found = first_stop(criterion, checks)
    at = curve[len(curve) - 1 if found is None else found]
    gold, expert = int(at[GOLD_LABELS]), int(at[m.EXPERT_QUERIES])
    return {"seed": int(seed), "budget": budgets[len(curve) - 1 if found is None else found],
            "said_stop": found is not None, GOLD_LABELS: gold, m.EXPERT_QUERIES: expert, "labels": gold + expert,
            m.TEST_ACCURACY: float(at[m.TEST_ACCURACY]),
            "accuracy_lost": float(curve[-1][m.TEST_ACCURACY]) - float(at[m.TEST_ACCURACY])}
