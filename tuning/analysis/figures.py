"""Saving PNG figures (matplotlib's Agg backend: no display needed, safe on a cluster head). Light: the
study's plots use it without the sweep analysis' readers (Ray)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a window

import matplotlib.pyplot as plt

from trainables.atomic import write_file


def save(figure, path: Path, tight: bool = True) -> Path:
    """`tight=False` for Optuna's figures: their colour bar is not compatible with tight_layout, so the
    margins are trimmed when saving instead."""
    if tight:
        figure.tight_layout()
    options = {} if tight else {"bbox_inches": "tight"}
    write_file(path, lambda temporary: figure.savefig(temporary, format="png", dpi=110, **options))
    plt.close(figure)
    return path
