"""Metrics of a saved checkpoint on a split of the data it was trained for, as JSON on stdout: accuracy,
macro-F1, loss and each class's precision and recall (also shown as a table on stderr).

    python tuning/evaluate.py --checkpoint checkpoints/kd-20261126-1400 --split test
    python tuning/evaluate.py --checkpoint ray_results/NAME/kd/student_trial_...   # a sweep's trial folder
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

from trainables.errors import UsageError
from tuning.assets import catalog as assets  # light: no torch, no transformers
from tuning.cli import Parser, main_guard

if TYPE_CHECKING:
    import numpy as np

RESULTS = "result.json"  # Ray Tune's log in a trial folder: one JSON object per report, naming its checkpoint


@dataclass(frozen=True)
class Evaluation:
    run_config: dict
    logits: np.ndarray  # (examples, classes)
    labels: np.ndarray  # gold, one per example
    label_names: tuple[str, ...]

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


def parse_args(argv=None):
    parser = Parser(prog="tuning/evaluate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True,
                        help="a checkpoint folder written by train.py, or a trial folder of a sweep (run.py): "
                             "its last report's checkpoint, else its latest")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"),
                        help="the split of the checkpoint's data to evaluate on")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1 (leave it out for all CPUs), got {args.threads}")
    folder = find_checkpoint(Path(args.checkpoint))
    # torch and transformers only now, after the arguments are checked: --help answers at once.
    import torch  # noqa: PLC0415 (as said above)

    from trainables.loop import logit_metrics  # noqa: PLC0415 (torch)

    if args.threads:
        torch.set_num_threads(args.threads)
    result = evaluate_checkpoint(folder, args.split)
    print(report(result, as_dict=False), file=sys.stderr)  # for a reader; stdout stays one JSON document
    print(json.dumps({"checkpoint": str(folder), "split": args.split, "examples": len(result.labels),
                      "method": result.run_config["trial"]["method"],
                      **logit_metrics(result.logits, result.labels, len(result.label_names)),
                      "per_class": per_class(result)}, indent=2))
    return 0


def find_checkpoint(folder: Path) -> Path:
    """`folder` when it is a checkpoint. In a trial folder (checkpoint_NNNNNN subfolders), the checkpoint
    of the trial's last report, which Ray's Result.checkpoint and analyze.py's best_configs.json name;
    without Ray's log, the latest one (Ray may keep two: the best on val_accuracy and the latest)."""
    from trainables.checkpoint import RUN_CONFIG  # noqa: PLC0415 (torch, transformers: --help answers at once)

    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"checkpoint folder {folder} {what}")
    if (folder / RUN_CONFIG).is_file():
        return folder
    found = sorted(path for path in folder.glob("checkpoint_*") if (path / RUN_CONFIG).is_file())
    if not found:
        raise UsageError(f"{folder} is not a checkpoint of this tool (no {RUN_CONFIG}) nor a trial folder "
                         f"holding one (no checkpoint_*/{RUN_CONFIG})")
    named = last_checkpoint_name(folder)
    return next((path for path in found if path.name == named), found[-1])


def last_checkpoint_name(trial: Path) -> str | None:
    """The checkpoint folder named by the last report of Ray's result.json that saved one, if any."""
    path = trial / RESULTS
    if not path.is_file():
        return None
    named = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            named = json.loads(line).get("checkpoint_dir_name") or named
        except (json.JSONDecodeError, AttributeError):
            continue  # a line cut short by a kill: the reports before it still count
    return named


def evaluate_checkpoint(folder: Path, split: str) -> Evaluation:
    # torch and transformers, here and in the five imports below: --help answers at once.
    from transformers import AutoTokenizer  # noqa: PLC0415

    from trainables.checkpoint import read_run_config  # noqa: PLC0415
    from trainables.encode import encode_task  # noqa: PLC0415
    from trainables.loop import predict_logits  # noqa: PLC0415
    from trainables.models import load_finetuned  # noqa: PLC0415
    from tuning.assets.prepare import DataSettings, load_data  # noqa: PLC0415

    run_config = read_run_config(folder)
    model = load_finetuned(folder, run_config["task"])  # safetensors only
    settings = DataSettings.from_dict(run_config["provenance"]["data"])
    data = load_data(settings)
    if data.fingerprint() != run_config["provenance"]["data_fingerprint"]:
        print("warning: the data differ from those the checkpoint was trained on", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = encode_task(tokenizer, data, settings.max_length, assets.cache_dir() / "tokens")[split]
    # The precision the run evaluated in, so the figures match those it reported.
    logits = predict_logits(model, encoded, bf16=run_config["trial"].get("bf16", False))
    return Evaluation(run_config, logits, encoded.labels, tuple(data.label_names))


def report(result: Evaluation, as_dict: bool):
    """scikit-learn's classification_report over every class of the task, also those never predicted."""
    from sklearn.metrics import classification_report  # noqa: PLC0415 (scikit-learn: --help answers at once)

    return classification_report(result.labels, result.predictions, labels=list(range(len(result.label_names))),
                                 target_names=list(result.label_names), digits=4, zero_division=0,
                                 output_dict=as_dict)


def per_class(result: Evaluation) -> dict[str, dict]:
    """{class name: {precision, recall, f1-score, support}} as plain JSON numbers."""
    table = report(result, as_dict=True)
    return {name: {key: int(value) if key == "support" else float(value) for key, value in table[name].items()}
            for name in result.label_names}


if __name__ == "__main__":
    main_guard(main)
