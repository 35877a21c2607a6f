"""Reproducible measurements of the training loop, distillation cache and Ray sweeps: `python benchmarks/run.py`."""
