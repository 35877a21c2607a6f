"""Checkpoint folders: weights as safetensors, the transformers config, the tokenizer, and
`run_config.json` holding everything needed to reproduce or evaluate the run."""

from __future__ import annotations

import json
from pathlib import Path

from trainables.config import TrialConfig
from trainables.errors import UsageError

RUN_CONFIG = "run_config.json"
TRIAL_STATE = "trial_state.json"


def save_checkpoint(folder: Path, model, prepared, trial: TrialConfig, metrics: dict,
                    state: dict | None = None) -> None:
    folder = Path(folder)
    model.save_pretrained(folder)
    prepared.student.tokenizer.save_pretrained(folder)
    run_config = {
        "trial": trial.to_dict(),
        "task": prepared.task,
        "label_names": list(prepared.label_names),
        "provenance": prepared.provenance,
        "metrics": metrics,
    }
    (folder / RUN_CONFIG).write_text(json.dumps(run_config, indent=2, default=float), encoding="utf-8")
    if state is not None:
        (folder / TRIAL_STATE).write_text(json.dumps(state), encoding="utf-8")


def read_run_config(folder: Path) -> dict:
    path = Path(folder) / RUN_CONFIG
    if not Path(folder).is_dir():
        raise UsageError(f"checkpoint folder {folder} does not exist")
    if not path.is_file():
        raise UsageError(f"{folder} is not a checkpoint of this tool (no {RUN_CONFIG})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not valid JSON: {error}") from None


def read_trial_state(folder: Path) -> dict | None:
    path = Path(folder) / TRIAL_STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
