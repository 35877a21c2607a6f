"""tuning/cli.py: --set/--fix parsing, experiment names, the one-line exit-2 error handling, refused
abbreviations, and which data settings the command line decides."""

from __future__ import annotations

import argparse
import importlib

import pytest

from trainables.errors import UsageError
from tuning import run, study
from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings
from tuning.cli import (
    Parser,
    add_data_arguments,
    check_name,
    data_settings,
    expert_assignments,
    main_guard,
    parse_assignments,
    parse_with_explicit,
    split_names,
)


def test_parse_assignments_reads_values_as_numbers_words_and_lists():
    values = parse_assignments(["lr=1e-4", "strategy=margin", "epochs=3", "warm_start=true", "alpha=0.5",
                                "rate=2.5E-3", "sizes=[8, 16]", " seed = 7"], "--set")
    assert values == {"lr": 1e-4, "strategy": "margin", "epochs": 3, "warm_start": True, "alpha": 0.5,
                      "rate": 2.5e-3, "sizes": [8, 16], "seed": 7}
    assert type(values["lr"]) is float and type(values["epochs"]) is int
    assert parse_assignments(None, "--set") == {}


@pytest.mark.parametrize("pair", ["x", "=3", "lr=", "lr= ", "1lr=3", "a-b=3", "x=[1, 2"])
def test_parse_assignments_refuses_what_is_not_name_value(pair):
    with pytest.raises(UsageError, match="--fix"):
        parse_assignments([pair], "--fix")


@pytest.mark.parametrize("name", ["a/b", "..", "", "a..b", ".hidden", "-x", "a b", "a\\b", "/abs"])
def test_check_name_refuses_what_is_not_a_plain_folder_name(name):
    with pytest.raises(UsageError, match="invalid experiment name"):
        check_name(name)


@pytest.mark.parametrize("name", ["run-1.2_x", "smoke", "A1"])
def test_check_name_accepts_plain_names(name):
    assert check_name(name) == name


def test_split_names():
    assert split_names(" a, b ,,c ") == ("a", "b", "c")
    with pytest.raises(UsageError, match="--teachers"):
        split_names(" , ")


def test_main_guard_turns_usage_errors_into_one_line_and_status_2(capsys):
    def bad():
        raise UsageError("the problem")

    with pytest.raises(SystemExit) as exit_info:
        main_guard(bad)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: the problem\n"

    def parse():
        Parser(prog="run.py").parse_args(["--bogus"])

    with pytest.raises(SystemExit) as exit_info:
        main_guard(parse)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "--bogus" in err

    with pytest.raises(SystemExit) as exit_info:
        main_guard(lambda: None)
    assert exit_info.value.code == 0


# ---------------------------------------------------------------- abbreviations are refused


def _main(module: str):
    return importlib.import_module(f"tuning.{module}").main


# Each argv would have been read as its long form by argparse's default prefix matching.
ABBREVIATIONS = {
    "run --num-sam": ("run", ["--num-sam", "2"], "unrecognized arguments: --num-sam 2"),
    "run --data": ("run", ["--data", "x.csv"], "unrecognized arguments: --data x.csv"),
    "run --data=": ("run", ["--data=x.csv"], "unrecognized arguments: --data=x.csv"),
    "train --data": ("train", ["--method", "supervised", "--data", "x.csv"], "unrecognized arguments: --data"),
    "evaluate --spl": ("evaluate", ["--checkpoint", "somewhere", "--spl", "test"], "unrecognized arguments: --spl"),
    "analyze --stor": ("analyze", ["--stor", "somewhere"], "unrecognized arguments: --stor"),
    "study --bud": ("study", ["--bud", "8"], "unrecognized arguments: --bud 8"),
    "fetch_assets --he": ("fetch_assets", ["--he"], "unrecognized arguments: --he"),
}


@pytest.fixture
def no_work_past_parsing(monkeypatch):
    """Should an abbreviation ever pass, fail at once instead of fetching models and sweeping."""
    def tripwire(*args, **kwargs):
        raise AssertionError("the command went past parsing")

    for target in ("tuning.sweep.experiment.prepare_once", "tuning.assets.prepare.prepare",
                   "tuning.budget_study.runner.start", "tuning.assets.catalog.fetch_model",
                   "tuning.assets.catalog.fetch_dataset"):
        monkeypatch.setattr(target, tripwire)


@pytest.mark.parametrize("case", ABBREVIATIONS)
def test_every_entry_point_refuses_abbreviations(case, capsys, tmp_path, monkeypatch, no_work_past_parsing):
    module, argv, expected = ABBREVIATIONS[case]
    monkeypatch.chdir(tmp_path)  # should anything be written after all, it lands here, and is checked
    with pytest.raises(SystemExit) as stopped:
        main_guard(lambda: _main(module)(argv))
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and expected in err, err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- data settings: typed flags win


def run_settings(*argv: str) -> DataSettings:
    return data_settings(run.parse_args(list(argv)))


def test_without_flags_the_data_settings_are_the_defaults():
    assert run_settings() == DataSettings()


def test_smoke_test_fills_only_what_was_not_typed():
    settings = run_settings("--dataset", "x.csv", "--smoke-test", "--max-length", "64", "--seed", "3")
    assert settings.dataset == "x.csv"  # the file, not the generated smoke data
    assert (settings.max_length, settings.split_seed) == (64, 3)
    # What was not typed takes the smoke values.
    assert settings.student == SMOKE_SETTINGS["student"] and settings.teachers == SMOKE_SETTINGS["teachers"]
    assert settings.validation_size == SMOKE_SETTINGS["validation_size"]


def test_a_flag_typed_with_its_default_value_still_wins_over_smoke():
    # Rescanning argv was what told these apart before; a None default tells them apart now.
    typed = run_settings("--smoke-test", "--max-length", str(DataSettings.max_length))
    assert typed.max_length == DataSettings.max_length != SMOKE_SETTINGS["max_length"]
    assert run_settings("--smoke-test").max_length == SMOKE_SETTINGS["max_length"]


def entry_point_parser() -> Parser:
    """A parser like study.py's: set_defaults gives two data flags a default of the entry point's own."""
    parser = Parser(prog="entry.py")
    add_data_arguments(parser)
    parser.set_defaults(teacher_split=0.5, max_length=100)
    return parser


def test_an_entry_points_default_counts_as_not_typed():
    parser = entry_point_parser()
    # Not typed: wins over DataSettings' default, but gives way to --smoke-test's.
    assert data_settings(parse_with_explicit(parser, [])).max_length == 100
    assert data_settings(parse_with_explicit(parser, ["--smoke-test"])).max_length == SMOKE_SETTINGS["max_length"]
    assert data_settings(parse_with_explicit(parser, ["--smoke-test"])).teacher_split == 0.5
    # Typed: wins over everything.
    typed = data_settings(parse_with_explicit(parser, ["--smoke-test", "--max-length", "100"]))
    assert typed.max_length == 100
    # The parser keeps its defaults for the next parse.
    assert parser.get_default("max_length") == 100


def test_study_parser_keeps_its_teacher_split_default():
    assert data_settings(study.parse_args([])).teacher_split == 0.5
    assert data_settings(study.parse_args(["--smoke-test"])).teacher_split == 0.5
    assert data_settings(study.parse_args(["--teacher-split", "0.25"])).teacher_split == 0.25


def test_local_data_and_model_paths_are_kept_absolute_for_a_resume_from_elsewhere(tmp_path, monkeypatch):
    """sweep.json and study.json keep the data settings: a relative path would name something else (or nothing)
    when --resume is typed in another folder. Presets, and names that are no local file, stay as typed."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.csv").write_text("text,label\na,x\n")
    (tmp_path / "my-student").mkdir()
    monkeypatch.chdir(tmp_path)
    parser = Parser(prog="t")
    add_data_arguments(parser)
    args = parse_with_explicit(parser, ["--dataset", "data/mine.csv", "--student", "my-student",
                                        "--teachers", "my-student,minilm-l6"])
    settings = data_settings(args)
    assert settings.dataset == str(tmp_path / "data" / "mine.csv")
    assert settings.student == str(tmp_path / "my-student")
    assert settings.teachers == (str(tmp_path / "my-student"), "minilm-l6")  # a preset stays a name
    (tmp_path / "medmcqa-subjects").mkdir()  # a folder named like a data preset: the preset is read, so kept
    args = parse_with_explicit(parser, ["--dataset", "medmcqa-subjects", "--student", "not/here"])
    assert (data_settings(args).dataset, data_settings(args).student) == ("medmcqa-subjects", "not/here")


def test_a_local_language_model_file_is_kept_absolute(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    given = expert_assignments(argparse.Namespace(expert="llm:models/m.gguf"))
    assert given == {"expert": f"llm:{tmp_path / 'models' / 'm.gguf'}"}
    assert expert_assignments(argparse.Namespace(expert="llm:smollm2")) == {"expert": "llm:smollm2"}  # a preset
    assert expert_assignments(argparse.Namespace(expert="teachers")) == {"expert": "teachers"}
    # parsed as --expert is everywhere (was split by hand: ' LLM : models/m.gguf' stayed relative)
    assert expert_assignments(argparse.Namespace(expert=" LLM: models/m.gguf")) == given
    with pytest.raises(UsageError, match="name a language model"):
        expert_assignments(argparse.Namespace(expert="llm:"))
