"""A person as the expert, through files: a round's queries go out as a CSV and as Label Studio tasks, and
the answers come back as a CSV or a Label Studio export.

Every row is named by `row_id`, its index in the training split. Not `id`: Label Studio gives each task an
`id` of its own and writes it beside the task's data in its exports, so `id` would be ambiguous there.

Out, per round (write_queries):
    round-<r>-queries.csv         row_id, text (or question and option_A..), student_guess, student_confidence,
                                  label (empty: the person fills it in with one of the label names); a cell
                                  that a spreadsheet would run as a formula starts with ' (see _guarded)
    round-<r>-tasks.json          Label Studio tasks: data {row_id, text}, and the student's guess as a prediction
    round-<r>-label-config.xml    the labelling interface those tasks need (Text + single Choices)

In (read_answers): the CSV above with `label` filled in; or Label Studio's JSON export (tasks with
`annotations`; a task's newest annotation that was not cancelled counts) or JSON-MIN export (one flat record
per annotation: row_id and label). Labels are the label names (case and underscores-for-spaces aside).
Rows of earlier rounds in the file (one Label Studio project for every round exports them all) are passed over
when answered as before. Every problem (an unknown or missing row_id, a label outside the label set, a row
answered twice with two labels, an earlier round's row answered otherwise) is a UsageError naming the rows,
raised before anything is returned, so nothing is kept from a bad file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from trainables.atomic import write_text
from trainables.data import Examples
from trainables.errors import UsageError
from trainables.experts.base import Cost, ExpertAnswer, as_rows
from trainables.experts.prompts import display_name

ROW_ID = "row_id"
LABEL = "label"  # the CSV column a person fills in, and the Label Studio Choices' name (from_name)
TEXT = "text"  # the Label Studio Text tag's name (to_name) and data key
SHOWN_IN_ERRORS = 5  # rows named in an error message before "and N more"


@dataclass(frozen=True)
class QueryFiles:
    csv: Path
    tasks: Path
    label_config: Path


def label_config(label_names: Sequence[str]) -> str:
    """Label Studio's labelling interface for these tasks: the text and one choice among the labels."""
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in label_names)
    return (f'<View>\n  <Text name="{TEXT}" value="${TEXT}"/>\n'
            f'  <Choices name="{LABEL}" toName="{TEXT}" choice="single" showInline="false">\n{choices}\n'
            "  </Choices>\n</View>\n")


def _row_text(examples: Examples, row: int, label_names: Sequence[str]) -> str:
    """The text, or for multiple choice the question and its options lettered by the label names (A, B, ...)."""
    if examples.options is None:
        return examples.text[row]
    options = zip(label_names, examples.options[row], strict=True)
    return examples.text[row] + "\n" + "\n".join(f"{letter}. {option}" for letter, option in options)


def write_queries(folder: Path | str, round_number: int, rows, examples: Examples, label_names: Sequence[str],
                  student_probs: np.ndarray, model_version: str = "student") -> QueryFiles:
    """The round's queried rows, with the student's guess, as a CSV and as Label Studio tasks (each file atomic).
    student_probs: (rows, classes), in the order of `rows`. A CSV of these rows already there is kept (_kept)."""
    rows, folder = as_rows(rows), Path(folder)
    guesses, confidence = student_probs.argmax(axis=1), student_probs.max(axis=1)
    files = QueryFiles(folder / f"round-{round_number}-queries.csv", folder / f"round-{round_number}-tasks.json",
                       folder / f"round-{round_number}-label-config.xml")
    if not _kept(files.csv, rows):
        write_text(files.csv, _queries_csv(rows, examples, label_names, guesses, confidence))
    tasks = [{"data": {ROW_ID: int(row), TEXT: _row_text(examples, int(row), label_names)},
              "predictions": [{"model_version": model_version, "score": float(conf), "result": [
                  {"from_name": LABEL, "to_name": TEXT, "type": "choices", "value": {"choices": [label_names[g]]}}]}]}
             for row, g, conf in zip(rows, guesses, confidence, strict=True)]
    write_text(files.tasks, json.dumps(tasks, ensure_ascii=False, indent=1))
    write_text(files.label_config, label_config(label_names))
    return files


def _kept(path: Path, rows: np.ndarray) -> bool:
    """Whether the round's CSV is there already, holding these rows: a run stopped after writing it and before its
    checkpoint writes the round again when continued, and a person may be filling the file in, so it is kept,
    never replaced. One holding other rows is not this round's: refused, before anything is written."""
    if not path.exists():
        return False
    try:
        found = [_row_id(raw) for raw, _ in _read_csv(path)]
    except UsageError as error:
        raise UsageError(f"{path} is there already and is not this round's queries ({error}): move it away, then "
                         "run this again") from None
    if None in found or sorted(found) != sorted(rows.tolist()):
        raise UsageError(f"{path} is there already and holds other rows than this round's queries: move it away "
                         "(it may hold a person's answers), then run this again")
    return True


def _queries_csv(rows, examples: Examples, label_names, guesses, confidence) -> str:
    multiple_choice = examples.options is not None
    header = ["question", *(f"option_{name}" for name in label_names)] if multiple_choice else [TEXT]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([ROW_ID, *header, "student_guess", "student_confidence", LABEL])
    for row, guess, conf in zip(rows.tolist(), guesses, confidence, strict=True):
        text = [examples.text[row], *examples.options[row]] if multiple_choice else [examples.text[row]]
        writer.writerow([row, *map(_guarded, text), _guarded(label_names[guess]), f"{conf:.3f}", ""])
    return out.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run as a formula (OWASP, CSV injection)
NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _guarded(cell: str) -> str:
    """A cell of the data set's text (or a label name) as written for a person: the CSV is opened in a spreadsheet,
    which runs a cell starting with = + - @ (or tab, CR) as a formula, so such a cell gets a ' before it, as OWASP
    advises; a plain number ('-1') runs nothing and is left as it is. The answers are read from row_id and label
    alone, so the text's guard is never read back; a label copied from student_guess is unguarded (_unguarded)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(cell) else cell


def _unguarded(cell: str) -> str:
    """The cell without the ' that _guarded() put before it."""
    return cell[1:] if cell.startswith("'") and _guarded(cell[1:]) != cell[1:] else cell


# ---------------------------------------------------------------- answers back


def read_answers(path: Path | str, label_names: Sequence[str], expected_rows,
                 earlier: dict[int, int] | None = None) -> np.ndarray:
    """The label index of each expected row, in the order given, read from a CSV or a Label Studio export.
    earlier: row -> label index of the rows answered in earlier rounds. A file may hold them too (one Label
    Studio project for every round exports them all): they are passed over when their label is the one stored,
    and refused when it is another, since the run has trained on them."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"answers file {path} does not exist")
    pairs = _read_csv(path) if path.suffix.lower() == ".csv" else _read_label_studio(path)
    return _check(pairs, label_names, as_rows(expected_rows), path, earlier or {})


def answers_to_expert(labels: np.ndarray, num_labels: int, seconds: float = 0.0) -> ExpertAnswer:
    """A person's labels as an expert's answer: one-hot, one call per row."""
    return ExpertAnswer(np.eye(num_labels)[labels], Cost(calls=len(labels), seconds=seconds))


def _read_csv(path: Path) -> list[tuple[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
            text = f.read()
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
        missing = {ROW_ID, LABEL} - set(reader.fieldnames or ())
        if missing:
            raise UsageError(f"answers file {path} lacks the column(s) {', '.join(sorted(missing))}")
        # A short row's missing cells are None: an empty answer, not the label 'None'.
        return [(row[ROW_ID] or "", row[LABEL] or "") for row in reader if not _blank(row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"answers file {path} is not a readable CSV ({error})") from None


DELIMITERS = (",", ";", "\t")  # ours; Excel's where the decimal mark is a comma; a tab-separated export


def _delimiter(text: str) -> str:
    """The delimiter whose split of the header line names most of the columns read (row_id and label), the first
    of DELIMITERS on a tie: a spreadsheet in a locale whose decimal mark is a comma saves the file with semicolons,
    and one lacking a column is then said to lack that column, not both."""
    header = text.splitlines()[0] if text else ""
    return max(DELIMITERS, key=lambda d: len({ROW_ID, LABEL} & set(next(csv.reader([header], delimiter=d), []))))


def _blank(row: dict) -> bool:
    """A row of empty cells (',,,,'): spreadsheets save trailing empty rows so; it is no answer, and no row.
    DictReader gives a short row's missing cells as None and a long row's extra cells as a list."""
    cells = [cell for value in row.values() for cell in (value if isinstance(value, list) else [value])]
    return not any((cell or "").strip() for cell in cells)


def _read_label_studio(path: Path) -> list[tuple[str, str]]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"answers file {path} is not JSON ({error})") from None
    tasks = [tasks] if isinstance(tasks, dict) else tasks
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise UsageError(f"answers file {path} is not a Label Studio export (a list of tasks)")
    return [pair for task in tasks if (pair := _task_answer(task, path)) is not None]


def _task_answer(task: dict, path: Path) -> tuple[str, str] | None:
    """(row_id, label) of one exported task: JSON (data + annotations) or JSON-MIN (flat). None: no answer."""
    if "data" not in task:  # JSON-MIN: the data's keys and the control's name side by side
        if ROW_ID not in task:
            raise UsageError(f"answers file {path}: a record has no {ROW_ID}")
        value = task.get(LABEL)
        return (str(task[ROW_ID]), _choice(value)) if value is not None else None
    data = task["data"] if isinstance(task["data"], dict) else {}
    if ROW_ID not in data:
        raise UsageError(f"answers file {path}: task {task.get('id', '?')} has no data.{ROW_ID} (not one of our tasks)")
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)
                   and not (a.get("was_cancelled") or a.get("skipped"))]
    annotations.sort(key=lambda a: str(a.get("created_at") or ""), reverse=True)  # the newest, as Label Studio does
    for annotation in annotations:
        for result in annotation.get("result") or []:
            if isinstance(result, dict) and result.get("from_name") == LABEL:
                return str(data[ROW_ID]), _choice((result.get("value") or {}).get("choices"))
    return None


def _choice(value) -> str:
    """One choice: JSON-MIN writes a single choice as its string; a list of one is the same; anything else is
    kept as text and refused later as a label outside the set."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and isinstance(value.get("choices"), list) and len(value["choices"]) == 1:
        value = value["choices"][0]
    return value if isinstance(value, str) else json.dumps(value)


def _names(rows) -> str:
    shown = ", ".join(map(str, list(rows)[:SHOWN_IN_ERRORS]))
    return shown + (f" and {len(rows) - SHOWN_IN_ERRORS} more" if len(rows) > SHOWN_IN_ERRORS else "")


def _row_id(raw) -> int | None:
    """A row id as an int, None for anything but ASCII digits: str.isdigit() also takes '²' and '٣', which int()
    refuses or reads as another number."""
    text = str(raw).strip()
    return int(text) if re.fullmatch(r"-?[0-9]+", text) else None


def _check(pairs: list[tuple[str, str]], label_names: Sequence[str], expected: np.ndarray, path: Path,
           earlier: dict[int, int]) -> np.ndarray:
    by_name = {form.strip().lower(): i for i, name in enumerate(label_names) for form in (name, display_name(name))}
    wanted = set(expected.tolist())
    answers: dict[int, int] = {}
    unknown, outside, conflicting, changed = [], {}, [], []
    for raw_row, raw_label in pairs:
        row = _row_id(raw_row)
        label = by_name.get(_unguarded(str(raw_label).strip()).lower())
        if row in earlier and row not in wanted:
            if str(raw_label).strip() and label != earlier[row]:  # the same label again (or none) is passed over
                changed.append(f"{row}: {raw_label!r} (was {label_names[earlier[row]]})")
        elif row is None or row not in wanted:
            unknown.append(str(raw_row).strip() or "(empty)")  # a row_id left empty beside a label: said so
        elif not str(raw_label).strip():
            continue  # left empty: no answer (named below as missing unless answered elsewhere)
        elif label is None:
            outside[row] = raw_label
        elif answers.setdefault(row, label) != label:
            conflicting.append(row)
    missing = sorted(wanted - set(answers) - set(outside))
    problems = [f"row_id(s) never queried: {_names(unknown)}" if unknown else "",
                f"label(s) outside the label set ({', '.join(label_names)}): "
                f"{_names([f'{row}: {label!r}' for row, label in outside.items()])}" if outside else "",
                f"row_id(s) answered with two labels: {_names(conflicting)}" if conflicting else "",
                f"row_id(s) without an answer: {_names(missing)}" if missing else "",
                f"row_id(s) of earlier rounds answered otherwise than before, though the run has trained on their "
                f"answers (give them their earlier label, or leave them out): {_names(changed)}" if changed else ""]
    if any(problems):
        raise UsageError(f"answers file {path}: {'; '.join(p for p in problems if p)}")
    return np.array([answers[int(r)] for r in expected], dtype=np.int64)


# ---------------------------------------------------------------- the expert


class AwaitingLabels(Exception):  # not an error: the run pauses for a person
    """A round's queries are written for a person: the run saves its state and stops until the answers come back
    (`expert-loop label --import FILE`). `state` and `model`: the loop's, to checkpoint."""

    def __init__(self, files: QueryFiles, rows: list[int], state: dict | None = None, model=None) -> None:
        super().__init__(f"{len(rows)} rows to label in {files.csv} (or Label Studio: {files.tasks})")
        self.files, self.rows, self.state, self.model = files, rows, state, model


class HumanExpert:
    """A person, through files. `answered`: row -> probabilities (one-hot) of the answers imported so far,
    kept in the loop's state. label() answers only from them; the loop writes a round's files (write_round)
    for the rows still missing and stops."""

    name = "human"
    sunk_gold_labels = 0

    def __init__(self, folder: Path, examples: Examples, label_names: Sequence[str],
                 answered: dict[int, np.ndarray]) -> None:
        self.folder, self.examples, self.label_names, self.answered = Path(folder), examples, label_names, answered

    def missing(self, rows) -> list[int]:
        return [int(r) for r in as_rows(rows) if int(r) not in self.answered]

    def write_round(self, round_number: int, rows, student_probs: np.ndarray) -> QueryFiles:
        return write_queries(self.folder, round_number, rows, self.examples, self.label_names, student_probs)

    def label(self, rows) -> ExpertAnswer:
        rows = as_rows(rows)
        if missing := self.missing(rows):
            raise UsageError(f"the person's answers lack row_id(s) {_names(missing)}")
        labels = np.array([int(np.argmax(self.answered[int(r)])) for r in rows], dtype=np.int64)
        return answers_to_expert(labels, len(self.label_names))
