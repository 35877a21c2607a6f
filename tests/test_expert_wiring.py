"""Experts in the Expert-Loop (issue 23): what the student trains on with an expert whose answers cost, what the
loop records of them, and a person's round through train.py and `expert-loop label`, checked against the oracle."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import trainables.expert_loop as el
from tests.conftest import exit_and_line, smoke_prepared
from trainables import metrics as m
from trainables.config import TrialConfig
from trainables.errors import UsageError
from trainables.expert_loop import ANSWER_FLOOR, HIDDEN, LoopState, answered_training_set, run_active_loop
from trainables.experts.base import Cost, ExpertAnswer

NUM_LABELS = 4


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    torch.set_num_threads(1)
    return smoke_prepared(tmp_path_factory, need_teachers=False)


def trial(**values) -> TrialConfig:
    base = dict(method="active_loop", learning_rate=5e-3, batch_size=8, epochs=1, initial_pool_size=16,
                query_size=4, max_iterations=2, bf16=False)
    return TrialConfig(**{**base, **values})


def state_with_answers(prepared, answers: dict[int, list[float]]) -> LoopState:
    labelled = [0, 1, 2]
    pool = [r for r in range(len(prepared.encoded["train"])) if r not in labelled and r not in answers]
    return LoopState(1, labelled, list(answers), pool, answers={str(r): p for r, p in answers.items()})


# ---------------------------------------------------------------- the student's targets


def test_a_language_models_answers_are_distilled_and_the_initial_pool_keeps_its_gold(prepared):
    answers = {10: [0.7, 0.1, 0.2, 0.0], 11: [0.25, 0.25, 0.25, 0.25]}
    data = answered_training_set(trial(expert="llm:model.gguf"), prepared, state_with_answers(prepared, answers))
    gold = prepared.encoded["train"].labels
    assert data.rows.tolist() == [0, 1, 2, 10, 11]
    assert data.labels.tolist() == [gold[0], gold[1], gold[2], HIDDEN, HIDDEN]  # the model's rows carry no label
    assert data.has_gold.tolist() == [True, True, True, False, False]
    assert data.has_teacher.tolist() == [False, False, False, True, True]  # gold alone on the initial pool
    assert data.teacher_logits.shape == (1, 5, NUM_LABELS)  # one "teacher": the expert
    expected = np.log([[0.7, 0.1, 0.2, ANSWER_FLOOR], [0.25] * 4]).astype(np.float32)
    np.testing.assert_array_equal(data.teacher_logits[0, 3:], expected)
    # softmax(log p / T) at T = 1 gives back the answer (the floor aside): the distillation target is the answer
    target = torch.softmax(torch.from_numpy(data.teacher_logits[0, 3]), dim=0).numpy()
    np.testing.assert_allclose(target, [0.7, 0.1, 0.2, 0.0], atol=1e-7)
    assert (data.encoded.labels == HIDDEN).all()  # the student's copy of the split hides every gold label


def test_a_persons_answers_are_labels_for_cross_entropy(prepared):
    answers = {10: [0.0, 0.0, 1.0, 0.0], 11: [1.0, 0.0, 0.0, 0.0]}
    data = answered_training_set(trial(expert="human"), prepared, state_with_answers(prepared, answers))
    gold = prepared.encoded["train"].labels
    assert data.labels.tolist() == [gold[0], gold[1], gold[2], 2, 0]
    assert data.has_teacher.tolist() == [False] * 5  # cross-entropy on every row
    loss = el.expert_loop_loss(trial(expert="human"))
    logits = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 5)
    batch = {"labels": torch.from_numpy(data.labels), "has_teacher": torch.from_numpy(data.has_teacher),
             "has_gold": torch.from_numpy(data.has_gold), "teacher_logits": torch.from_numpy(data.teacher_logits)}
    expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(data.labels))
    assert float(loss(logits, batch)) == pytest.approx(float(expected), rel=1e-6)


# ---------------------------------------------------------------- what the loop records


class ScriptedExpert:
    """Answers a fixed distribution for every row and says each answer cost one call and 10 tokens: the loop's
    bookkeeping is checked against these numbers, worked out by hand below."""

    name, sunk_gold_labels = "llm:scripted", 0

    def __init__(self) -> None:
        self.asked: list[list[int]] = []

    def label(self, rows) -> ExpertAnswer:
        rows = [int(r) for r in rows]
        self.asked.append(rows)
        probs = np.tile([0.1, 0.2, 0.3, 0.4], (len(rows), 1))
        return ExpertAnswer(probs, Cost(calls=len(rows), prompt_tokens=10 * len(rows), seconds=0.5))


def test_the_loop_keeps_answers_and_sums_their_cost(prepared, monkeypatch):
    expert = ScriptedExpert()
    monkeypatch.setattr(el, "build_expert", lambda *a, **k: expert)
    reports = []
    run_active_loop(trial(expert="llm:scripted.gguf", expert_price=0.25), prepared,
                    lambda metrics, model, state: reports.append((metrics, state)))
    assert [len(rows) for rows in expert.asked] == [4, 4]  # asked only about each round's queries, once
    last, state = reports[-1]
    assert state["queried"] == expert.asked[0] + expert.asked[1] and state["pending"] == []
    assert state["answers"] == {str(r): [0.1, 0.2, 0.3, 0.4] for r in state["queried"]}
    assert [r[0][m.EXPERT_CALLS] for r in reports] == [0, 4, 8]
    assert last[m.EXPERT_TOKENS] == 80 and last[m.EXPERT_SECONDS] == pytest.approx(1.0)
    assert last[m.EXPERT_PRICED_COST] == pytest.approx(8 * 0.25) and last[m.EXPERT_PAID] == pytest.approx(8 * 0.25)
    # Counted by the rule of metrics.py: 16 gold labels read, 8 expert labels, no teacher anywhere.
    assert (last[m.LABELS_USED], last[m.EXPERT_QUERIES], last[m.TEACHER_LABELS], last[m.TEACHER_LABELLED_ROWS]) \
        == (16, 8, 0, 0)
    # The expert says class 3 for every row: its accuracy is the share of class 3 among the queried rows' gold.
    gold = prepared.encoded["train"].labels[state["queried"]]
    assert last[m.EXPERT_LABEL_ACCURACY] == pytest.approx(float(np.mean(gold == 3)))


def test_a_resumed_loop_asks_only_for_the_rows_it_lacks(prepared, monkeypatch):
    expert = ScriptedExpert()
    monkeypatch.setattr(el, "build_expert", lambda *a, **k: expert)
    reports = []
    run_active_loop(trial(expert="llm:scripted.gguf", max_iterations=1), prepared,
                    lambda metrics, model, state: reports.append((metrics, model, state)))
    _, model, state = reports[-1]
    resumed = []
    run_active_loop(trial(expert="llm:scripted.gguf", max_iterations=2), prepared,
                    lambda metrics, model, state: resumed.append(metrics), resume=state, model=model)
    assert [len(rows) for rows in expert.asked] == [4, 4]  # round 1 before, round 2 after: nothing asked twice
    assert resumed[-1][m.EXPERT_CALLS] == 8 and resumed[-1][m.EXPERT_QUERIES] == 8


def test_strategies_that_read_the_teachers_are_refused_with_other_experts():
    with pytest.raises(UsageError, match="robust_least_confidence reads the teachers"):
        trial(expert="llm:smollm2", strategy="robust_least_confidence")
    with pytest.raises(UsageError, match="needs expert_url and expert_model"):
        trial(expert="openai", expert_url="http://127.0.0.1:1/v1")
    with pytest.raises(UsageError, match="expert_price must be >= 0"):
        trial(expert="human", expert_price=-1)


# ---------------------------------------------------------------- a person, through train.py and label.py

SMALL = ["--smoke-test", "--set", "epochs=2", "--set", "initial_pool_size=16", "--set", "query_size=4",
         "--set", "max_iterations=2", "--set", "learning_rate=5e-3", "--set", "batch_size=8", "--set", "bf16=false"]


def answer_round(queries: Path, out: Path, labels_of) -> Path:
    """The round's CSV with 'label' filled in by `labels_of(row_id)` (a label name)."""
    with queries.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["label"] = labels_of(int(row["row_id"]))
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_a_person_answering_with_gold_labels_gives_the_oracles_run(tmp_path, monkeypatch, capsys):
    """A person who answers every query with its gold label is the oracle. With alpha = 0 the oracle's run reads
    gold alone too, so both runs must query the same rows and end with the same student: the pause, the files,
    the import and the resume change nothing."""
    from tuning import label, train  # noqa: PLC0415 (torch)
    from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, load_data  # noqa: PLC0415

    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path / "cache"))
    data = load_data(DataSettings(**SMOKE_SETTINGS), progress=lambda *a: None)
    gold = lambda row: data.label_names[data.train.labels[row]]  # noqa: E731
    assert train.main(["--method", "active_loop", "--expert", "oracle", "--set", "alpha=0", *SMALL,
                       "--out", str(tmp_path / "oracle")]) == 0
    out = tmp_path / "person"
    assert train.main(["--method", "active_loop", "--expert", "human", *SMALL, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "round 1: 4 rows for a person to label" in said and "expert-loop label --checkpoint" in said
    state = json.loads((out / "trial_state.json").read_text())
    assert state["round"] == 0 and len(state["pending"]) == 4 and state["queried"] == []
    queries = tmp_path / "person-queries"
    assert sorted(p.name for p in queries.iterdir()) == ["round-1-label-config.xml", "round-1-queries.csv",
                                                         "round-1-tasks.json"]
    for round_number in (1, 2):
        answers = answer_round(queries / f"round-{round_number}-queries.csv", tmp_path / f"a{round_number}.csv", gold)
        if round_number == 2:  # one file holding every round's answers: round 1's, answered as before, pass
            answers.write_text(answers.read_text() + "".join((tmp_path / "a1.csv").read_text().splitlines(True)[1:]))
        assert label.main(["--checkpoint", str(out), "--import", str(answers)]) == 0
    person, oracle = (json.loads((folder / "run_config.json").read_text())["metrics"]
                      for folder in (out, tmp_path / "oracle"))
    person_state, oracle_state = (json.loads((folder / "trial_state.json").read_text())
                                  for folder in (out, tmp_path / "oracle"))
    assert person_state["queried"] == oracle_state["queried"] and person_state["pending"] == []
    assert person["round"] == oracle["round"] == 2
    assert person[m.EXPERT_LABEL_ACCURACY] == 1.0 and person[m.EXPERT_CALLS] == 8
    for key in (m.VAL_ACCURACY, m.TEST_ACCURACY, m.VAL_LOSS):
        assert person[key] == pytest.approx(oracle[key], abs=1e-4), key
    assert label_is_refused_when_nothing_waits(out, answers, capsys)


def label_is_refused_when_nothing_waits(out: Path, answers: Path, capsys) -> bool:
    """A complete run: label refuses, with answers or without, and says why nothing follows."""
    from tuning import label  # noqa: PLC0415

    status, line = exit_and_line(label.main, ["--checkpoint", str(out), "--import", str(answers)], capsys)
    complete = "it is complete: all its 2 rounds are done (max_iterations)"
    if status != 2 or line != f"error: {out} waits for no answers: {complete}":
        return False
    status, line = exit_and_line(label.main, ["--checkpoint", str(out)], capsys)
    return status == 2 and line == f"error: {out} is complete: all its 2 rounds are done (max_iterations)"


class Killed(Exception):  # a Ctrl-C, an OOM kill, a lost ssh session (KeyboardInterrupt itself would stop pytest)
    pass


def killed_in(monkeypatch, name: str, when):
    """The loop's `name` (query or train) killed when `when(*its arguments)`, else run."""
    real = getattr(el, name)

    def maybe_killed(*args, **kwargs):
        if when(*args):
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(el, name, maybe_killed)


def test_a_run_stopped_between_its_steps_is_continued_by_label(tmp_path, monkeypatch, capsys):
    """The checkpoint is saved after a round's training and at a pause: a run killed in between (here in round 2's
    pass over the pool, and before that in round 1's training after the import) waits for no answers, and once no
    command continued it. `expert-loop label` without --import does, to the pause the run would have reached."""
    from tuning import label, train  # noqa: PLC0415 (torch)
    from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, load_data  # noqa: PLC0415

    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path / "cache"))
    data = load_data(DataSettings(**SMOKE_SETTINGS), progress=lambda *a: None)
    gold = lambda row: data.label_names[data.train.labels[row]]  # noqa: E731
    whole, out = tmp_path / "whole", tmp_path / "killed"
    for folder in (whole, out):
        assert train.main(["--method", "active_loop", "--expert", "human", *SMALL, "--out", str(folder)]) == 0
    answers = answer_round(tmp_path / "whole-queries" / "round-1-queries.csv", tmp_path / "a1.csv", gold)
    assert label.main(["--checkpoint", str(whole), "--import", str(answers)]) == 0  # on to round 2's pause
    with monkeypatch.context() as patch:
        killed_in(patch, "train", lambda *args: True)
        with pytest.raises(Killed):
            label.main(["--checkpoint", str(out), "--import", str(answers)])
    capsys.readouterr()
    with monkeypatch.context() as patch:
        killed_in(patch, "query", lambda model, trial, prepared, state: state.round == 1)
        with pytest.raises(Killed):
            label.main(["--checkpoint", str(out)])  # round 1 trains on the stored answers, round 2's query is killed
    assert f"{out} stopped after round 1's answers were imported, before it trained on them: continuing" \
        in capsys.readouterr().out
    state = json.loads((out / "trial_state.json").read_text())
    assert (state["round"], state["pending"], len(state["answers"]), len(state["queried"])) == (1, [], 4, 4)
    assert not (tmp_path / "killed-queries" / "round-2-queries.csv").exists()
    # What no command continued: each says what happened and what to type, and writes nothing.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    stopped = "stopped after round 1 before it wrote round 2's queries (killed, or a write failed)"
    status, line = exit_and_line(label.main, ["--checkpoint", str(out), "--import", str(answers)], capsys)
    assert status == 2 and line == f"error: {out} waits for no answers: it {stopped}; `expert-loop label " \
                                   f"--checkpoint {out}` (without --import) continues it", line
    status, line = exit_and_line(train.main, ["--method", "active_loop", "--expert", "human", *SMALL, "--out",
                                              str(out)], capsys)
    assert status == 2 and line == f"error: --out {out} holds a run with --expert human that {stopped}: continue " \
                                   f"it with `expert-loop label --checkpoint {out}`, or choose another --out", line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert label.main(["--checkpoint", str(out)]) == 0
    assert "round 2: 4 rows for a person to label" in capsys.readouterr().out
    # The pause the uninterrupted run reached: the same queries, files and state.
    for name in ("round-2-queries.csv", "round-2-tasks.json", "round-2-label-config.xml"):
        assert (tmp_path / "killed-queries" / name).read_bytes() == (tmp_path / "whole-queries" / name).read_bytes()
    continued, uninterrupted = (json.loads((folder / "trial_state.json").read_text()) for folder in (out, whole))
    assert {**continued, "train_seconds": 0} == {**uninterrupted, "train_seconds": 0}
    assert len(continued["pending"]) == 4


def test_bad_answers_exit_2_and_leave_the_paused_run_as_it_was(tmp_path, monkeypatch, capsys):
    from tuning import label, train  # noqa: PLC0415

    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "person"
    assert train.main(["--method", "active_loop", "--expert", "human", *SMALL, "--out", str(out)]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    queries = tmp_path / "person-queries" / "round-1-queries.csv"
    cases = {  # what the person sent -> what the message must name
        "an unknown label": (lambda row: "furious", "label(s) outside the label set"),
        "an empty column": (lambda row: "", "without an answer"),
    }
    for name, (labels_of, message) in cases.items():
        answers = answer_round(queries, tmp_path / f"{name}.csv", labels_of)
        status, line = exit_and_line(label.main, ["--checkpoint", str(out), "--import", str(answers)], capsys)
        assert status == 2 and message in line, name
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before, name  # nothing written
    status, line = exit_and_line(label.main, ["--checkpoint", str(tmp_path / "nowhere"), "--import", str(queries)],
                                 capsys)
    assert status == 2 and "does not exist" in line
    assert not math.isnan(json.loads((out / "run_config.json").read_text())["metrics"][m.VAL_ACCURACY])
    # Training again into the paused run's folder would throw its state away: refused, nothing written.
    status, line = exit_and_line(train.main, ["--method", "active_loop", "--expert", "human", *SMALL, "--out",
                                              str(out)], capsys)
    assert status == 2 and "holds a run with --expert human that waits for a person's answers to round 1 (4 rows" \
        in line and f"continue it with `expert-loop label --checkpoint {out} --import ANSWERS.csv" in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # Nor does label without --import: the answers are what it waits for.
    status, line = exit_and_line(label.main, ["--checkpoint", str(out)], capsys)
    assert status == 2 and f"{out} waits for a person's answers to round 1" in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # A state that cannot be read may still hold answers: refused too, not trained over.
    (out / "trial_state.json").write_text("{not json", encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    status, line = exit_and_line(train.main, ["--method", "active_loop", "--expert", "human", *SMALL, "--out",
                                              str(out)], capsys)
    assert status == 2 and "trial_state.json is not valid JSON" in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize(("trial_values", "stopped", "pool", "why"), [
    ({"max_iterations": 2}, 0, [7], "all its 2 rounds are done (max_iterations)"),
    ({"max_iterations": 5, "stop": "max_rounds:2"}, 1, [7], "its stopping criterion (max_rounds:2) stopped it after "
                                                            "round 2"),
    ({"max_iterations": 5}, 0, [], "its pool of unlabelled rows ran out after round 2"),
])
def test_a_complete_human_run_says_why_nothing_follows(tmp_path, capsys, trial_values, stopped, pool, why):
    from tuning import label, train  # noqa: PLC0415

    out = tmp_path / "person"
    out.mkdir()
    trial = TrialConfig(method="active_loop", expert="human", **trial_values)
    (out / "run_config.json").write_text(json.dumps({"trial": trial.to_dict(), "metrics": {m.STOPPED: stopped}}))
    state = {"round": 2, "labelled": [0], "queried": [3], "pool": pool, "answers": {"3": [1.0, 0.0]}, "pending": []}
    (out / "trial_state.json").write_text(json.dumps(state))
    status, line = exit_and_line(label.main, ["--checkpoint", str(out)], capsys)
    assert status == 2 and line == f"error: {out} is complete: {why}", line
    with pytest.raises(UsageError) as refused:
        train.refuse_to_drop_answers(out)
    assert str(refused.value) == f"--out {out} holds a run with --expert human that is complete: {why}, and the " \
                                 "person's answers it trained on: choose another --out"


# ---------------------------------------------------------------- a sweep's expert


@pytest.mark.parametrize(("argv", "message"), [
    (["--expert", "human"], "--expert human pauses the run for a person"),
    (["--expert", "openai"], "expert openai needs expert_url and expert_model"),
    (["--expert", "gpt"], "--expert 'gpt' is not an expert"),
    (["--expert", "teachers", "--expert-url", "http://127.0.0.1:1/v1"], "are for --expert openai, not teachers"),
    (["--expert", "llm:smollm2", "--fix", "strategy=robust_least_confidence"], "reads the teachers' outputs"),
    (["--resume", "--name", "x", "--expert", "llm:smollm2"], "cannot change on --resume"),
])
def test_a_sweeps_bad_expert_exits_2_before_ray(argv, message, no_ray, capsys):
    from tuning import run  # noqa: PLC0415

    status, line = exit_and_line(run.main, ["--method", "active_loop", "--smoke-test", *argv], capsys)
    assert status == 2 and message in line


def test_a_sweep_with_another_expert_searches_no_strategy_that_reads_the_teachers(capsys):
    from tuning.sweep.spaces import build_space  # noqa: PLC0415 (Ray)

    space = build_space("active_loop", smoke=False, fixed={"expert": "llm:smollm2"})
    assert "robust_least_confidence" not in space["strategy"]["values"] and "margin" in space["strategy"]["values"]
    assert "robust_least_confidence reads the teachers" in capsys.readouterr().out
    assert "robust_least_confidence" in build_space("active_loop", smoke=False)["strategy"]["values"]
    with pytest.raises(UsageError, match="expert is fixed for a whole sweep"):
        build_space("active_loop", smoke=False, overrides={"expert": {"type": "choice", "values": ["oracle"]}})
