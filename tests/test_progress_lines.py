"""The progress line's estimate of the time left: this run's pace over the trials that end in it (by hand)."""

from types import SimpleNamespace

import pytest

from tuning.trials import progress
from tuning.trials.progress import ProgressLines


def trial(trial_id: str, status: str = "RUNNING"):
    return SimpleNamespace(trial_id=trial_id, status=status)


@pytest.fixture
def clock(monkeypatch):
    now = SimpleNamespace(t=1000.0)
    monkeypatch.setattr(progress.time, "time", lambda: now.t)
    return now


def ends(trial_id: str):
    return lambda _trial, _result: (f"{trial_id} done", True)


def test_time_left_is_this_runs_pace_times_the_trials_left(clock, capsys):
    lines = ProgressLines(total=10, describe=lambda _trial, _result: ("c at budget 50", False), word="done")
    lines.setup()  # a --resume at t=1000 with 2 trials ended before it
    trials = [trial("a", "TERMINATED"), trial("b", "TERMINATED"), *(trial(x) for x in "cdefghij")]
    lines.on_step_begin(0, trials)
    lines.on_trial_result(0, trials, trials[2], {})  # a report that ends no trial: no pace yet
    clock.t = 1600.0  # c ends: 1 trial in 600 s, 7 left -> 4,200 s
    lines.describe = ends("c")
    lines.on_trial_result(0, trials, trials[2], {})
    clock.t = 2200.0  # d ends: 2 trials in 1,200 s, 6 left -> 3,600 s
    lines.describe = ends("d")
    lines.on_trial_result(0, trials, trials[3], {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(2/10 trials done)")
    assert out[1].endswith("(3/10 trials done, about 70 min left at this run's pace)")
    assert out[2].endswith("(4/10 trials done, about 60 min left at this run's pace)")


def test_long_waits_read_in_hours_and_the_last_trial_has_none(clock, capsys):
    lines = ProgressLines(total=3, describe=ends("a"))
    lines.setup()
    trials = [trial("a"), trial("b"), trial("c")]
    lines.on_step_begin(0, trials)
    clock.t = 1000.0 + 3 * 3600  # a ends after 3 h: 2 left -> 6 h
    lines.on_trial_result(0, trials, trials[0], {})
    for name in "bc":
        lines.describe = ends(name)
        lines.on_trial_complete(0, trials, trials["abc".index(name)])
    lines.on_trial_result(0, trials, trials[2], {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(1/3 trials ended, about 6.0 h left at this run's pace)")
    assert out[1].endswith("(3/3 trials ended)")


def test_no_estimate_before_tunes_first_step_says_which_trials_ended_earlier(clock, capsys):
    lines = ProgressLines(total=4, describe=ends("a"))
    lines.setup()
    clock.t = 1600.0
    lines.on_trial_result(0, [trial("a"), trial("b")], trial("a"), {})
    assert capsys.readouterr().out.endswith("(1/4 trials ended)\n")
