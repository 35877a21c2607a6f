"""The one-line progress report of a sweep."""

from types import SimpleNamespace

from trainables import metrics as m
from tuning.sweep import ProgressLines


def test_finished_trials_are_counted_against_the_whole_sweep(capsys):
    # With a concurrency limit Tune has created only 2 of the 8 trials when the first results arrive.
    trials = [SimpleNamespace(trial_id="a1", status="TERMINATED"), SimpleNamespace(trial_id="b2", status="RUNNING")]
    result = {m.EPOCH: 2, m.VAL_ACCURACY: 0.8125, m.LABELS_USED: 2272, m.EXPERT_QUERIES: 0}
    ProgressLines(total=8).on_trial_result(3, trials, trials[1], result)
    line = capsys.readouterr().out
    assert line.endswith("b2 epoch 2: val_accuracy 0.812, labels_used 2272, expert_queries 0 (1/8 trials finished)\n")


def test_rounds_are_named_for_the_expert_loop(capsys):
    trial = SimpleNamespace(trial_id="c3", status="RUNNING")
    result = {m.ROUND: 1, m.VAL_ACCURACY: 0.7, m.LABELS_USED: 150, m.EXPERT_QUERIES: 50}
    ProgressLines(total=4).on_trial_result(1, [trial], trial, result)
    expected = "c3 round 1: val_accuracy 0.700, labels_used 150, expert_queries 50 (0/4 trials finished)"
    assert expected in capsys.readouterr().out
