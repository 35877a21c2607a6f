"""The Ray Tune callbacks of a tracker: imports MLflow only when there is one to log to."""

from __future__ import annotations

from tuning.tracking.settings import Tracking


def tracker_callbacks(tracking: Tracking | None) -> list:
    """Ray Tune callbacks that log to the tracker (none without one)."""
    if tracking is None:
        return []
    from tuning.tracking.mlflow_logger import TrialLogger  # noqa: PLC0415 (imports MLflow)

    return [TrialLogger(tracking)]
