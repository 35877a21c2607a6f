"""benchmarks/recheck_study.py against a made-up study written by the report code itself (write_study_csv and
summarise, as the runner does): it passes on what the report wrote, fails on one tampered number, and refuses
a missing folder. No Ray, no training: a few seconds."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import recheck_study
from tests.conftest import ROOT
from trainables.study_settings import encode_predictions
from tuning.budget_study.report import summarise, write_study_csv

LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1, 0, 0])  # 10 test labels: class 0 50%, 1 30%, 2 20%
SEEDS = list(range(10))  # ten seeds: the smallest sign-flip p, 2/1024, survives Holm over 10 tests
JITTER = [0, 1, -1, 0, 1, 0, -1, 1, 0, 0]  # per seed, shared by the arms compared in a pair: same sign every seed
MIXED = [1, -1, 0, 1, -1, 1, 0, 1, 1, 0]  # differences of both signs: no verdict
# (arm, budget) -> right answers of 10 per seed (None: the student predicts class 0 only)
CORRECT = {
    ("supervised", 10): [6 + j for j in JITTER], ("supervised", 20): [7 + j for j in JITTER],
    ("oracle:margin", 10): [6 + j for j in JITTER],
    ("oracle:margin", 20): [7 + j + m for j, m in zip(JITTER, MIXED, strict=True)],
    # expert:random is supervised less one everywhere ("loses to"); expert:margin two above it at 20 ("beats")
    ("expert:random", 10): [5 + j for j in JITTER], ("expert:random", 20): [6 + j for j in JITTER],
    ("expert:margin", 10): [5 + j for j in JITTER], ("expert:margin", 20): [8 + j for j in JITTER],
    ("expert:random@llm", 10): [5 + j for j in JITTER], ("expert:random@llm", 20): [6 + j for j in JITTER],
    ("expert:margin@llm", 10): [5 + j for j in JITTER], ("expert:margin@llm", 20): [6 + m for m in MIXED[:-1]] + [None],
    ("kd_all", 40): [8] * 10, ("full:supervised", 40): [9] * 10,
}


def right_on(k: int) -> np.ndarray:
    """Right on the first k test examples, one class off on the rest: every class predicted for k >= 3."""
    return np.where(np.arange(10) < k, LABELS, (LABELS + 1) % 3)


def study_row(arm: str, budget: int, seed: int, classes: np.ndarray) -> dict:
    k = CORRECT[(arm, budget)][seed]
    predicted = np.zeros(10, dtype=int) if k is None else right_on(k)
    gold = budget if arm in ("supervised", "full:supervised") or arm.startswith("oracle:") else 4
    return {"arm": arm, "budget": budget, "seed": seed, "gold_labels": gold, "expert_queries": budget - gold,
            "expert_reads": 10 * budget if arm == "expert:margin" else 0, "selection": "last",
            "selection_labels": 0,
            # supervised at 10, seed 0, sits at the validation majority rate 0.5; so does the collapsed point
            "val_accuracy": 0.5 if (arm, budget, seed) == ("supervised", 10, 0) or k is None else 0.7,
            "test_accuracy": float((predicted == LABELS).mean()), "test_macro_f1": 0.5, "train_seconds": 2.0,
            "epoch": 3, "epochs_run": 6, "steps": 30, "best_step": 15, "validation_curve": "",
            "test_predictions": encode_predictions(classes[predicted]),
            "stop_predictions": "0120120120", "stop_uncertainty": 0.5}


def write_study(folder, classes: np.ndarray, names: list[str], charge_sunk: bool) -> dict:
    """study.csv and summary.json in folder, each written by the report code; returns the summary."""
    rows = [study_row(arm, budget, seed, classes) for arm, budget in CORRECT for seed in SEEDS]
    frame = write_study_csv(rows, folder / "study.csv")
    meta = {"validation_majority_rate": 0.5, "label_names": names, "charge_sunk": charge_sunk,
            "prices": {"gold": 1.0, "expert": 0.1, "read": 0.01, "llm": 0.02, "openai": 0.1},
            "teacher_gold_labels": 40}
    summary = summarise(frame, classes[LABELS], [10, 20], meta, replicates=50)
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    np.savetxt(folder / "test_labels.txt", classes[LABELS], fmt="%d")
    return summary


# Three classes are written one digit each ("0120..."); classes 0, 1 and 11 of twelve comma-separated.
VARIANTS = {"digits": (np.array([0, 1, 2]), ["neg", "pos", "amb"], False),
            "commas": (np.array([0, 1, 11]), [f"c{i}" for i in range(12)], True)}


@pytest.fixture(scope="module", params=list(VARIANTS))
def study(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    return folder, write_study(folder, *VARIANTS[request.param])


def results(output: str) -> dict[str, str]:
    """quantity -> PASS / FAIL from the printed table."""
    return {line[:52].strip(): line.split()[-1] for line in output.splitlines() if line.endswith(("PASS", "FAIL"))}


def test_the_made_up_study_exercises_every_verdict_and_flag(study):
    _, summary = study
    assert {t["verdict"] for t in summary["comparisons"]} == {"beats", "loses to", "cannot be told apart from"}
    flagged = {arm: [(p["budget"], p["seed"]) for p in e["flags"]["points"]] for arm, e in summary["arms"].items()}
    assert flagged["supervised"] == [(10, 0)] and flagged["expert:margin@llm"] == [(20, 9)]
    assert summary["comparisons"][0]["differences"]  # the check below compares something


@pytest.mark.parametrize("labels", [False, True])
def test_what_the_report_wrote_passes(study, capsys, labels):
    folder, _ = study
    argv = [str(folder)] + (["--test-labels", str(folder / "test_labels.txt")] if labels else [])
    assert recheck_study.main(argv) == 0
    out = capsys.readouterr().out
    table = results(out)
    assert set(table.values()) == {"PASS"} and len(table) >= 25
    assert ("test_accuracy column vs predictions and labels" in table) == labels
    assert ("no --test-labels" in out) != labels


def _comparison(summary: dict, verdict: str) -> dict:
    return next(t for t in summary["comparisons"] if t["verdict"] == verdict)


TAMPERED = {
    "aulc per curve arm": lambda s: s["arms"]["expert:margin"].update(aulc=s["arms"]["expert:margin"]["aulc"] + 1e-6),
    "Holm-adjusted p": lambda s: _comparison(s, "beats").update(p_holm=_comparison(s, "beats")["p_holm"] / 2),
    "sign-flip p (exact, all 2^n patterns)": lambda s: s["comparisons"][0].update(p=s["comparisons"][0]["p"] + 1e-12),
    "verdicts": lambda s: _comparison(s, "loses to").update(verdict="cannot be told apart from"),
    "per-seed AULC differences (stored to 6 decimals)": lambda s: s["comparisons"][1]["differences"].__setitem__(
        0, s["comparisons"][1]["differences"][0] + 1e-5),
    "mean gold_labels per arm x budget": lambda s: s["arms"]["supervised"]["per_budget"]["20"].update(gold_labels=21),
    "Pareto frontier (members, cheapest first)": lambda s: s["costs"]["frontier"].pop(),
    "flag: validation accuracy at/below majority rate": lambda s: s["arms"]["supervised"]["flags"]["points"][0].update(
        reasons=[]),
}


@pytest.mark.parametrize("quantity", list(TAMPERED))
def test_one_tampered_number_fails(study, tmp_path, capsys, quantity):
    folder, summary = study
    tampered = json.loads(json.dumps(summary))
    TAMPERED[quantity](tampered)
    (tmp_path / "study.csv").write_bytes((folder / "study.csv").read_bytes())
    (tmp_path / "summary.json").write_text(json.dumps(tampered), encoding="utf-8")
    assert recheck_study.main([str(tmp_path)]) == 1
    table = results(capsys.readouterr().out)
    assert table[quantity] == "FAIL"


def test_a_wrong_accuracy_column_fails_against_the_labels(study, tmp_path, capsys):
    folder, _ = study
    text = (folder / "study.csv").read_text(encoding="utf-8")
    header, first, *rest = text.splitlines()
    column = header.split(",").index("test_accuracy")
    cells = first.split(",")
    cells[column] = str(float(cells[column]) + 0.1)
    (tmp_path / "study.csv").write_text("\n".join([header, ",".join(cells), *rest]) + "\n", encoding="utf-8")
    (tmp_path / "summary.json").write_bytes((folder / "summary.json").read_bytes())
    assert recheck_study.main([str(tmp_path), "--test-labels", str(folder / "test_labels.txt")]) == 1
    assert results(capsys.readouterr().out)["test_accuracy column vs predictions and labels"] == "FAIL"


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    out = subprocess.run([sys.executable, "benchmarks/recheck_study.py", str(tmp_path / "absent")], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [f"recheck_study: no study folder {tmp_path / 'absent'}"]
    (tmp_path / "study.csv").write_text("arm,budget\n", encoding="utf-8")  # no summary.json
    assert recheck_study.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"recheck_study: {tmp_path} has no summary.json\n"


def test_the_recheck_imports_nothing_of_the_report_code():
    code = ("import sys; import benchmarks.recheck_study; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tuning', 'trainables')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
