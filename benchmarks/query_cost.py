"""Seconds per query round of each strategy against one plain pass of the student over the pool (issue 24).

    python benchmarks/query_cost.py [--repeat 2] [--threads 1] [--out benchmarks/results/query-cost-DATE]

A round's query as the Expert-Loop and the budget study run it (trainables/expert_loop.query: the pass of
trainables/pool_outputs.py, then query.select) on the default data with the default student (minilm-l3's
pretrained encoder with a fresh head: a pass costs the same whatever the weights): a pool sample of 500
training rows (the search space's pool_sample_size), 150 labelled rows (100 initial + 50 queried: coreset and
contrastive embed them too), 50 rows to pick, mc_passes 10, one thread (a study trial's CPU). The teachers'
logits are random stand-ins (robust_least_confidence only reads them). The baseline is one plain pass over the
500 rows (loop.predict_logits and a softmax: what an uncertainty strategy needs). Every strategy and the
baseline run in turns (benchmarks/timing.interleave); each figure is a ratio of medians, strategy / plain.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from a checkout, like tuning/run.py

from benchmarks import common  # noqa: E402
from benchmarks.results import machine_info, today  # noqa: E402
from benchmarks.timing import interleave, median, ratio  # noqa: E402
from trainables.config import TrialConfig  # noqa: E402
from trainables.expert_loop import LoopState, query  # noqa: E402
from trainables.loop import predict_logits  # noqa: E402
from trainables.models import build_model  # noqa: E402
from trainables.prepared import Prepared, TeacherOutputs  # noqa: E402

POOL, INITIAL, QUERIED, QUERY = 500, 100, 50, 50
STRATEGIES = ("least_confidence", "margin", "entropy", "random", "robust_least_confidence", "bald", "badge",
              "coreset", "contrastive", "margin+balanced", "badge+balanced")


def prepared_default(threads: int) -> Prepared:
    data = common.load(train=None)
    student = common.blueprint(common.STUDENT, data)
    encoded = common.encode(student, data)
    rng = np.random.default_rng(0)
    logits = {split: rng.normal(size=(2, len(encoded[split]), data.num_labels)).astype(np.float32)
              for split in ("train", "validation", "test")}
    return Prepared(data.name, data.task, tuple(data.label_names), encoded, student,
                    TeacherOutputs(common.TEACHERS, logits, teacher_labels=0), threads, {})


def loop_state(rows: int) -> LoopState:
    order = np.random.default_rng(1).permutation(rows).tolist()
    return LoopState(1, sorted(order[:INITIAL]), order[INITIAL:INITIAL + QUERIED], sorted(order[INITIAL + QUERIED:]))


def measure(repeat: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    prepared = prepared_default(threads)
    model = build_model(prepared.student, seed=0)
    state = loop_state(len(prepared.encoded["train"]))
    base = TrialConfig(method="active_loop", query_size=QUERY, pool_sample_size=POOL, bf16=common.TRIAL_BF16)
    pool = np.sort(np.random.default_rng(2).choice(state.pool, POOL, replace=False))

    def plain(_round: int) -> float:
        started = time.perf_counter()
        torch.softmax(torch.from_numpy(predict_logits(model, prepared.encoded["train"], pool, bf16=base.bf16)), dim=1)
        return time.perf_counter() - started

    def strategy(name: str):
        trial = dataclasses.replace(base, strategy=name)

        def run(_round: int) -> float:
            started = time.perf_counter()
            chosen = query(model, trial, prepared, state)
            assert len(set(chosen.tolist())) == QUERY
            return time.perf_counter() - started
        return run

    seconds = interleave({"plain_pass": plain, **{name: strategy(name) for name in STRATEGIES}}, repeat)
    plain_median = median(seconds["plain_pass"])
    return {"date": today(), "machine": machine_info(), "threads": threads, "repeat": repeat,
            "sizes": {"pool": POOL, "labelled": INITIAL + QUERIED, "query": QUERY, "mc_passes": base.mc_passes},
            "bf16": base.bf16, "plain_pass_seconds": plain_median,
            "ratio_to_plain_pass": {name: ratio(median(seconds[name]), plain_median) for name in STRATEGIES},
            "seconds": seconds}


def markdown(results: dict) -> str:
    lines = [f"| strategy | seconds per round (median of {results['repeat']}) | ratio to one plain pass |",
             "|---|---|---|", f"| plain pass over the pool | {results['plain_pass_seconds']:.2f} | 1.00 |"]
    for name, value in results["ratio_to_plain_pass"].items():
        lines.append(f"| `{name}` | {median(results['seconds'][name]):.2f} | {value:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="rounds of turns (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a study trial's CPU)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "query-cost")
    args = parser.parse_args(argv)
    results = measure(args.repeat, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "query_cost.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))  # the table of the results folder's README


if __name__ == "__main__":
    main()
