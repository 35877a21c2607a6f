"""What a sweep leaves on disk and how to read it, named once: the sweep writes these files, the analysis
reads them; and the one way results are written as JSON. Light on purpose (no Ray, no Optuna): reading
results never imports the code that runs sweeps."""

from __future__ import annotations

import json
from pathlib import Path

from trainables import metrics as m
from trainables.atomic import write_text

SWEEP_FILE = "sweep.json"  # how the sweep was made: read back by --resume and by the analysis
OPTUNA_JOURNAL = "optuna_journal.log"  # the Optuna study of a searched sweep, in its experiment folder

# Samplers that propose at random until `n_startup_trials` trials have finished, then from a model of them.
MODEL_BASED = ("tpe", "gp")
OPTUNA_DEFAULT_STARTUP = 10  # TPESampler's and GPSampler's default n_startup_trials


def search_kind(sweep: dict) -> str:
    """What the searcher really did, from a sweep.json "sweep" record (records from before
    startup_trials was recorded ran with Optuna's default of 10)."""
    sampler, total = sweep.get("sampler", "tpe"), int(sweep.get("num_samples", 0))
    if sampler == "random":
        return "random search (--sampler random)"
    if sampler not in MODEL_BASED:
        return f"{sampler} sampler"
    startup = sweep.get("startup_trials") or OPTUNA_DEFAULT_STARTUP
    if startup >= total:
        return (f"random search in effect: {sampler.upper()} proposes at random until {startup} trials have "
                f"finished, and the sweep had {total}")
    return (f"{sampler.upper()}: random proposals until {startup} of {total} trials had finished "
            "(a few more when trials ran at once), model-guided after that")


def reached_the_end(method: str, config: dict, last: dict) -> bool:
    """Did a trial whose last report is `last` run all its planned epochs (rounds for the Expert-Loop)?
    A trial that did not, and did not fail, was stopped by the scheduler. A trial its own stopping rule (the
    `stop` setting) ended ran its plan to its end: that rule is part of its settings, no scheduler's decision."""
    if last.get(m.STOPPED) == 1:
        return True
    if method == "active_loop":
        done_round = last.get(m.ROUND, last.get("training_iteration", 0) - 1)
        # The loop also ends when the pool runs out, before max_iterations.
        return done_round >= int(config.get("max_iterations", 0)) or last.get("pool_left") == 0
    done_epoch = last.get(m.EPOCH, last.get("training_iteration", 0))
    return done_epoch >= int(config.get("epochs", 1))


def write_json(path: Path, value) -> None:
    """Atomically, indented; numpy scalars (as Ray's metrics come back) become plain numbers."""
    write_text(path, json.dumps(value, indent=2, default=_plain) + "\n")


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)
