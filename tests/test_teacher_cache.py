"""The teacher ensemble's disk cache (trainables/teachers.py via tuning.assets.prepare.prepare_teacher_ensemble):
hits run no teacher, damaged entries are rebuilt, and the accuracy table and ensemble are right."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import trainables.teachers as teachers
from tests.conftest import TEACHER_THREADS
from trainables.errors import UsageError
from trainables.prepared import TeacherOutputs
from trainables.teachers import COMPLETE, accuracy_table
from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, load_data, prepare_teacher_ensemble

SETTINGS = DataSettings(**SMOKE_SETTINGS)
NAMES = SETTINGS.teachers  # ("tiny-bert", "tiny-bert-2")


def prepare_in(cache, patch, fine_tune=None, settings=SETTINGS):
    """prepare_teacher_ensemble with its cache in `cache`; returns (outputs, names of teachers trained)."""
    trained = []
    real = teachers.fine_tune_and_predict

    def spy(job, *args, **kwargs):
        trained.append(job.name)
        return (fine_tune or real)(job, *args, **kwargs)

    patch.setenv("EXPERT_LOOP_CACHE", str(cache))
    patch.setattr(teachers, "fine_tune_and_predict", spy)
    return prepare_teacher_ensemble(settings, load_data(settings), progress=lambda *a: None,
                                    teacher_threads=TEACHER_THREADS), trained


def entries(cache) -> dict[str, list]:
    found = {name: [] for name in NAMES}
    for folder in (cache / "teachers").iterdir():
        for name in NAMES:
            if re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{24}}", folder.name):
                found[name].append(folder)
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        outputs, trained = prepare_in(cache, patch)
    return cache, outputs, trained, {name: folder for name, (folder,) in entries(cache).items()}


@pytest.fixture
def cache(built):
    """The module's cache. A copy would not do: the key includes the model folder's path (config's
    _name_or_path), and the tiny models live in the cache. Every test leaves the entries whole."""
    return built[0]


def same_logits(a: TeacherOutputs, b: TeacherOutputs) -> bool:
    return all(np.allclose(a.logits[s], b.logits[s], atol=1e-5) for s in ("train", "validation", "test"))


def test_first_preparation_trains_every_teacher(built):
    cache, outputs, trained, folders = built
    assert trained == list(NAMES)
    assert outputs.names == NAMES and outputs.teacher_labels == 96
    assert outputs.logits["train"].shape == (2, 96, 4) and outputs.logits["test"].shape == (2, 24, 4)
    for name in NAMES:
        assert (folders[name] / COMPLETE).is_file()


def test_second_preparation_is_a_cache_hit(built, cache, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a teacher was fine-tuned despite a complete cache entry")

    outputs, trained = prepare_in(cache, monkeypatch, fine_tune=must_not_run)
    assert trained == []
    assert same_logits(outputs, built[1]) and outputs.accuracy == built[1].accuracy
    assert outputs.teacher_labels == 96


def test_other_settings_are_another_entry(cache, monkeypatch):
    settings = DataSettings(**{**SMOKE_SETTINGS, "teacher_epochs": 1})
    _, trained = prepare_in(cache, monkeypatch, settings=settings)
    assert trained == list(NAMES)
    assert all(len(folders) == 2 for folders in entries(cache).values())


@pytest.mark.parametrize("damage", ["no marker", "garbage logits", "truncated logits", "no logits"])
def test_a_damaged_entry_is_rebuilt(built, cache, monkeypatch, damage):
    folder = built[3]["tiny-bert-2"]
    logits = folder / "logits.npz"
    if damage == "no marker":
        (folder / COMPLETE).unlink()
    elif damage == "garbage logits":
        logits.write_bytes(b"\x00garbage" * 100)
    elif damage == "truncated logits":
        logits.write_bytes(logits.read_bytes()[:-200])
    else:
        logits.unlink()
    outputs, trained = prepare_in(cache, monkeypatch)
    assert trained == ["tiny-bert-2"]  # only the damaged one
    assert (folder / COMPLETE).is_file()
    assert same_logits(outputs, built[1])  # seeded: the rebuilt teacher is the same teacher


def fine_tuned_checkpoint(cache, folder, num_labels: int):
    """A teacher given as an already fine-tuned checkpoint of this tool (it has run_config.json)."""
    tiny = next((cache / "tiny").glob("tiny-bert-*"))
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=num_labels).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    (folder / "run_config.json").write_text("{}")
    return str(folder)


def test_a_given_checkpoint_is_used_as_is_and_costs_no_teacher_labels(cache, tmp_path, monkeypatch):
    checkpoint = fine_tuned_checkpoint(cache, tmp_path / "ckpt", num_labels=4)
    outputs, trained = prepare_in(cache, monkeypatch, settings=DataSettings(**{**SMOKE_SETTINGS,
                                                                                   "teachers": (checkpoint,)}))
    assert trained == [] and outputs.teacher_labels == 0 and outputs.logits["train"].shape == (1, 96, 4)


def test_teachers_with_another_number_of_classes_are_refused(cache, tmp_path, monkeypatch):
    checkpoint = fine_tuned_checkpoint(cache, tmp_path / "ckpt", num_labels=3)
    settings = DataSettings(**{**SMOKE_SETTINGS, "teachers": (checkpoint,)})
    with pytest.raises(UsageError, match="3 classes but the data has 4"):
        prepare_in(cache, monkeypatch, settings=settings)


# ---------------------------------------------------------------- accuracy table and ensemble


def hand_softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits.astype(np.float64))
    return e / e.sum(axis=-1, keepdims=True)


def test_accuracy_table_from_the_stored_logits(built):
    outputs, folders = built[1], built[3]
    data = load_data(SETTINGS)
    stored = {}
    for name in NAMES:
        with np.load(folders[name] / "logits.npz") as arrays:
            stored[name] = {split: arrays[split] for split in ("validation", "test")}
    expected = {}
    for split, short in (("validation", "val"), ("test", "test")):
        gold = getattr(data, split).labels
        for name in NAMES:
            expected[f"{name}/{short}"] = float(np.mean(stored[name][split].argmax(1) == gold))
            assert np.array_equal(stored[name][split], outputs.logits[split][NAMES.index(name)])
        ensemble = np.mean([hand_softmax(stored[name][split]) for name in NAMES], axis=0)
        expected[f"ensemble/{short}"] = float(np.mean(ensemble.argmax(1) == gold))
    assert outputs.accuracy == pytest.approx(expected)


# One teacher very sure of class 0, two fairly sure of class 1: averaged probabilities say class 1
# ((0.99966 + 2 * 0.1192) / 3 = 0.4127 for class 0), averaged logits would say class 0 (8/3 > 4/3).
SPLIT_LOGITS = np.array([[[8.0, 0.0], [0.0, 1.0]], [[0.0, 2.0], [1.0, 0.0]], [[0.0, 2.0], [1.0, 0.0]]],
                        dtype=np.float32)  # (teachers, examples, classes)


def test_ensemble_probabilities_average_in_probability_space():
    probs = TeacherOutputs(("a", "b", "c"), {"validation": SPLIT_LOGITS}, 0).ensemble_probs("validation")
    p0 = (1 / (1 + math.exp(-8)) + 2 * (1 / (1 + math.exp(2)))) / 3
    p1 = (1 / (1 + math.exp(1)) + 2 * (1 / (1 + math.exp(-1)))) / 3
    np.testing.assert_allclose(probs, [[p0, 1 - p0], [p1, 1 - p1]], rtol=1e-5)


def test_accuracy_table_by_hand():
    gold = np.array([1, 0])
    data = SimpleNamespace(validation=SimpleNamespace(labels=gold), test=SimpleNamespace(labels=gold[::-1].copy()),
                           num_labels=2)
    table = accuracy_table(("a", "b", "c"), {"validation": SPLIT_LOGITS, "test": SPLIT_LOGITS}, data)
    # predictions: a -> [0, 1], b -> [1, 0], c -> [1, 0]; ensemble -> [1, 0]
    assert table == {"a/val": 0.0, "b/val": 1.0, "c/val": 1.0, "ensemble/val": 1.0,
                     "a/test": 1.0, "b/test": 0.0, "c/test": 0.0, "ensemble/test": 0.0}
