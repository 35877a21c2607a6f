"""The same sweep with the same --seed, run twice, proposes the same trials and ends with the same metrics:
every epoch's figures, not only the last. One trial at a time (--max-concurrent 1), so ASHA sees the
reports in the same order, and float32 forced, because bf16=auto is decided per trial by a timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainables import metrics as m
from tuning import run

# Figures that must repeat exactly; wall times, dates, process ids and Ray's trial ids need not.
REPEATED = (m.EPOCH, "train_loss", m.VAL_ACCURACY, m.VAL_LOSS, m.VAL_MACRO_F1, m.TEST_ACCURACY, m.LABELS_USED)


def sweep(storage: Path, seed: int) -> None:
    assert run.main(["--method", "supervised", "--smoke-test", "--num-samples", "2", "--seed", str(seed),
                     "--max-concurrent", "1", "--fix", "bf16=false", "--storage-path", str(storage),
                     "--name", "same"]) == 0


def trials(experiment: Path) -> list[tuple[str, list[tuple]]]:
    """Per trial: its config (as sorted JSON) and the repeated figures of every report, in config order."""
    found = []
    for path in experiment.glob("*/result.json"):
        reports = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        config = json.dumps(reports[0]["config"], sort_keys=True)
        found.append((config, [tuple(report[key] for key in REPEATED) for report in reports]))
    return sorted(found)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_trials_and_the_same_metrics(ray_session, tmp_path):
    sweep(tmp_path / "first", seed=7)
    sweep(tmp_path / "second", seed=7)
    first, second = trials(tmp_path / "first" / "same"), trials(tmp_path / "second" / "same")
    assert len(first) == 2
    assert len({config for config, _ in first}) == 2  # the sampler proposed two different trials
    assert first == second
