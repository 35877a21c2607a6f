"""Experiment trackers (--tracker): the flags and their settings, the Tune callbacks, the MLflow logger."""
