"""tuning/cli.py: --set/--fix parsing, experiment names, and the one-line exit-2 error handling."""

from __future__ import annotations

import pytest

from trainables.errors import UsageError
from tuning.cli import Parser, check_name, main_guard, parse_assignments, split_names


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
