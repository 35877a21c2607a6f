"""What code trained a study's points, so that a study continued later (`--resume`, often in another session
and after the code moved on) says when its points were not all trained by the same code.

A fingerprint is the sha256 of every Python file under trainables/ (the code a trial runs: data, model, loop,
losses, query strategies, the arms), by path relative to the project; no git needed, so an installed copy
fingerprints the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRAINING_CODE = ("trainables",)


def fingerprint(root: Path = ROOT) -> dict[str, str]:
    """{relative path: sha256 of its bytes} of every .py file under the training code's folders."""
    return {path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in TRAINING_CODE for path in sorted((root / folder).rglob("*.py"))}


def changed(recorded: dict[str, str], now: dict[str, str]) -> list[str]:
    """Files added, removed or edited between two fingerprints, sorted."""
    return sorted(name for name in recorded.keys() | now.keys() if recorded.get(name) != now.get(name))
