"""How good and how fast is the local zero-shot expert (`--expert llm:smollm2`) on the default data?

    python benchmarks/llm_expert.py [--rows N] [--out benchmarks/results/llm-expert-DATE] [--no-teachers]

On the default data's validation split (medmcqa-subjects, 13 subjects; the sweep's default split of 500
rows, which lists its rows class by class, so `--rows N` takes a seeded uniform sample of N rather than the
first N): the LLM expert's accuracy (argmax of its soft labels) beside the majority rate of
those rows and the default teacher ensemble's accuracy on the same rows (its cached logits; fine-tuned here
if the cache lacks them, which takes about 12 minutes on 2 cores). Also: seconds to load the model, rows per
second on 2 threads, the classes it predicts, and one post-hoc variant that needs no gold label nor another
forward pass: dividing each row's probabilities by their mean over the rows (a correction of the model's
prior over the labels, in the spirit of Zhao et al. 2021's contextual calibration).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainables.experts.llm import LabelScorer, LocalLLMExpert, load_gguf  # noqa: E402
from trainables.experts.prompts import PromptBuilder  # noqa: E402
from tuning.assets import catalog as assets  # noqa: E402
from tuning.assets.prepare import DataSettings, load_data, prepare_teacher_ensemble  # noqa: E402

THREADS = 2  # this machine's cores
PRESET = "smollm2"
NOUN = "medical subject"  # what a class of medmcqa-subjects is, in the prompt


def accuracy(probs: np.ndarray, gold: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == gold).mean())


def prior_corrected(probs: np.ndarray) -> np.ndarray:
    """Each row divided by the mean row, renormalised: labels the model favours whatever the text lose their
    head start."""
    scaled = probs / probs.mean(axis=0, keepdims=True)
    return scaled / scaled.sum(axis=1, keepdims=True)


def predicted_counts(probs: np.ndarray, names) -> dict[str, int]:
    counts = np.bincount(probs.argmax(axis=1), minlength=len(names))
    return {names[i]: int(c) for i, c in sorted(enumerate(counts), key=lambda x: -x[1]) if c}


def measure_llm(data, rows: np.ndarray) -> dict:
    torch.set_num_threads(THREADS)
    path = assets.fetch_llm(PRESET, progress=print)
    started = time.perf_counter()
    model, tokenizer = load_gguf(path)
    load_seconds = time.perf_counter() - started
    scorer = LabelScorer(model, tokenizer, data.label_names)
    expert = LocalLLMExpert(scorer, data.validation, PromptBuilder(data.label_names, noun=NOUN), f"llm:{PRESET}")
    expert.label(rows[:4])  # warm-up: the first forward pass allocates and picks kernels
    answer = expert.label(rows)
    gold = data.validation.labels[rows]
    return {
        "load_seconds": load_seconds, "label_seconds": answer.cost.seconds,
        "rows_per_second": len(rows) / answer.cost.seconds, "prompt_tokens_mean": answer.cost.prompt_tokens / len(rows),
        "accuracy": accuracy(answer.probs, gold), "accuracy_prior_corrected": accuracy(prior_corrected(answer.probs), gold),
        "mean_max_prob": float(answer.probs.max(axis=1).mean()),
        "predicted": predicted_counts(answer.probs, data.label_names),
        "predicted_prior_corrected": predicted_counts(prior_corrected(answer.probs), data.label_names),
        "first_token_only": all(len(t) == 1 for t in scorer.needed),
    }


def measure_teachers(data, rows: np.ndarray) -> dict:
    teachers = prepare_teacher_ensemble(DataSettings(cpus_per_trial=THREADS), data, progress=print,
                                        teacher_threads=THREADS)
    gold = data.validation.labels[rows]
    out = {"ensemble": accuracy(teachers.ensemble_probs("validation")[rows], gold)}
    for i, name in enumerate(teachers.names):
        out[name] = float((teachers.logits["validation"][i, rows].argmax(axis=1) == gold).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="a seeded sample of this many rows (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-teachers", action="store_true", help="skip the teacher ensemble's accuracy")
    args = parser.parse_args()
    load_before = os.getloadavg()
    data = load_data(DataSettings(), progress=print)
    rows = np.arange(len(data.validation))
    if args.rows is not None and args.rows < len(rows):
        rows = np.sort(np.random.default_rng(0).choice(rows, args.rows, replace=False))
    gold = data.validation.labels[rows]
    counts = np.bincount(gold, minlength=data.num_labels)
    result = {
        "data": data.name, "classes": data.num_labels, "rows": len(rows), "split": "validation" + (" (seeded sample)" if args.rows else ""),
        "majority_rate": float(counts.max() / counts.sum()), "majority_class": data.label_names[int(counts.argmax())],
        "llm": measure_llm(data, rows),
        "teachers": None if args.no_teachers else measure_teachers(data, rows),
        "threads": THREADS, "torch": torch.__version__, "python": platform.python_version(),
        "load_average_start": load_before, "load_average_end": os.getloadavg(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "llm_expert.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
