"""The Expert-Loop: query the pool, let the teacher ensemble label, distil, round after round.

Sizes are in examples of the training split (4,006 on the default data). Training length is per round, in
optimiser steps (round_steps) rather than epochs: a round's few hundred rows make few steps an epoch."""

from search_spaces.kd import SPACE as KD_SPACE

SPACE = {
    **{key: value for key, value in KD_SPACE.items() if key != "epochs"},
    # Each round retrains on a few hundred examples, in whole epochs of about this many optimiser steps (3 to 40
    # epochs): 2-4 epochs there were 21-96 steps, which left 5 of 8 students at the majority class, while supervised
    # points on 100-400 labels reach their best on validation after 340-1,200 steps
    # (benchmarks/results/stopping-probe-2026-12-06, active-loop-steps-2026-12-07).
    "round_steps": {"type": "int", "low": 200, "high": 1000},
    # Gold labels to start from: the budget active learning tries to save.
    "initial_pool_size": {"type": "int", "low": 50, "high": 250},
    # Examples the experts label per round.
    "query_size": {"type": "int", "low": 25, "high": 150},
    # Query rounds after the first training; every round is one report the scheduler can stop at.
    "max_iterations": {"type": "int", "low": 1, "high": 3},
    # Candidates scored per round: a seeded sample keeps a round's scoring to seconds on CPU (the whole
    # pool of some 4,000 examples costs more than the training). Set 0 to score the whole pool.
    "pool_sample_size": 500,
    # The uncertainty rules, random, the teacher-aware rule, and issue 24's: BALD (mc_passes dropout passes, about
    # a plain pass each), BADGE, core-set and contrastive (one pass with embeddings), and margin with predicted-class
    # quotas. Any <strategy>+balanced is a valid value too (trainables/query.py): --space adds them.
    "strategy": {"type": "choice",
                 "values": ["least_confidence", "margin", "entropy", "random", "robust_least_confidence",
                            "bald", "badge", "coreset", "contrastive", "margin+balanced"]},
}

# The original research trained 3 epochs a round; 3 epochs of its 100-150 rows are 21-30 steps, below the space:
# the fewest steps the space allows stand in for them, so that the first trial is the original's otherwise.
ORIGINAL = {"learning_rate": 2e-5, "batch_size": 16, "temperature": 4.0, "alpha": 0.7,
            "initial_pool_size": 100, "query_size": 50, "max_iterations": 1, "strategy": "least_confidence",
            "round_steps": 200}
