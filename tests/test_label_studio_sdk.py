"""A person's round against Label Studio's own SDK (label-studio-sdk 2.1.2): the labelling interface and tasks we
write are read and validated by it, answers are made by its Choices control, and its Converter's JSON-MIN and CSV
exports, like its JSON export, are read back by trainables/experts/human.py to the labels the person gave.

The SDK and what those two parts of it import are installed from PyPI into a folder of the session (a few
seconds, 75 MB; without opencv, which only its image formats need and whose pin would move numpy), and run in a
process of its own whose path puts that folder first (tests/label_studio_check.py). A Label Studio server is not
tried: the app (Django with a database, a much larger install) is not part of the suite."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainables.data import Examples
from trainables.experts.human import read_answers, write_queries

pytestmark = pytest.mark.slow  # a download from PyPI and a second Python environment

SDK = "label-studio-sdk==2.1.2"
# What its label interface and converter import, at the versions its own requirements resolve to (pip 2026-12-07),
# installed without dependencies: not opencv (for image formats), whose pin would bring numpy 2.2 with it.
SDK_IMPORTS = ("xmljson==0.2.1", "lxml==6.2.1", "jsf==0.11.2", "Faker==40.63.0", "rstr==3.2.2", "smart_open==9.0.4",
               "wrapt==2.5.2", "httpx==0.29.0", "httpcore==1.0.9", "ijson==3.6.0", "ujson==6.1.0", "appdirs==1.4.4",
               "PyJWT==2.13.0", "nltk==3.10.4")
CHECK = Path(__file__).with_name("label_studio_check.py")
LABELS = ("Dental", "Medicine", "Social_Preventive_Medicine")
TEXTS = Examples(("Which tooth erupts first?", "Treat fever, with a comma", 'Vaccine "cold chain"?', "x"),
                 [0, 1, 2, 0])


@pytest.fixture(scope="session")
def sdk_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("label-studio-sdk")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-warn-script-location", "--no-deps", "--target", str(folder), SDK, *SDK_IMPORTS],
                   check=True, timeout=600,
                   capture_output=True)
    return folder


def test_label_studio_reads_our_tasks_and_we_read_its_exports(sdk_folder, tmp_path):
    queried = np.array([2, 0, 1])
    files = write_queries(tmp_path, 1, queried, TEXTS, LABELS, np.array([[.2, .3, .5], [.6, .3, .1], [.1, .8, .1]]))
    picked = {"2": "Social_Preventive_Medicine", "0": "Medicine", "1": "Medicine"}  # the student erred on row 0
    (tmp_path / "answers.json").write_text(json.dumps(picked))
    done = subprocess.run([sys.executable, "-s", str(CHECK), str(files.label_config), str(files.tasks),
                           str(tmp_path / "answers.json"), str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(sdk_folder), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"tasks_valid": [True] * 3, "predictions_valid": [True] * 3, "wrong_prediction_valid": False}
    expected = [LABELS.index(picked[str(row)]) for row in queried]
    for export in ("export.json", "json-min/result.json", "csv/result.csv"):
        assert read_answers(tmp_path / export, LABELS, queried).tolist() == expected, export
