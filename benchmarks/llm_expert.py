"""How good and how fast is the local zero-shot expert (`--expert llm:smollm2`) on the default data?

    python benchmarks/llm_expert.py [--rows N] [--server-rows N] [--no-teachers] [--out benchmarks/results/DIR]

On the default data's validation split (medmcqa-subjects, 13 subjects; the sweep's default split of 500 rows,
which lists its rows class by class, so `--rows N` takes a seeded uniform sample of N rather than the first N):

- accuracy of the LLM expert (the argmax of its soft labels), beside the majority rate of those rows and the
  default teacher ensemble's accuracy on the same rows (its cached logits; fine-tuned here if the cache lacks
  them, which takes about 12 minutes on 2 cores);
- two corrections that cost no forward pass (trainables/experts/calibration.py): the label prior estimated on
  the rows themselves (no gold label), and per-label shifts fitted on the Expert-Loop's gold seed pool (the
  100 training rows that `initial_state` draws with seed 0; those 100 gold labels are counted);
- seconds to load the model; rows per second on 2 threads, overall and per chunk of 20 rows (the machine is
  shared: the fastest chunk is the best guess of what a quiet machine does, the median the typical one);
- with --server-rows N: the same model behind llama.cpp's OpenAI-compatible server (xllamacpp, 2 threads, on
  loopback), through the endpoint expert (a generated answer of up to 16 tokens, temperature 0, the top-20
  log-probabilities where it names its label), on a seeded sample of N of the rows (2 of them a warm-up): rows
  per second and accuracy of that path, beside the in-process scorer's accuracy on the same rows.

Writes llm_expert.json (every figure) and scores.csv (each row's log-probability of each label, for the
validation rows and the seed pool, so other corrections can be tried without the model).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainables.experts.cache import ResponseCache  # noqa: E402
from trainables.experts.calibration import fit_bias, prior_corrected  # noqa: E402
from trainables.experts.endpoint import EndpointExpert, EndpointSettings  # noqa: E402
from trainables.experts.llm import LabelScorer, converted_copy, load_gguf  # noqa: E402
from trainables.experts.prompts import PromptBuilder, probs_from_logprobs  # noqa: E402
from trainables.sampling import stratified_subset  # noqa: E402
from tuning.assets import catalog as assets  # noqa: E402
from tuning.assets.prepare import DataSettings, load_data, prepare_teacher_ensemble  # noqa: E402

THREADS = 2  # this machine's cores
PRESET = "smollm2"
NOUN = "medical subject"  # what a class of medmcqa-subjects is, in the prompt
SEED_POOL = 100  # the Expert-Loop's default initial_pool_size (trainables/config.py)
CHUNK = 20  # rows per timed chunk
SERVER = ROOT / "tests" / "llama_server.py"


def accuracy(probs: np.ndarray, gold: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == gold).mean())


def predicted_counts(probs: np.ndarray, names) -> dict[str, int]:
    counts = np.bincount(probs.argmax(axis=1), minlength=len(names))
    return {names[i]: int(c) for i, c in sorted(enumerate(counts), key=lambda x: -x[1]) if c}


def score_in_chunks(scorer: LabelScorer, builder: PromptBuilder, examples, rows: np.ndarray):
    """(scores, seconds of each chunk): each row's log-probability of each label."""
    scores, seconds = [], []
    for start in range(0, len(rows), CHUNK):
        began = time.perf_counter()
        prompts = [scorer.prompt_ids(builder.message(examples, int(r))) for r in rows[start:start + CHUNK]]
        scores.append(scorer.score(prompts))
        seconds.append(time.perf_counter() - began)
    return np.vstack(scores), np.array(seconds)


def measure_llm(data, rows: np.ndarray, pool: np.ndarray) -> tuple[dict, pd.DataFrame, np.ndarray]:
    torch.set_num_threads(THREADS)
    path = assets.fetch_llm(PRESET, progress=print)
    copy = converted_copy(path)  # see benchmarks/gguf_load.py
    from_copy = copy is not None and copy.is_dir()
    started = time.perf_counter()
    model, tokenizer = load_gguf(path)
    load_seconds = time.perf_counter() - started
    scorer = LabelScorer(model, tokenizer, data.label_names)
    builder = PromptBuilder(data.label_names, noun=NOUN)
    scorer.score([scorer.prompt_ids(builder.message(data.validation, int(r))) for r in rows[:4]])  # warm-up
    scores, seconds = score_in_chunks(scorer, builder, data.validation, rows)
    pool_scores, _ = score_in_chunks(scorer, builder, data.train, pool)
    gold, probs = data.validation.labels[rows], probs_from_logprobs(scores)
    bias = fit_bias(pool_scores, data.train.labels[pool])
    calibrated = probs_from_logprobs(scores + bias)
    chunk_speed = np.array([min(CHUNK, len(rows) - i * CHUNK) for i in range(len(seconds))]) / seconds
    result = {
        "load_seconds": load_seconds, "loaded_from_converted_copy": from_copy, "label_seconds": float(seconds.sum()),
        "rows_per_second": len(rows) / float(seconds.sum()),
        "rows_per_second_median_chunk": float(np.median(chunk_speed)),
        "rows_per_second_best_chunk": float(chunk_speed.max()),
        "prompt_tokens_mean": float(np.mean([len(scorer.prompt_ids(builder.message(data.validation, int(r))))
                                             for r in rows])),
        "first_token_only": all(len(t) == 1 for t in scorer.needed),
        "accuracy": accuracy(probs, gold),
        "accuracy_prior_corrected": accuracy(prior_corrected(probs), gold),
        "accuracy_seed_pool_bias": accuracy(calibrated, gold), "seed_pool_gold_labels": len(pool),
        "seed_pool_accuracy_before_bias": accuracy(probs_from_logprobs(pool_scores), data.train.labels[pool]),
        "mean_max_prob": float(probs.max(axis=1).mean()),
        "predicted": predicted_counts(probs, data.label_names),
        "predicted_prior_corrected": predicted_counts(prior_corrected(probs), data.label_names),
        "predicted_seed_pool_bias": predicted_counts(calibrated, data.label_names),
    }
    table = pd.DataFrame(np.vstack([scores, pool_scores]), columns=list(data.label_names))
    table.insert(0, "gold", np.concatenate([gold, data.train.labels[pool]]))
    table.insert(0, "row", np.concatenate([rows, pool]))
    table.insert(0, "split", ["validation"] * len(rows) + ["seed_pool"] * len(pool))
    return result, table, probs


def measure_server(data, rows: np.ndarray) -> dict:
    """The endpoint expert against llama.cpp's server (2 threads) serving the same GGUF file in a process of its
    own, stopped at the end."""
    path = assets.fetch_llm(PRESET, progress=print)
    server = subprocess.Popen([sys.executable, str(SERVER), str(path), "0", str(THREADS)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = server.stdout.readline().strip() + "/v1"
        with tempfile.TemporaryDirectory() as cache:
            settings = EndpointSettings(url, PRESET, concurrency=1, timeout=120)
            expert = EndpointExpert(settings, data.validation, PromptBuilder(data.label_names, noun=NOUN),
                                    ResponseCache(cache))
            expert.label(rows[:2])  # warm-up
            answer = expert.label(rows[2:])
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    return {"rows": len(rows) - 2, "rows_per_second": (len(rows) - 2) / answer.cost.seconds,
            "accuracy": accuracy(answer.probs, data.validation.labels[rows[2:]]),
            "prompt_tokens_mean": answer.cost.prompt_tokens / answer.cost.calls}


def measure_teachers(data, rows: np.ndarray) -> dict:
    teachers = prepare_teacher_ensemble(DataSettings(cpus_per_trial=THREADS), data, progress=print,
                                        teacher_threads=THREADS)
    gold = data.validation.labels[rows]
    out = {"ensemble": accuracy(teachers.ensemble_probs("validation")[rows], gold),
           "gold_labels_they_learned_from": teachers.teacher_labels}
    for i, name in enumerate(teachers.names):
        out[name] = float((teachers.logits["validation"][i, rows].argmax(axis=1) == gold).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="a seeded sample of this many rows (default: all)")
    parser.add_argument("--server-rows", type=int, default=0, help="also measure llama.cpp's server on N rows")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-teachers", action="store_true", help="skip the teacher ensemble's accuracy")
    args = parser.parse_args()
    load_before = os.getloadavg()
    data = load_data(DataSettings(), progress=print)
    rows = np.arange(len(data.validation))
    if args.rows is not None and args.rows < len(rows):
        rows = np.sort(np.random.default_rng(0).choice(rows, args.rows, replace=False))
    pool = np.sort(stratified_subset(data.train.labels, SEED_POOL, 0))  # what initial_state draws for seed 0
    counts = np.bincount(data.validation.labels[rows], minlength=data.num_labels)
    llm, scores, probs = measure_llm(data, rows, pool)
    server = None
    if args.server_rows:
        sample = np.sort(np.random.default_rng(1).choice(len(rows), min(args.server_rows, len(rows)), replace=False))
        server = measure_server(data, rows[sample])
        measured = sample[2:]  # the server's first two rows are its warm-up
        server["llm_in_process_accuracy_same_rows"] = accuracy(probs[measured], data.validation.labels[rows[measured]])
    result = {
        "data": data.name, "classes": data.num_labels, "rows": len(rows),
        "split": "validation" + (" (seeded sample)" if args.rows else ""),
        "majority_rate": float(counts.max() / counts.sum()), "majority_class": data.label_names[int(counts.argmax())],
        "llm": llm,
        "server": server,
        "teachers": None if args.no_teachers else measure_teachers(data, rows),
        "threads": THREADS, "torch": torch.__version__, "python": platform.python_version(),
        "load_average_start": load_before, "load_average_end": os.getloadavg(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "llm_expert.json").write_text(text + "\n")
        scores.to_csv(args.out / "scores.csv", index=False, float_format="%.5f")


if __name__ == "__main__":
    main()
