"""A hyperparameter sweep: search spaces, the Optuna searcher, the ASHA scheduler, the Tuner, resume, the summary."""
