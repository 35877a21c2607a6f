"""Metrics of a saved checkpoint on a split of the data it was trained for, as JSON on stdout.

    python tuning/evaluate.py --checkpoint checkpoints/kd-20261126-1400 --split test
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from trainables.checkpoint import read_run_config  # noqa: E402
from trainables.encode import encode_task  # noqa: E402
from trainables.loop import evaluate  # noqa: E402
from trainables.models import load_finetuned  # noqa: E402
from tuning import assets  # noqa: E402
from tuning.cli import Parser, main_guard  # noqa: E402
from tuning.prepare import DataSettings, load_data  # noqa: E402


def main(argv=None) -> int:
    parser = Parser(prog="tuning/evaluate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder written by run.py or train.py")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    args = parser.parse_args(argv)
    folder = Path(args.checkpoint)
    run_config = read_run_config(folder)
    model = load_finetuned(folder, run_config["task"])  # safetensors only
    stored = run_config["provenance"]["data"]
    settings = DataSettings.from_dict(stored)
    data = load_data(settings)
    if data.fingerprint() != run_config["provenance"]["data_fingerprint"]:
        print("warning: the data differ from those the checkpoint was trained on", file=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = encode_task(tokenizer, data, settings.max_length, assets.cache_dir() / "tokens")[args.split]
    # The precision the run evaluated in, so the figures match those it reported.
    metrics = evaluate(model, encoded, data.num_labels, bf16=run_config["trial"].get("bf16", False))
    print(json.dumps({"checkpoint": str(folder), "split": args.split, "examples": len(encoded),
                      "method": run_config["trial"]["method"], **metrics}, indent=2))
    return 0


if __name__ == "__main__":
    main_guard(main)
