"""The installed `expert-loop` command (tuning/main.py): subcommands reach the scripts' own parsers."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

from tests.conftest import ROOT, SUBPROCESS_WARNINGS


def expert_loop(*args: str, cache=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": SUBPROCESS_WARNINGS, **({"EXPERT_LOOP_CACHE": str(cache)} if cache else {})}
    return subprocess.run([sys.executable, "-m", "tuning.main", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_the_command_is_installed_as_a_console_script():
    scripts = {point.name: point.value for point in entry_points(group="console_scripts")}
    assert scripts.get("expert-loop") == "tuning.main:main"


def test_help_lists_every_subcommand_without_importing_torch():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "tuning.main", "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0
    for command in ("run", "study", "analyze", "train", "evaluate", "fetch-assets"):
        assert f"\n  {command} " in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert "torch" not in imported and "ray" not in imported


def test_no_command_or_an_unknown_one_exits_2():
    missing = expert_loop()
    assert missing.returncode == 2 and missing.stdout == "" and missing.stderr.startswith("usage: expert-loop COMMAND")
    result = expert_loop("sweep")
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: unknown command 'sweep' (choose from run, study, analyze, train, label, evaluate, fetch-assets)")


def test_a_subcommand_takes_its_script_flags_and_errors(tmp_path, session_cache):
    result = expert_loop("study", "--smoke-test", "--budgets", "16,8", "--storage-path", str(tmp_path),
                         cache=session_cache)
    assert result.returncode == 2
    assert "budgets must be distinct, increasing" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
