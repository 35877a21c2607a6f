"""Knowledge distillation from the teacher ensemble (Hinton et al., 2015) on the whole training split."""

from search_spaces.supervised import SPACE as SUPERVISED_SPACE

SPACE = {
    **SUPERVISED_SPACE,
    # T softens the teachers' distributions; 1..8 spans "hard labels" to "mostly dark knowledge".
    "temperature": {"type": "uniform", "low": 1.0, "high": 8.0},
    # alpha weights distillation against gold cross-entropy; 0 is supervised, 1 ignores gold labels.
    "alpha": {"type": "uniform", "low": 0.1, "high": 1.0},
}

ORIGINAL = {"learning_rate": 2e-5, "batch_size": 16, "epochs": 3, "temperature": 4.0, "alpha": 0.7}
