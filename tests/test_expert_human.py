"""A person as the expert: a round's queries written as a CSV and as Label Studio tasks, and answers read back
from the CSV or from Label Studio's JSON and JSON-MIN exports, refusing unknown or missing rows and labels
outside the label set.

Label Studio's side is checked against its documented formats (task import: a list of {"data", "predictions"};
JSON export: tasks with "annotations" whose "result" holds {"from_name", "to_name", "type": "choices", "value":
{"choices": [...]}}; JSON-MIN: one flat record per annotation, a single choice written as its string), as its
SDK's converter (label_studio_sdk/converter, 2.1.2) reads and writes them. The SDK itself checks them in
tests/test_label_studio_sdk.py, in a process of its own."""

import csv
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from trainables.data import Examples
from trainables.errors import UsageError
from trainables.experts.human import answers_to_expert, read_answers, write_queries

LABELS = ("Dental", "Medicine", "Social_Preventive_Medicine")
TEXTS = Examples(("Which tooth erupts first?", "Treat fever, with a comma", 'Vaccine "cold chain"?', "x"), [0, 1, 2, 0])
QUERIED = np.array([2, 0, 1])
STUDENT = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])


@pytest.fixture
def files(tmp_path):
    return write_queries(tmp_path, 3, QUERIED, TEXTS, LABELS, STUDENT, model_version="student-round-3")


def test_queries_csv_holds_the_rows_the_students_guess_and_an_empty_label(files):
    with files.csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert files.csv.name == "round-3-queries.csv"
    assert [r["row_id"] for r in rows] == ["2", "0", "1"]
    assert rows[0] == {"row_id": "2", "text": 'Vaccine "cold chain"?', "student_guess": "Social_Preventive_Medicine",
                       "student_confidence": "0.500", "label": ""}
    assert rows[2]["text"] == "Treat fever, with a comma" and rows[2]["student_guess"] == "Medicine"


def test_multiple_choice_queries_list_question_and_options(tmp_path):
    choice = Examples(("2 + 2?",), [1], options=(("3", "4"),))
    written = write_queries(tmp_path, 1, [0], choice, ("A", "B"), np.array([[0.3, 0.7]]))
    with written.csv.open(newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["question"], row["option_A"], row["option_B"], row["student_guess"]) == ("2 + 2?", "3", "4", "B")
    task = json.loads(written.tasks.read_text())[0]
    assert task["data"]["text"] == "2 + 2?\nA. 3\nB. 4"


def test_label_studio_tasks_and_their_labelling_interface(files):
    tasks = json.loads(files.tasks.read_text())
    assert [t["data"]["row_id"] for t in tasks] == [2, 0, 1]
    assert tasks[1] == {"data": {"row_id": 0, "text": "Which tooth erupts first?"}, "predictions": [{
        "model_version": "student-round-3", "score": 0.6,
        "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["Dental"]}}]}]}
    view = ET.fromstring(files.label_config.read_text())
    text, choices = view.find("Text"), view.find("Choices")
    assert text.get("name") == "text" and text.get("value") == "$text"
    assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("label", "text", "single")
    assert [c.get("value") for c in choices.findall("Choice")] == list(LABELS)


def fill_csv(path, labels: dict[str, str]) -> None:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "label": labels.get(row["row_id"], row["label"])})


def test_answers_read_back_from_the_csv_in_query_order(files):
    fill_csv(files.csv, {"2": "social preventive medicine", "0": "Dental", "1": " MEDICINE "})
    labels = read_answers(files.csv, LABELS, QUERIED)
    assert labels.tolist() == [2, 0, 1]
    answer = answers_to_expert(labels, len(LABELS))
    assert answer.probs.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]] and answer.cost.calls == 3


def exported_task(task_id, row_id, annotations):
    return {"id": task_id, "data": {"row_id": row_id, "text": "..."}, "annotations": annotations, "predictions": []}


def annotation(choice, created, cancelled=False):
    return {"id": 1, "created_at": created, "was_cancelled": cancelled, "result": [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}]}


def test_answers_read_back_from_a_label_studio_json_export(tmp_path):
    export = [
        exported_task(101, 2, [annotation("Social_Preventive_Medicine", "2026-12-06T10:00:00Z")]),
        # Two annotations: the newest that was not cancelled counts.
        exported_task(102, 0, [annotation("Medicine", "2026-12-06T10:00:00Z"),
                               annotation("Dental", "2026-12-06T11:00:00Z"),
                               annotation("Surgery", "2026-12-06T12:00:00Z", cancelled=True)]),
        exported_task(103, 1, [annotation("Medicine", "2026-12-06T10:00:00Z")]),
    ]
    path = tmp_path / "project-1-at-2026-12-06.json"
    path.write_text(json.dumps(export))
    assert read_answers(path, LABELS, QUERIED).tolist() == [2, 0, 1]


def test_answers_read_back_from_a_label_studio_json_min_export(tmp_path):
    # JSON-MIN: the task's data keys, its id, and the control's name with the single choice as a string.
    export = [{"row_id": r, "text": "...", "id": 100 + r, "label": LABELS[label], "annotator": 1, "annotation_id": r}
              for r, label in ((2, 2), (0, 0), (1, 1))]
    path = tmp_path / "export-min.json"
    path.write_text(json.dumps(export))
    assert read_answers(path, LABELS, QUERIED).tolist() == [2, 0, 1]


@pytest.mark.parametrize(("answers", "message"), [
    ({"2": "Surgery"}, "label(s) outside the label set (Dental, Medicine, Social_Preventive_Medicine): 2: 'Surgery'"),
    ({"1": "  "}, "row_id(s) without an answer: 1"),  # a label left empty is no answer
])
def test_bad_answers_in_the_csv_are_named(files, answers, message):
    fill_csv(files.csv, {"2": "Dental", "0": "Dental", "1": "Medicine", **answers})
    with pytest.raises(UsageError) as refused:
        read_answers(files.csv, LABELS, QUERIED)
    assert message in str(refused.value)


def test_unknown_rows_and_two_labels_for_one_row_are_named(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text("row_id,label\n2,Dental\n0,Dental\n1,Medicine\n7,Dental\nabc,Dental\n1,Dental\n")
    with pytest.raises(UsageError) as refused:
        read_answers(path, LABELS, QUERIED)
    assert "row_id(s) never queried: 7, abc" in str(refused.value)
    assert "row_id(s) answered with two labels: 1" in str(refused.value)


@pytest.mark.parametrize(("content", "message"), [
    ("row_id,answer\n2,Dental\n", "lacks the column(s) label"),
    ("not json", "is not JSON"),
    ('{"data": {"text": "no row id"}, "annotations": []}', "has no data.row_id (not one of our tasks)"),
    ('[{"text": "min without row id", "label": "Dental"}]', "a record has no row_id"),
])
def test_files_that_are_not_answers_are_refused(tmp_path, content, message):
    path = tmp_path / ("answers.csv" if content.startswith("row_id") else "answers.json")
    path.write_text(content)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_answers(path, LABELS, QUERIED)
    with pytest.raises(UsageError, match="does not exist"):
        read_answers(tmp_path / "missing.csv", LABELS, QUERIED)


def test_a_task_without_a_usable_annotation_is_a_missing_answer(tmp_path):
    export = [exported_task(101, 2, [annotation("Dental", "t", cancelled=True)]), exported_task(102, 0, []),
              exported_task(103, 1, [annotation("Medicine", "t")])]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    with pytest.raises(UsageError, match=r"row_id\(s\) without an answer: 0, 2"):
        read_answers(path, LABELS, QUERIED)


def test_a_row_id_of_other_digits_is_named_not_a_traceback(tmp_path):
    # '²'.isdigit() is True but int('²') raises; int('٣') is 3, another row than the text shows.
    path = tmp_path / "answers.csv"
    path.write_text("row_id,label\n2,Dental\n0,Dental\n1,Medicine\n²,Dental\n٣,Dental\n", encoding="utf-8")
    with pytest.raises(UsageError, match="row_id\\(s\\) never queried: ², ٣"):
        read_answers(path, LABELS, QUERIED)


def test_rows_of_empty_cells_are_skipped(files):
    # Spreadsheets save trailing empty rows as commas only: no answer, and not a row named with nothing after it.
    fill_csv(files.csv, {"2": "Dental", "0": "Dental", "1": "Medicine"})
    with files.csv.open("a", newline="") as f:
        f.write(",,,,\r\n, ,,\r\n,,,,,,\r\n1\r\n")  # and a short row: row 1 without a label, answered above
    assert read_answers(files.csv, LABELS, QUERIED).tolist() == [0, 0, 1]
    with files.csv.open("a", newline="") as f:
        f.write(",,,,Dental\r\n")  # a label without its row_id is not blank: named
    with pytest.raises(UsageError, match=r"row_id\(s\) never queried: \(empty\)$"):
        read_answers(files.csv, LABELS, QUERIED)


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_csv_saved_with_semicolons_or_tabs_is_read(files, delimiter):
    # Excel in a locale whose decimal mark is a comma saves semicolons (and the confidence as 0,500).
    fill_csv(files.csv, {"2": "Dental", "0": "Dental", "1": "Medicine"})
    with files.csv.open(newline="") as f:
        rows = list(csv.reader(f))
    with files.csv.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f, delimiter=delimiter).writerows([r[:-2] + [r[-2].replace(".", ","), r[-1]] for r in rows])
    assert delimiter in files.csv.read_text().splitlines()[0] and "0,500" in files.csv.read_text()
    assert read_answers(files.csv, LABELS, QUERIED).tolist() == [0, 0, 1]
    (files.csv.parent / "no-label.csv").write_text(f"row_id{delimiter}answer\n2{delimiter}Dental\n")
    with pytest.raises(UsageError, match=r"lacks the column\(s\) label$"):  # not 'label, row_id'
        read_answers(files.csv.parent / "no-label.csv", LABELS, QUERIED)


FORMULAS = ('=HYPERLINK("http://x.example","click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tTab", "\rCR")


def test_text_a_spreadsheet_would_run_as_a_formula_is_guarded_and_the_answers_still_read(tmp_path):
    examples = Examples((*FORMULAS, "-1", "fine = text"), [0] * 8)
    names = ("-1", "=x", "ok")  # label names come from the data too
    probs = np.eye(3)[[1, 0, 2, 1, 0, 2, 1, 0]]
    files = write_queries(tmp_path, 1, range(8), examples, names, probs)
    with files.csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows] == [*("'" + t for t in FORMULAS), "-1", "fine = text"]  # a number runs nothing
    assert [r["student_guess"] for r in rows] == ["'=x", "-1", "ok"] * 2 + ["'=x", "-1"]
    assert [t["data"]["text"] for t in json.loads(files.tasks.read_text())] == list(examples.text)  # not a sheet
    # The answers are read from row_id and label alone: without the text column, with guesses copied as shown.
    with files.csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["row_id", "label"])
        writer.writeheader()
        writer.writerows({"row_id": r["row_id"], "label": r["student_guess"]} for r in rows)
    assert read_answers(files.csv, names, range(8)).tolist() == [1, 0, 2, 1, 0, 2, 1, 0]


def test_the_options_of_a_multiple_choice_question_are_guarded_too(tmp_path):
    choice = Examples(("=1+1?",), [1], options=(("-1", "@A1"),))
    written = write_queries(tmp_path, 1, [0], choice, ("A", "B"), np.array([[0.3, 0.7]]))
    with written.csv.open(newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["question"], row["option_A"], row["option_B"]) == ("'=1+1?", "-1", "'@A1")


EARLIER = {5: 1, 3: 0}  # rows answered in earlier rounds (Medicine, Dental), which the run has trained on


def test_an_export_of_every_round_passes_over_the_earlier_rounds_answered_as_before(tmp_path):
    # One Label Studio project for every round exports the earlier rounds' tasks too.
    export = [exported_task(90, 5, [annotation("Medicine", "2026-12-05T10:00:00Z")]),
              exported_task(91, 3, [annotation("Dental", "2026-12-05T10:00:00Z")]),
              *(exported_task(100 + r, r, [annotation(LABELS[r], "2026-12-06T10:00:00Z")]) for r in QUERIED.tolist())]
    path = tmp_path / "project-1.json"
    path.write_text(json.dumps(export))
    assert read_answers(path, LABELS, QUERIED, EARLIER).tolist() == [2, 0, 1]
    minimal = tmp_path / "project-1-min.json"
    minimal.write_text(json.dumps([{"row_id": 5, "label": "Medicine"}, *({"row_id": int(r), "label": LABELS[r]}
                                                                          for r in QUERIED)]))
    assert read_answers(minimal, LABELS, QUERIED, EARLIER).tolist() == [2, 0, 1]
    csv_file = tmp_path / "all-rounds.csv"
    csv_file.write_text("row_id,label\n5,medicine\n3,\n2,Social_Preventive_Medicine\n0,Dental\n1,Medicine\n")
    assert read_answers(csv_file, LABELS, QUERIED, EARLIER).tolist() == [2, 0, 1]
    # Answered otherwise now (a newer annotation of an earlier task): refused, the run has trained on the old one.
    export[0]["annotations"].append(annotation("Dental", "2026-12-06T12:00:00Z"))
    path.write_text(json.dumps(export))
    with pytest.raises(UsageError, match=r"row_id\(s\) of earlier rounds answered otherwise than before, .*: "
                                         r"5: 'Dental' \(was Medicine\)$"):
        read_answers(path, LABELS, QUERIED, EARLIER)
    with pytest.raises(UsageError, match=r"row_id\(s\) never queried: 5, 3"):  # without the earlier answers
        read_answers(csv_file, LABELS, QUERIED)


def test_a_rounds_csv_already_there_is_kept_never_replaced(files):
    # A run stopped after writing a round's files and before its checkpoint writes them again when continued: the
    # person may be filling the CSV in already (here saved by a spreadsheet, rows sorted), so it is kept.
    fill_csv(files.csv, {"2": "Dental"})
    with files.csv.open(newline="") as f:
        header, *rows = csv.reader(f)
    with files.csv.open("w", newline="") as f:
        csv.writer(f, delimiter=";").writerows([header, *reversed(rows)])
    filled = files.csv.read_bytes()
    files.tasks.unlink()  # stopped between the two files
    again = write_queries(files.csv.parent, 3, QUERIED, TEXTS, LABELS, STUDENT, model_version="student-round-3")
    assert again == files and files.csv.read_bytes() == filled and files.tasks.is_file()
    # A CSV of other rows is not this round's: refused, nothing written.
    files.tasks.unlink()
    with pytest.raises(UsageError, match="round-3-queries.csv is there already and holds other rows than this "
                                         "round's queries: move it away"):
        write_queries(files.csv.parent, 3, np.array([2, 0, 3]), TEXTS, LABELS, STUDENT)
    assert files.csv.read_bytes() == filled and not files.tasks.exists()
    files.csv.write_text("not,our,file\n1,2,3\n")
    with pytest.raises(UsageError, match="is there already and is not this round's queries .*lacks the column"):
        write_queries(files.csv.parent, 3, QUERIED, TEXTS, LABELS, STUDENT)
