"""An on-disk cache of an endpoint's answers, so that an interrupted or resumed run never pays twice.

One JSON file per answer, named by the sha256 of (url, model, prompt), and for an endpoint of the request's other
settings that shape the answer too (temperature, max_tokens, logprobs, top_logprobs: a shorter or otherwise asked
answer is not the one wanted), and written whole or not at all (trainables/atomic.py): a run killed mid-round
leaves every answer it received and nothing half-written. Only answers that were understood are stored; the record
keeps the request's url, model, prompt and settings, the model the server says answered, and what the call cost
(tokens, price, attempts, seconds) beside the response, so a folder is the ledger of what was paid, and can be read
by a person. The key is never written. JSON only (no pickle): a cache file is data, never code.

The model is known by the name it was asked by: a server that ignores it (llama.cpp answers with the file it
loaded) and is restarted with another model under the same name gets the first one's answers from the cache. The
record's `served` says which model answered, and the endpoint expert refuses a run whose answers name two
(endpoint.EndpointExpert.one_model).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from trainables.atomic import write_text

RECORD_VERSION = 1  # bump when a record's layout changes: older records are then misses, not errors


def cache_key(url: str, model: str, prompt, settings: dict | None = None) -> str:
    """sha256 of the three, and of `settings` when given, as one canonical JSON text (the prompt may be a string
    or a list of messages). Without settings the key is what it always was: the local model's answers, which no
    setting shapes, stay cached."""
    parts = [url.rstrip("/"), model, prompt, *([settings] if settings is not None else [])]
    text = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """get / put by key; counts hits and misses (thread-safe: an endpoint asks from several threads)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.hits = self.misses = 0
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"  # 256 sub-folders: no folder of a million files

    def get(self, key: str) -> dict | None:
        """The stored response, or None. A record that cannot be read (another version's) is a miss."""
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            record = None
        found = isinstance(record, dict) and record.get("version") == RECORD_VERSION and "response" in record
        with self._lock:
            if found:
                self.hits += 1
            else:
                self.misses += 1
        return record["response"] if found else None

    def put(self, key: str, url: str, model: str, prompt, response: dict, cost: dict | None = None,
            settings: dict | None = None, served: dict | None = None) -> None:
        """`cost`: what the call cost (tokens, price, attempts, seconds), kept beside it as a ledger. `settings`:
        those of the key; `served`: what the server says answered (its model, system_fingerprint). Both are left
        out when not given, so a record without them reads as before."""
        record = {"version": RECORD_VERSION, "url": url, "model": model, "prompt": prompt, "response": response,
                  "cost": cost or {}}
        record.update({name: value for name, value in (("settings", settings), ("served", served))
                       if value is not None})
        write_text(self.path(key), json.dumps(record, ensure_ascii=False))

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.json"))
