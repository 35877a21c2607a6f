"""A Tuner's run, the same for the sweep and the study: the trainable with its CPUs, actor reuse, Tuner.fit
with Ctrl-C handled, and the libraries' own output kept quiet unless asked for."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable

import optuna
from ray import tune

from trainables.prepared import Prepared

# A trial runs in a Ray actor that Tune hands to the next trial (FunctionTrainable.reset_config) instead of
# starting a new process that imports torch and transformers again: measured on the smoke study (22 short
# trials, 2 at a time) 14 s of trials instead of 89 s, with identical metrics. Each trial seeds and sets
# up everything it uses, so nothing carries over (tests/test_study.py), and first releases the memory the
# last one left (trainables/functions.py); an actor whose trial failed is not reused.
REUSE_ACTORS = True


def trainable(trial: Callable[[dict, Prepared], None], prepared: Prepared, cpus_per_trial: int):
    """`trial` (trainables/functions.py: student_trial or study_trial) with the prepared data through Ray's
    object store and `cpus_per_trial` CPUs."""
    return tune.with_resources(tune.with_parameters(trial, prepared=prepared), {"cpu": cpus_per_trial})


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a sweep or a study: Ray Tune catches it, saves the experiment and returns
    early; the entry point then exits with status 130 and says how to resume, instead of reporting a
    partial result."""


def fit(tuner: tune.Tuner, verbose: bool = False) -> tune.ResultGrid:
    """Tuner.fit, then the Ctrl-C handler as it was before: Tune leaves its own installed after a run that
    was not interrupted, and that one would swallow the next Ctrl-C (between two methods of `--method all`,
    or while the summary prints). Unless `verbose`, Tune's own reporter stays silent (library_output)."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        with library_output(verbose):
            return tuner.fit()
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)


# Ray's switch between its two progress reporters, read by Tuner.fit (ray/tune/experimental/output.py). Not a
# public API (Ray's log lines and its experimental-features page name it), and none exists: while the newer
# reporter is on, Tune ignores RunConfig(progress_reporter=...) and prints at verbose=0 all the same. The one
# place it is used; pyproject.toml pins Ray to the minor versions tested, and tests/test_pinned_internals.py
# fails by name when Tune stops reading it.
NEW_OUTPUT = "RAY_AIR_NEW_OUTPUT"


@contextlib.contextmanager
def library_output(verbose: bool):
    """Tune's newer reporter prints an experiment table and a TensorBoard hint into Ray's temporary
    session folder even at verbose=0; the older one (RAY_AIR_NEW_OUTPUT=0) prints nothing at verbose=0.
    Optuna logs each study it creates at INFO. ProgressLines and the closing hints say what matters;
    --verbose brings the libraries' own output back."""
    before, optuna_level = os.environ.get(NEW_OUTPUT), optuna.logging.get_verbosity()
    os.environ[NEW_OUTPUT] = "1" if verbose else "0"
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(optuna_level)
        if before is None:
            os.environ.pop(NEW_OUTPUT, None)
        else:
            os.environ[NEW_OUTPUT] = before
