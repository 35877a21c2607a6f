"""Label accounting of supervised and kd (the Expert-Loop's is in test_expert_loop.py), and --teacher-split,
which keeps rows from the student only for teachers fine-tuned here."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.conftest import TEACHER_THREADS
from trainables import metrics as m
from trainables.checkpoint import save_checkpoint
from trainables.config import TrialConfig
from trainables.expert_loop import candidate_rows
from trainables.methods import label_counts
from trainables.models import build_model
from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, load_data, prepare, teacher_rows

TRAIN, VALIDATION = 96, 24  # the smoke data's splits


def counts(method: str, alpha: float = 0.5) -> dict:
    prepared = SimpleNamespace(teachers=SimpleNamespace(teacher_labels=48),
                               encoded={"validation": [None] * VALIDATION})
    return label_counts(TrialConfig(method=method, alpha=alpha), prepared, TRAIN)


@pytest.mark.parametrize(("method", "alpha", "gold", "teacher_rows_read"), [
    ("supervised", 0.5, TRAIN, 0),
    ("kd", 0.5, TRAIN, TRAIN),
    ("kd", 1.0, 0, TRAIN),  # alpha 1 ignores the gold labels
    ("kd", 0.0, TRAIN, 0),  # alpha 0 is cross-entropy: the teachers' targets are not read
])
def test_labels_count_when_the_loss_reads_them(method, alpha, gold, teacher_rows_read):
    report = counts(method, alpha)
    assert report[m.LABELS_USED] == gold
    assert report[m.TEACHER_LABELLED_ROWS] == teacher_rows_read
    assert report[m.VALIDATION_LABELS] == VALIDATION
    assert report[m.TEACHER_LABELS] == (48 if method == "kd" else 0)
    assert report[m.EXPERT_QUERIES] == (TRAIN if method == "kd" else 0)


# ---------------------------------------------------------------- --teacher-split and given checkpoints


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_bert_task):
    """Two tiny students saved as this tool's checkpoints: teachers 'fine-tuned elsewhere'."""
    blueprint, _, _ = tiny_bert_task
    folders = []
    for seed in (0, 1):
        folder = tmp_path_factory.mktemp(f"teacher-{seed}")
        info = SimpleNamespace(student=blueprint, task="classification", label_names=("a", "b", "c", "d"),
                               provenance={})
        save_checkpoint(folder, build_model(blueprint, seed), info, TrialConfig(method="supervised"), {})
        folders.append(str(folder))
    return folders


def settings(teachers, split: float) -> DataSettings:
    return DataSettings(**{**SMOKE_SETTINGS, "teachers": tuple(teachers), "teacher_split": split})


def test_the_split_takes_rows_only_for_teachers_fine_tuned_here(checkpoints):
    data = load_data(settings(checkpoints, 0.5))
    assert len(teacher_rows(settings(checkpoints, 0.5), data)) == 0  # given checkpoints learn nothing here
    assert len(teacher_rows(settings(["tiny-bert", "tiny-bert-2"], 0.5), data)) == TRAIN // 2
    assert len(teacher_rows(settings([checkpoints[0], "tiny-bert"], 0.5), data)) == TRAIN // 2  # one learns here
    assert len(teacher_rows(settings(["tiny-bert"], 0.0), data)) == TRAIN


def test_given_checkpoints_and_a_teacher_split_leave_the_whole_pool_end_to_end(checkpoints, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path))
    said = []
    prepared = prepare(settings(checkpoints, 0.5), need_teachers=True, progress=said.append,
                       teacher_threads=TEACHER_THREADS)
    assert prepared.teachers.teacher_labels == 0
    assert np.array_equal(candidate_rows(prepared), np.arange(TRAIN))
    assert any("--teacher-split takes nothing from the pool" in line for line in said)
