"""Memory as the operating system accounts it, read from /proc while a sweep runs (Linux only).

A sampling thread walks the driver's process tree (Ray's raylet and GCS are the driver's children,
the trial workers the raylet's) every `interval` seconds. Per process it keeps the kernel's own
high-water mark (VmHWM, the peak resident set since the process started, so no spike between two
samples is missed); for the whole tree it keeps the largest sum of resident sets (VmRSS) seen."""

from __future__ import annotations

import os
import threading
from pathlib import Path

PROC = Path("/proc")


def parse_status(text: str) -> dict[str, int]:
    """VmRSS and VmHWM (kB) from the text of /proc/PID/status; missing fields (a kernel thread) are 0."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0])
    return values


def parse_ppid(stat: str) -> int:
    """The parent pid from /proc/PID/stat: 'pid (comm) state ppid ...'; comm may hold spaces and ')'."""
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int, parents: dict[int, int]) -> set[int]:
    """root and every process below it, given {pid: ppid}."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, []))
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # the process ended between listing and reading
        return None


def _parents() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _read(entry / "stat")
            if stat:
                parents[int(entry.name)] = parse_ppid(stat)
    return parents


class TreeMemory:
    """Samples the process tree under `root` (default: this process) until stopped."""

    def __init__(self, root: int | None = None, interval: float = 0.5):
        self.root = root or os.getpid()
        self.interval = interval
        self.peak_tree_kb = 0
        self.processes: dict[int, dict] = {}  # pid -> {"title", "hwm_kb"}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tree-memory")

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        total = 0
        for pid in descendants(self.root, _parents()):
            status, cmdline = _read(PROC / str(pid) / "status"), _read(PROC / str(pid) / "cmdline")
            if status is None:
                continue
            values = parse_status(status)
            total += values["VmRSS"]
            record = self.processes.setdefault(pid, {"title": "", "hwm_kb": 0, "titles": set()})
            title = (cmdline or "").replace("\0", " ").strip()[:80]
            record["title"] = title or record["title"]
            record["titles"].add(title.split(" ")[0])
            record["hwm_kb"] = max(record["hwm_kb"], values["VmHWM"])
        self.peak_tree_kb = max(self.peak_tree_kb, total)

    def peaks_mb(self, marker: str) -> list[float]:
        """VmHWM (MB) of every process whose title ever contained `marker` (e.g. Ray's trial actors)."""
        return [record["hwm_kb"] / 1024 for record in self.processes.values()
                if any(marker in title for title in record["titles"])]
