"""Hostile or broken input: every case ends with exit status 2 and one clear line on stderr, before Ray
starts, writing nothing and touching nothing written before (an earlier experiment, a checkpoint).

Decision on '..' in model paths: a relative path such as ../models/bert is ordinary command-line use on
one's own machine (and an absolute path reaches the same places), so '..' is not refused as such; a path
that names no folder is refused as "does not exist" before anything is fetched from the hub."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import exit_and_line
from tuning import evaluate, run, study, train

EARLIER = "earlier"  # an experiment written before the bad command, which must stay as it was


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: its bytes and modification time (ns); folders by name."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else (b"", 0)
            for p in sorted(folder.rglob("*"))}


def csv(path: Path, text: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def rows(n: int = 80, labels=("bad", "good", "meh", "mixed"), ids=None) -> str:
    """A valid classification table of n rows (4 classes), optionally with an id column."""
    lines = ["text,label" + (",id" if ids is not None else "")]
    for i in range(n):
        lines.append(f"visit number {i} was {labels[i % len(labels)]},{labels[i % len(labels)]}"
                     + (f",{ids[i]}" if ids is not None else ""))
    return "\n".join(lines) + "\n"


def split_folder(d: Path, train: str, test: str) -> str:
    csv(d / "split" / "train.csv", train)
    csv(d / "split" / "test.csv", test)
    return str(d / "split")


# name -> (argv builder given a scratch folder, expected part of the error line)
RUN_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "empty data file": (lambda d: ["--dataset", csv(d / "empty.csv", b"")], "is empty"),
    "header only": (lambda d: ["--dataset", csv(d / "header.csv", "text,label\n")], "has no examples"),
    "a single class": (lambda d: ["--dataset", csv(d / "one.csv", rows(labels=("same",)))],
                       "a classifier needs at least 2 classes"),
    "empty text": (lambda d: ["--dataset", csv(d / "gap.csv", rows().replace("visit number 7 was mixed", ""))],
                   "column 'text' is missing or empty in row 8"),
    "blank text": (lambda d: ["--dataset", csv(d / "blank.csv", rows().replace("visit number 7 was mixed", "   "))],
                   "column 'text' is missing or empty in row 8"),
    "NaN text in JSON Lines": (lambda d: ["--dataset", csv(d / "nan.jsonl", '{"text": NaN, "label": 0}\n'
                                                           '{"text": "fine", "label": 1}\n')],
                               "column 'text' is missing or empty in row 1"),
    "non-UTF-8 bytes": (lambda d: ["--dataset", csv(d / "latin1.csv", rows().encode() + b"caf\xe9 visit,good\n")],
                        "is not UTF-8 text (byte 0xe9"),
    "test label unknown to training": (
        lambda d: ["--dataset", split_folder(d, rows(), "text,label\nsomething new,surprised\n")],
        "label 'surprised' in row 1 is not one of the training labels"),
    "repeated id": (lambda d: ["--dataset", csv(d / "ids.csv", rows(ids=[*range(79), 3]))],
                    "id '3' in row 80 repeats the id of row 4"),
    "id in train and test": (
        lambda d: ["--dataset", split_folder(d, rows(ids=list(range(80))), "text,label,id\nleaked,good,41\n")],
        "id '41' in row 1 repeats the id of"),
    "space file not YAML": (lambda d: ["--space", csv(d / "space.yaml", "learning_rate: {type: [loguniform\n")],
                            "is not valid YAML/JSON"),
    "space file not a mapping": (lambda d: ["--space", csv(d / "list.yaml", "- learning_rate\n- 0.1\n")],
                                 "must map parameter names"),
    "student path climbing out": (lambda d: ["--student", "../../no-such-model"],
                                  "model folder ../../no-such-model does not exist"),
    "hub-like name with ..": (lambda d: ["--student", "org/../../no-such-model"], "does not exist"),
    "teacher path climbing out": (lambda d: ["--method", "kd", "--teachers", "tiny-bert,../../no-such-teacher"],
                                  "model folder ../../no-such-teacher does not exist"),
    "name with a slash": (lambda d: ["--name", "a/b"], "invalid experiment name 'a/b'"),
    "name ..": (lambda d: ["--name", ".."], "invalid experiment name '..'"),
    "resume a name climbing out": (lambda d: ["--resume", "--name", f"../results/{EARLIER}"],
                                   "invalid experiment name '../results/earlier'"),
}


@pytest.fixture
def earlier_results(tmp_path) -> Path:
    """A results folder holding an earlier experiment with a file in it."""
    storage = tmp_path / "results"
    (storage / EARLIER).mkdir(parents=True)
    (storage / EARLIER / "sweep.json").write_text(json.dumps({"sweep": {"method": "kd"}}))
    return storage


@pytest.mark.parametrize("case", RUN_CASES)
def test_run_refuses(case, tmp_path, earlier_results, capsys, no_ray, session_cache):
    build, expected = RUN_CASES[case]
    argv = ["--smoke-test", *build(tmp_path / "input")]  # smoke: tiny models, should the input pass
    if "--name" not in argv:
        argv += ["--name", "other"]
    if "--method" not in argv:
        argv += ["--method", "supervised"]  # the Expert-Loop's pool sizes would not fit 80 examples
    before = snapshot(earlier_results)
    code, line = exit_and_line(run.main, [*argv, "--storage-path", str(earlier_results)], capsys)
    assert code == 2 and line.startswith("error: ") and expected in line, line
    assert snapshot(earlier_results) == before  # nothing written, nothing earlier touched


def test_run_with_a_fresh_storage_path_creates_nothing(tmp_path, capsys, no_ray, session_cache):
    storage = tmp_path / "never"
    code, _ = exit_and_line(run.main, ["--smoke-test", "--dataset", csv(tmp_path / "one.csv", rows(labels=("x",))),
                                       "--storage-path", str(storage)], capsys)
    assert code == 2 and not storage.exists()


class _Trap:
    """A pickle that, if ever loaded, leaves a file behind: proof that a checkpoint was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def checkpoint_folder(d: Path, weights: str | None) -> Path:
    folder = d / "checkpoint"
    folder.mkdir(parents=True)
    (folder / "run_config.json").write_text(json.dumps({"task": "classification", "trial": {"method": "kd"},
                                                        "provenance": {"data": {}, "data_fingerprint": ""}}))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    if weights == "pickle":
        (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(d / "unpickled")))
    return folder


EVALUATE_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "checkpoint without weights": (lambda d: checkpoint_folder(d, None), "has no model.safetensors"),
    "checkpoint with pickle weights only": (lambda d: checkpoint_folder(d, "pickle"),
                                            "holds pickle weights; only model.safetensors is accepted"),
    "checkpoint whose run_config is not JSON": (
        lambda d: _overwrite(checkpoint_folder(d, None) / "run_config.json", b"{'not': json"), "is not valid JSON"),
    "folder that is no checkpoint": (lambda d: _overwrite(d / "plain" / "notes.txt", b"hello").parent,
                                     "is not a checkpoint of this tool"),
}


def _overwrite(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path.parent if path.name == "run_config.json" else path


@pytest.mark.parametrize("case", EVALUATE_CASES)
def test_evaluate_refuses(case, tmp_path, capsys):
    build, expected = EVALUATE_CASES[case]
    folder = build(tmp_path)
    before = snapshot(tmp_path)
    code, line = exit_and_line(evaluate.main, ["--checkpoint", str(folder)], capsys)
    assert code == 2 and line.startswith("error: ") and expected in line, line
    assert snapshot(tmp_path) == before  # nothing written, nothing touched
    assert not (tmp_path / "unpickled").exists()  # and nothing unpickled


# --expert-url values that cannot be used (trainables/experts/url.py): refused where the config is checked, by
# every command that takes the endpoint, not by each trial after Ray has started and the experiment folder exists.
BAD_URLS = {
    "no scheme": ("127.0.0.1:8080/v1", "--expert-url must be an http(s) URL"),
    "plain http to another host": ("http://192.0.2.7:8080/v1", "plain http would send the key unencrypted"),
    "password in the URL": ("https://me:hunter2@api.example.org/v1", "holds a user name or password"),
    "key in the query string": ("https://api.example.org/v1?api-key=hunter2", "carries 'api-key' in its query"),
}
ENDPOINT_COMMANDS = {"train": (train.main, ["--method", "active_loop"], "--out"),
                     "run": (run.main, ["--method", "active_loop"], "--storage-path"),
                     "study": (study.main, [], "--storage-path")}


@pytest.mark.parametrize("command", ENDPOINT_COMMANDS)
@pytest.mark.parametrize("case", BAD_URLS)
def test_a_bad_expert_url_is_refused_before_anything_runs(command, case, tmp_path, capsys, monkeypatch, no_ray,
                                                          session_cache):
    monkeypatch.setattr("tuning.assets.prepare.prepare", lambda *a, **k: pytest.fail(f"{command} prepared the data"))
    main, argv, where = ENDPOINT_COMMANDS[command]
    url, expected = BAD_URLS[case]
    out = tmp_path / "out"
    code, line = exit_and_line(main, [*argv, "--smoke-test", "--expert", "openai", "--expert-url", url,
                                      "--expert-model", "m", where, str(out)], capsys)
    assert code == 2 and line.startswith("error: ") and expected in line, line
    assert "hunter2" not in line  # the secret is not printed
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing written
