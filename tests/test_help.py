"""--help of every script and of every `expert-loop` subcommand: it answers without importing Ray, torch or
transformers (they take seconds to import; the test checks what is imported, not the time, which is noisy),
shows the defaults, and its texts fit the script."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = {"ray", "torch", "transformers"}
SCRIPTS = {"run": "run.py", "study": "study.py", "analyze": "analyze.py", "train": "train.py",
           "evaluate": "evaluate.py", "fetch-assets": "fetch_assets.py"}


def help_of(*command: str) -> tuple[str, set[str]]:
    """The help text, and the top-level packages the process imported (python -X importtime lists every
    import on stderr: '... | cumulative | module')."""
    result = subprocess.run([sys.executable, "-X", "importtime", *command, "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    return " ".join(result.stdout.split()), imported  # argparse wraps lines: compare with single spaces


@pytest.mark.parametrize("script", SCRIPTS.values())
def test_a_scripts_help_imports_no_ray_torch_or_transformers(script):
    text, imported = help_of(str(ROOT / "tuning" / script))
    assert text.startswith("usage: tuning/")
    assert not imported & HEAVY, imported & HEAVY
    assert "default: None" not in text  # a None default is said in words


@pytest.mark.parametrize("command", SCRIPTS)
def test_a_subcommands_help_imports_no_ray_torch_or_transformers(command):
    text, imported = help_of("-m", "tuning.main", command)
    assert text.startswith(f"usage: tuning/{SCRIPTS[command]}")  # the script's own parser answers
    assert not imported & HEAVY, imported & HEAVY


def test_help_shows_the_defaults():
    run, _ = help_of(str(ROOT / "tuning" / "run.py"))
    for shown in ("Optuna sampler (default: tpe)", "(default: ray_results)", "tokens per sequence (default: 128)",
                  "(default: minilm-l6,minilm-l6-sre)", "(default: active_loop)",
                  "(default: a new local Ray instance on this machine's CPUs)"):
        assert shown in run
    study, _ = help_of(str(ROOT / "tuning" / "study.py"))
    assert "(default: 0.5)" in study  # study.py's own default of --teacher-split, not DataSettings' 0.0


def test_train_help_speaks_of_one_run_and_fetch_assets_description_is_a_sentence():
    train, _ = help_of(str(ROOT / "tuning" / "train.py"))
    assert "searcher" not in train and "fixed for a whole sweep" not in train
    assert "--seed SEED seeds the data split (default: 0)" in train
    fetch, _ = help_of(str(ROOT / "tuning" / "fetch_assets.py"))
    assert "Fetch the offline assets (pretrained models and data sets), or confirm they are cached." in fetch
    unwrapped = fetch.replace("- ", "-")  # argparse may wrap a line at a name's hyphen
    assert "(default: minilm-l3 minilm-l6 minilm-l6-sre medmcqa-subjects" in unwrapped


def test_dataset_help_names_every_preset_and_evaluate_states_its_whole_purpose():
    """--dataset's help named only the two withdrawn presets, not the default; evaluate.py's description was cut
    at the end of its docstring's first line ("... as JSON on stdout: accuracy,")."""
    run, _ = help_of(str(ROOT / "tuning" / "run.py"))
    assert "preset (medmcqa-subjects, medmcqa, multiemo-medicine, wikihow-mcq)" in run.replace("- ", "-")
    evaluate, _ = help_of(str(ROOT / "tuning" / "evaluate.py"))
    assert ("as JSON on stdout: accuracy, macro-F1, loss and each class's precision and recall (also shown as a "
            "table on stderr).") in evaluate
