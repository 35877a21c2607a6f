"""One short line per report while trials run, for the sweep and the study alike, with the count of trials
that have ended and, once one has ended in this run, the time left at this run's pace, so a long run shows
where it is without Ray's full tables."""

from __future__ import annotations

import time
from collections.abc import Callable

from ray import tune

# (trial, report) -> (the line's text, whether this report ends the trial). A module-level function: a
# restored Tuner brings its callbacks back by unpickling them.
Describe = Callable[[object, dict], tuple[str, bool]]


class ProgressLines(tune.Callback):
    """A trial counts as ended on its last report (Tune calls this before it marks the trial ended, so the
    run's last line reads N/N), when it completes, or when it errors; trials that ended before a --resume
    come back with their status. `word` names the count: "ended" (the sweep), "done" (the study)."""

    def __init__(self, total: int, describe: Describe, word: str = "ended"):
        # Wall-clock time: Tuner.restore brings this callback back in a new process, where a
        # perf_counter origin would mean nothing; the elapsed time then counts from the run's start.
        self.started = time.time()
        self.total = total  # the run's trials: Tune's list holds only those created so far
        self.describe, self.word = describe, word
        self.ended: set[str] = set()
        self.run_started, self.ended_before_run = time.time(), None

    def setup(self, **info):
        # Called by every fit, a --resume's too (the callback comes back unpickled): the pace counts from here,
        # over the trials that end in this run (trials ended before it, or paused mid-way, would bias it).
        self.run_started, self.ended_before_run = time.time(), None

    def on_step_begin(self, iteration, trials, **info):
        if self.ended_before_run is None:
            self.ended_before_run = len(self._ended(trials))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        text, ends = self.describe(trial, result)
        if ends:
            self.ended.add(trial.trial_id)
        self._print(text, trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended.add(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended.add(trial.trial_id)
        self._print(f"{trial.trial_id} errored", trials)

    def _ended(self, trials) -> set[str]:
        return self.ended | {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}

    def _print(self, text: str, trials) -> None:
        ended = len(self._ended(trials))
        print(f"[{time.time() - self.started:6.0f} s] {text} ({ended}/{self.total} trials {self.word}"
              f"{self._time_left(ended)})", flush=True)

    def _time_left(self, ended: int) -> str:
        """', about 3.2 h left at this run's pace' once a trial has ended in this run, else '' (also before Tune's
        first step, when the trials ended before this run are not known yet)."""
        if self.ended_before_run is None:
            return ""
        in_run = ended - self.ended_before_run
        if in_run <= 0 or ended >= self.total:
            return ""
        seconds = (time.time() - self.run_started) / in_run * (self.total - ended)
        return f", about {seconds / 3600:.1f} h left at this run's pace" if seconds >= 5400 else \
            f", about {seconds / 60:.0f} min left at this run's pace"
