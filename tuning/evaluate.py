"""Metrics of a saved checkpoint on a split of the data it was trained for, as JSON on stdout.

    python tuning/evaluate.py --checkpoint checkpoints/kd-20261126-1400 --split test
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

from tuning.cli import Parser, main_guard  # noqa: E402


def main(argv=None) -> int:
    parser = Parser(prog="tuning/evaluate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder written by run.py or train.py")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"),
                        help="the split of the checkpoint's data to evaluate on")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    args = parser.parse_args(argv)
    # torch and transformers only now, after the arguments are parsed: --help answers at once.
    import torch  # noqa: PLC0415
    from transformers import AutoTokenizer  # noqa: PLC0415

    from trainables.checkpoint import read_run_config  # noqa: PLC0415
    from trainables.encode import encode_task  # noqa: PLC0415
    from trainables.loop import evaluate  # noqa: PLC0415
    from trainables.models import load_finetuned  # noqa: PLC0415
    from tuning import assets  # noqa: PLC0415
    from tuning.prepare import DataSettings, load_data  # noqa: PLC0415

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
