"""Loading the local language model expert: its GGUF file parsed by transformers, against the float32 copy that
`trainables.experts.llm.load_gguf` keeps beside a preset's file after the first load.

    python benchmarks/gguf_load.py [--repeat 3] [--out benchmarks/results/DIR]

The preset's GGUF file and the asset cache's marker are copied into a temporary folder, so the user's cache is
neither read for the copy nor written. In turns (cold, warm, warm, cold, ...; see timing.py): cold = the
converted copy removed, then load_gguf (parse, dequantise, and save the copy); warm = load_gguf reading the copy.
Writes gguf_load.json: every time, the medians and cold / warm.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import interleave, median, ratio, timed  # noqa: E402
from trainables.experts import llm  # noqa: E402
from tuning.assets import catalog as assets  # noqa: E402

PRESET = "smollm2"
THREADS = 2  # this machine's cores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="loads of each kind (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="folder for gguf_load.json (default: print only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    source = assets.fetch_llm(PRESET, progress=print)
    with tempfile.TemporaryDirectory() as folder:
        gguf = Path(folder) / source.name
        shutil.copy2(source, gguf)
        (Path(folder) / llm.ASSET_MARKER).write_text((source.parent / llm.ASSET_MARKER).read_text())
        converted = llm.converted_copy(gguf)

        def cold(_round: int) -> float:
            shutil.rmtree(converted, ignore_errors=True)
            return timed(llm.load_gguf, gguf)[1]

        def warm(_round: int) -> float:
            if not converted.is_dir():
                llm.load_gguf(gguf)  # the first turn may come before any cold one: make the copy, untimed
            return timed(llm.load_gguf, gguf)[1]

        seconds = interleave({"cold": cold, "warm": warm}, args.repeat)
        copy_bytes = sum(path.stat().st_size for path in converted.rglob("*") if path.is_file())
    result = {
        "gguf_load_seconds_cold": median(seconds["cold"]), "gguf_load_seconds_warm": median(seconds["warm"]),
        "gguf_load_cold_over_warm": ratio(median(seconds["cold"]), median(seconds["warm"])),
        "raw_seconds": seconds, "gguf_bytes": source.stat().st_size, "converted_copy_bytes": copy_bytes,
        "threads": THREADS, "load_average": os.getloadavg(), "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gguf_load.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
