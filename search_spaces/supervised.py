"""Supervised fine-tuning of the student on every gold label of the training split.

Each entry: a distribution ("loguniform"/"uniform" low..high, "int" low..high inclusive, "choice"
values) or a plain value (fixed). `ORIGINAL` is the setting of the original research, tried first
so a sweep can only improve on it."""

SPACE = {
    # Small BERTs fine-tune in 1e-5..2e-4; below that 2-4 epochs barely move them, above they diverge.
    "learning_rate": {"type": "loguniform", "low": 1e-5, "high": 2e-4},
    # Smaller batches give more updates per epoch on a few thousand examples.
    "batch_size": {"type": "choice", "values": [8, 16, 32]},
    # The scheduler stops weak trials after the first epoch, so long trials cost only when they win.
    "epochs": {"type": "int", "low": 2, "high": 4},
    # Mild regularisation; BERT's recipe uses 0.01.
    "weight_decay": {"type": "uniform", "low": 0.0, "high": 0.1},
    # Warm-up protects the new classifier head's first steps; 0..20% of all steps.
    "warmup_ratio": {"type": "uniform", "low": 0.0, "high": 0.2},
}

ORIGINAL = {"learning_rate": 2e-5, "batch_size": 16, "epochs": 3}
