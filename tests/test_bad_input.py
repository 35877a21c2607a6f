"""Bad input ends with exit status 2 and one clear line on stderr, before Ray starts and before
anything is written. Most cases run in-process with Ray's start replaced by a tripwire; a few run
as real subprocesses to prove the exit status a shell sees."""

import json

import pandas as pd
import pytest

from tests.conftest import exit_and_line, run_cli
from tuning import evaluate, run, train


@pytest.fixture
def csv_factory(tmp_path):
    def write(rows: dict, name="data.csv"):
        path = tmp_path / name
        pd.DataFrame(rows).to_csv(path, index=False)
        return str(path)

    return write


def good_rows(n=80):
    words = ["bad", "good", "meh", "mixed"]
    return {"text": [f"{words[i % 4]} visit number {i}" for i in range(n)], "label": [i % 4 for i in range(n)]}


CASES = {
    "unknown method": (["--method", "boosting"], "invalid choice"),
    "num samples zero": (["--smoke-test", "--num-samples", "0"], "--num-samples must be >= 1"),
    "alpha above one": (["--smoke-test", "--method", "kd", "--fix", "alpha=1.5"], "alpha must be in [0, 1]"),
    "temperature zero": (["--smoke-test", "--method", "kd", "--fix", "temperature=0"], "temperature must be > 0"),
    "unknown strategy": (["--smoke-test", "--fix", "strategy=psychic"], "unknown strategy 'psychic'"),
    "balanced twice": (["--smoke-test", "--fix", "strategy=margin+balanced+balanced"], "unknown strategy"),
    "bad stopping criterion": (["--smoke-test", "--fix", "stop=kappa:2"], "kappa stopping threshold must lie in"),
    "unknown stopping criterion": (["--smoke-test", "--fix", "stop=patience:3"], "unknown stopping criterion"),
    "one dropout pass": (["--smoke-test", "--fix", "mc_passes=1"], "mc_passes must be >= 2"),
    "epochs beside round_steps": (["--smoke-test", "--method", "all", "--fix", "epochs=2"],
                                  "epochs does nothing in an Expert-Loop sweep while round_steps is set"),
    "zero initial pool": (["--smoke-test", "--fix", "initial_pool_size=0"], "initial_pool_size must be >= 1"),
    "negative query size": (["--smoke-test", "--fix", "query_size=-5"], "query_size must be >= 1"),
    "query larger than pool": (["--smoke-test", "--fix", "query_size=90"], "query_size up to 90 is larger"),
    "initial pool larger than split": (["--smoke-test", "--fix", "initial_pool_size=500"], "leaves no pool"),
    "unknown parameter": (["--smoke-test", "--fix", "learning_rat=0.1"], "unknown search-space parameter"),
    "unparsable fix": (["--smoke-test", "--fix", "alpha"], "cannot parse --fix 'alpha'"),
    "name with slash": (["--smoke-test", "--name", "a/b"], "invalid experiment name"),
    "max concurrent zero": (["--smoke-test", "--max-concurrent", "0"], "--max-concurrent must be >= 1, got 0"),
    "max concurrent negative": (["--smoke-test", "--max-concurrent", "-2"], "--max-concurrent must be >= 1, got -2"),
    "retry errored without resume": (["--smoke-test", "--retry-errored"], "--retry-errored goes with --resume"),
    "every setting and the seed fixed": (
        ["--smoke-test", "--method", "supervised", "--num-samples", "2", *[
            f"--fix={pair}" for pair in ("learning_rate=0.005", "weight_decay=0", "warmup_ratio=0", "seed=3")]],
        "every setting is fixed, the seed too: --num-samples 2 would repeat one identical run"),
    "missing student folder": (["--smoke-test", "--student", "./no/such/model"], "does not exist"),
    "missing teacher folder": (["--smoke-test", "--method", "kd", "--teachers", "tiny-bert,/no/such/teacher"],
                               "does not exist"),
}


@pytest.mark.parametrize("case", CASES)
def test_run_refuses_bad_input(case, tmp_path, capsys, no_ray, session_cache):
    argv, expected = CASES[case]
    storage = tmp_path / "results"
    code, line = exit_and_line(run.main, [*argv, "--storage-path", str(storage)], capsys)
    assert code == 2 and expected in line, line
    assert not storage.exists()


def test_missing_data_file(tmp_path, capsys, no_ray, session_cache):
    code, line = exit_and_line(run.main, ["--dataset", str(tmp_path / "nope.csv"),
                                          "--storage-path", str(tmp_path / "r")], capsys)
    assert code == 2 and "does not exist" in line


def test_file_without_needed_columns(csv_factory, tmp_path, capsys, no_ray, session_cache):
    path = csv_factory({"sentence_text": ["a", "b"], "y": [0, 1]})
    code, line = exit_and_line(run.main, ["--dataset", path, "--storage-path", str(tmp_path / "r")], capsys)
    assert code == 2 and "label" in line and "text" in line


def test_smoke_test_uses_the_data_file_given(csv_factory, tmp_path, capsys, no_ray, session_cache):
    """--smoke-test sets only what was not typed: a --dataset given beside it is the data read (here a
    file with one class, refused), not the generated smoke data (which would have started a sweep)."""
    rows = good_rows()
    rows["label"] = [0] * len(rows["label"])
    code, line = exit_and_line(run.main, ["--dataset", csv_factory(rows), "--smoke-test",
                                          "--storage-path", str(tmp_path / "r")], capsys)
    assert code == 2 and "at least 2 classes" in line, line


def test_labels_out_of_range(csv_factory, tmp_path, capsys, no_ray, session_cache):
    rows = good_rows()
    rows["label"][5] = -3
    code, line = exit_and_line(run.main, ["--dataset", csv_factory(rows), "--storage-path", str(tmp_path / "r")],
                               capsys)
    assert code == 2 and "-3" in line


def test_teacher_checkpoint_with_other_classes(tmp_path, capsys, no_ray, session_cache):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "run_config.json").write_text(json.dumps({"task": "classification"}))
    (teacher / "config.json").write_text(json.dumps({"model_type": "bert", "id2label": {"0": "no", "1": "yes"}}))
    code, line = exit_and_line(run.main, ["--smoke-test", "--method", "kd", "--teachers", str(teacher),
                                          "--storage-path", str(tmp_path / "r")], capsys)
    assert code == 2 and "2 classes but the data has 4" in line


@pytest.mark.parametrize("pairs, expected", [(["epochs"], "cannot parse --set 'epochs'"),
                                             (["epochs=many"], "epochs='many' is not a valid int"),
                                             (["stop=kappa"], "unknown stopping criterion 'kappa'")])
def test_train_refuses_unparsable_set(pairs, expected, tmp_path, capsys, session_cache):
    argv = ["--method", "supervised", "--smoke-test", "--out", str(tmp_path / "ck")]
    for pair in pairs:
        argv += ["--set", pair]
    code, line = exit_and_line(train.main, argv, capsys)
    assert code == 2 and expected in line
    assert not (tmp_path / "ck").exists()


@pytest.fixture
def no_training(monkeypatch):
    """Refused before any data are prepared or a student trained: preparing fails the test."""
    monkeypatch.setattr("tuning.assets.prepare.prepare", lambda *a, **k: pytest.fail("train.py prepared the data"))


def files_under(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_refuses_an_out_under_a_file_before_training(tmp_path, capsys, no_training):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, line = exit_and_line(train.main, ["--method", "supervised", "--smoke-test", "--out", str(afile / "sub")],
                               capsys)
    assert code == 2 and f"--out {afile / 'sub'}: {afile} is a file, not a folder" in line, line
    assert afile.read_text() == "x"


@pytest.mark.parametrize("where", ["ckA", "student_trial_0/checkpoint_000003"])  # an earlier run's, a sweep trial's
def test_train_never_replaces_an_existing_checkpoint(where, tmp_path, capsys, no_training):
    out = tmp_path / where
    out.mkdir(parents=True)
    (out / "run_config.json").write_text(json.dumps({"trial": {"method": "supervised", "epochs": 3}}))
    (out / "model.safetensors").write_bytes(b"three epochs of weights")
    before = files_under(tmp_path)
    code, line = exit_and_line(train.main, ["--method", "supervised", "--smoke-test", "--set", "epochs=1",
                                            "--out", str(out)], capsys)
    assert code == 2 and line == (f"error: --out {out} already holds a checkpoint, which this run would replace: "
                                  "choose another --out, or delete it first")
    assert files_under(tmp_path) == before


def test_train_refuses_a_folder_of_other_files_but_takes_an_empty_one(tmp_path, capsys, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code, line = exit_and_line(train.main, ["--method", "supervised", "--smoke-test", "--out", str(out)], capsys)
    assert code == 2 and line == f"error: --out {out} exists and is not a checkpoint of this tool: refusing to " \
                                 "overwrite it", line
    assert (out / "notes.txt").read_text() == "keep me"
    (out / "notes.txt").unlink()  # now empty, as `mkdir` leaves it: nothing to replace, so training starts

    class Prepared(Exception):
        pass

    def prepare(*args, **kwargs):
        raise Prepared

    monkeypatch.setattr("tuning.assets.prepare.prepare", prepare)
    with pytest.raises(Prepared):
        train.main(["--method", "supervised", "--smoke-test", "--out", str(out)])


def test_a_human_run_never_replaces_the_query_files_a_person_is_filling_in(tmp_path, capsys, no_training):
    queries = tmp_path / "person-queries"
    queries.mkdir()
    (queries / "round-1-queries.csv").write_text("row_id,text,label\n7,meh visit,good\n")  # half answered
    before = files_under(tmp_path)
    argv = ["--method", "active_loop", "--expert", "human", "--smoke-test", "--out", str(tmp_path / "person")]
    code, line = exit_and_line(train.main, argv, capsys)
    assert code == 2 and f"{queries} already holds query files for a person" in line, line
    assert files_under(tmp_path) == before and not (tmp_path / "person").exists()
    (queries / "round-1-queries.csv").unlink()
    queries.rmdir()
    queries.write_text("not a folder")
    code, line = exit_and_line(train.main, argv, capsys)
    assert code == 2 and f"the queries folder of --out {queries}: {queries} is a file, not a folder" in line, line


def test_evaluate_missing_checkpoint(tmp_path, capsys):
    code, line = exit_and_line(evaluate.main, ["--checkpoint", str(tmp_path / "gone")], capsys)
    assert code == 2 and "does not exist" in line
    (tmp_path / "afile").write_text("")  # it said "does not exist" of a file too
    code, line = exit_and_line(evaluate.main, ["--checkpoint", str(tmp_path / "afile")], capsys)
    assert code == 2 and line == f"error: checkpoint folder {tmp_path / 'afile'} is a file, not a folder"


@pytest.mark.parametrize("method", ["kd", "supervised"])
def test_train_refuses_an_expert_its_method_would_ignore(method, tmp_path, capsys, no_training):
    code, line = exit_and_line(train.main, ["--method", method, "--smoke-test", "--expert", "oracle",
                                            "--out", str(tmp_path / "ck")], capsys)
    assert code == 2 and line == (f"error: --expert and its settings are for --method active_loop (the Expert-Loop); "
                                  f"{method} would ignore them")
    assert not (tmp_path / "ck").exists()


def test_subprocess_exit_status_and_single_line(tmp_path, session_cache):
    result = run_cli("run.py", "--method", "kd", "--smoke-test", "--fix", "alpha=2",
                     "--storage-path", str(tmp_path / "r"), cache=session_cache)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: alpha must be in [0, 1], got 2.0"]
    assert "Ray" not in result.stdout and not (tmp_path / "r").exists()


def test_withdrawn_default_of_old_names_what_works(tmp_path, capsys, monkeypatch, no_ray):
    """A fresh machine whose registry no longer serves bigbench==1.0.0 (a real pip, told to use no index):
    one line that names the presets that work, exit 2, nothing in the results or the cache."""
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no configured index or wheel folder
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    storage = tmp_path / "results"
    code, line = exit_and_line(run.main, ["--method", "supervised", "--smoke-test", "--dataset",
                                          "multiemo-medicine", "--storage-path", str(storage)], capsys)
    assert code == 2
    assert line.startswith("error: cannot fetch asset 'multiemo-medicine': the registry no longer serves "
                           "bigbench==1.0.0 (withdrawn 2026-12-06; pip: ERROR: No matching distribution"), line
    assert "data set presets that work: medmcqa-subjects, medmcqa; or --dataset FILE" in line
    assert not storage.exists() and list((tmp_path / "cache").iterdir()) == []
