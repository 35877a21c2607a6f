"""Label Studio's own SDK reading what trainables/experts/human.py writes, and writing what it reads back.

Run by tests/test_label_studio_sdk.py in a process whose path puts the SDK first (label-studio-sdk and what its
label interface and converter import, installed into a folder of their own); it imports nothing of this project. Usage:

    python label_studio_check.py LABEL_CONFIG.xml TASKS.json ANSWERS.json OUT_DIR

ANSWERS.json maps row_id -> the label a person picks. The SDK parses the labelling interface, validates every
task's data and every prediction against it (and a prediction outside the label set, which must fail), builds each
answer as Label Studio's interface would (the Choices control's region), and converts the resulting JSON export
into JSON-MIN and CSV with its Converter: OUT_DIR/export.json, OUT_DIR/json-min/result.json, OUT_DIR/csv/result.csv.
Prints what the validation found as one JSON line."""

import copy
import json
import sys
from pathlib import Path

from label_studio_sdk.converter import Converter
from label_studio_sdk.label_interface import LabelInterface

CONTROL = "label"  # the Choices tag's name in human.label_config


def main() -> None:
    config, tasks, answers, out = (Path(sys.argv[1]).read_text(encoding="utf-8"),
                                   json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")),
                                   json.loads(Path(sys.argv[3]).read_text(encoding="utf-8")), Path(sys.argv[4]))
    interface = LabelInterface(config)
    wrong = copy.deepcopy(tasks[0]["predictions"][0])
    wrong["result"][0]["value"]["choices"] = ["not a label"]
    report = {"tasks_valid": [interface.validate_task({"data": task["data"]}) for task in tasks],
              "predictions_valid": [interface.validate_prediction(p) for task in tasks for p in task["predictions"]],
              "wrong_prediction_valid": interface.validate_prediction(wrong)}
    control = interface.get_control(CONTROL)
    export = [{"id": i + 1, "data": task["data"], "annotations": [{
        "id": i + 1, "result": [control.label([answers[str(task["data"]["row_id"])]])._dict()],
        "was_cancelled": False, "created_at": "2026-12-07T00:00:00Z"}]} for i, task in enumerate(tasks)]
    (out / "export.json").write_text(json.dumps(export), encoding="utf-8")
    converter = Converter(config, project_dir=str(out), download_resources=False)
    converter.convert_to_json_min(str(out / "export.json"), str(out / "json-min"), is_dir=False)
    converter.convert_to_csv(str(out / "export.json"), str(out / "csv"), is_dir=False, sep=",", header=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
