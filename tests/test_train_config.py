"""tuning/train.py --config restores every data setting of the sweep, also those without a flag; flags
typed beside --smoke-test win over its defaults."""

import json

import pandas as pd
import pytest

from tuning import evaluate, train
from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, load_data

# Models, tokens and teachers go to the session's temporary cache, never the user's.
pytestmark = pytest.mark.usefixtures("session_cache")


def write_best(tmp_path, data: dict):
    path = tmp_path / "best_configs.json"
    path.write_text(json.dumps({"methods": {"kd": {"config": {"method": "kd", "alpha": 0.3}, "data": data}}}))
    return str(path)


def test_stored_settings_without_flags_are_kept(tmp_path):
    stored = {**DataSettings().to_dict(), "teacher_learning_rate": 7e-5, "teacher_batch_size": 8, "max_length": 64}
    args = train.parse_args(["--method", "kd", "--config", write_best(tmp_path, stored)])
    settings = train.sweep_data_settings(args)
    assert (settings.teacher_learning_rate, settings.teacher_batch_size, settings.max_length) == (7e-5, 8, 64)
    assert train.trial_config(args).alpha == 0.3


def test_flags_typed_on_the_command_line_win(tmp_path):
    stored = {**DataSettings().to_dict(), "max_length": 64, "teachers": ["a", "b"]}
    args = train.parse_args(["--method", "kd", "--config", write_best(tmp_path, stored), "--max-length", "32"])
    settings = train.sweep_data_settings(args)
    assert settings.max_length == 32 and settings.teachers == ("a", "b")


def test_smoke_defaults_fill_what_neither_the_config_nor_a_flag_gave(tmp_path):
    stored = {**DataSettings().to_dict(), "max_length": 64}
    args = train.parse_args(["--method", "kd", "--config", write_best(tmp_path, stored), "--smoke-test",
                             "--dataset", "x.csv"])
    settings = train.sweep_data_settings(args)
    assert settings.dataset == "x.csv"  # typed
    assert settings.max_length == SMOKE_SETTINGS["max_length"]  # --smoke-test's, over the sweep's 64
    assert settings.student == SMOKE_SETTINGS["student"]


def test_smoke_run_trains_on_the_data_file_given(tmp_path):
    """`--dataset x.csv --smoke-test` really reads x.csv: its checkpoint records the file, and the data's
    fingerprint is that of the file (the smoke data's would differ)."""
    words = ["awful", "great", "fine", "odd"]
    rows = pd.DataFrame({"text": [f"{words[i % 4]} visit number {i}" for i in range(80)],
                         "label": [i % 4 for i in range(80)]})
    path = tmp_path / "x.csv"
    rows.to_csv(path, index=False)
    out = tmp_path / "run"
    assert train.main(["--method", "supervised", "--dataset", str(path), "--smoke-test", "--out", str(out),
                       "--set", "epochs=1"]) == 0
    provenance = json.loads((out / "run_config.json").read_text())["provenance"]
    assert provenance["data"]["dataset"] == str(path)
    assert provenance["data"]["student"] == SMOKE_SETTINGS["student"]  # not typed: the smoke model
    settings = DataSettings.from_dict(provenance["data"])
    assert provenance["data_fingerprint"] == load_data(settings).fingerprint()
    assert load_data(settings).fingerprint() != load_data(DataSettings(dataset="smoke")).fingerprint()


@pytest.mark.parametrize("bf16", ["true", "false"])
def test_evaluate_reproduces_what_train_reported(tmp_path, capsys, bf16):
    """evaluate.py reads the checkpoint back in the precision the run used: same loss, same accuracy."""
    out = tmp_path / "run"
    assert train.main(["--method", "supervised", "--smoke-test", "--out", str(out), "--set", "epochs=1",
                       "--set", f"bf16={bf16}"]) == 0
    reported = json.loads((out / "run_config.json").read_text())["metrics"]
    capsys.readouterr()
    assert evaluate.main(["--checkpoint", str(out), "--split", "validation"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["accuracy"] == reported["val_accuracy"]
    assert measured["loss"] == pytest.approx(reported["val_loss"], abs=1e-5)


def test_an_expert_loop_run_without_round_steps_says_how_long_its_rounds_train():
    from trainables.config import TrialConfig  # noqa: PLC0415

    note = train.round_length_note(TrialConfig(method="active_loop", epochs=4))
    assert note.startswith("each round trains 4 epochs (round_steps 0)") and "--set round_steps=" in note
    assert train.round_length_note(TrialConfig(method="active_loop", round_steps=300)) is None
    assert train.round_length_note(TrialConfig(method="supervised")) is None
