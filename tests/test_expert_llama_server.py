"""The endpoint expert against a real OpenAI-compatible server: llama.cpp's, from the xllamacpp wheel, serving
the SmolLM2 GGUF of the asset catalogue on 127.0.0.1, each in a process of its own that the test stops. A server
that answers garbage is the fake one of test_expert_endpoint.py (llama.cpp cannot be made to)."""

import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from trainables.data import Examples
from trainables.errors import ExpertError
from trainables.experts.cache import ResponseCache
from trainables.experts.endpoint import EndpointExpert, EndpointSettings
from trainables.experts.prompts import PromptBuilder

pytestmark = pytest.mark.slow  # a 93 MB download into the session's cache, a server, a language model

SERVER = Path(__file__).with_name("llama_server.py")
LABELS = ("Anatomy", "Dental", "Pharmacology", "Surgery")
ROWS = Examples(("Which nerve supplies the deltoid muscle?", "Which tooth erupts first in children?",
                 "What is the antidote of paracetamol poisoning?", "How is an inguinal hernia repaired?",
                 "Which bone forms the heel?"), [0, 1, 2, 3, 0])
STARTUP_SECONDS = 60  # loading a 98 MB model on a busy 2-core machine


class LlamaServer:
    """tests/llama_server.py in its own process; stop() closes its stdin, and kills it if it lingers."""

    def __init__(self, model: Path, port: int) -> None:
        self.process = subprocess.Popen([sys.executable, str(SERVER), str(model), str(port)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_SECONDS)
        line = self.process.stdout.readline().strip() if ready else ""
        if not line.startswith("http://127.0.0.1:"):
            self.kill()
            raise RuntimeError(f"llama.cpp's server did not start (said {line!r})")
        self.url = line + "/v1"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def servers():
    started: list[LlamaServer] = []

    def start(model: Path, port: int = 0) -> LlamaServer:
        started.append(LlamaServer(model, port))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def expert(url: str, cache: Path, progress=None) -> EndpointExpert:
    # Four answer tokens are enough: the first one's log-probabilities decide. One request at a time, as the
    # server has one slot; one quick retry, so that a dead server ends the round in well under a second.
    settings = EndpointSettings(url, "smollm2", timeout=60, concurrency=1, retries=1, backoff=0.05, max_tokens=4)
    return EndpointExpert(settings, ROWS, PromptBuilder(LABELS, noun="medical subject"), ResponseCache(cache),
                          progress)


def test_llama_cpp_answers_with_log_probabilities_tokens_and_a_cache(servers, smollm2_gguf, tmp_path):
    server = servers(smollm2_gguf)
    answer = expert(server.url, tmp_path).label([0, 1, 2])
    assert answer.probs.shape == (3, len(LABELS))
    np.testing.assert_allclose(answer.probs.sum(axis=1), 1)
    assert (answer.probs.max(axis=1) < 1).all()  # soft labels: the top log-probabilities were read
    cost = answer.cost
    assert (cost.calls, cost.cache_hits) == (3, 0)
    assert cost.prompt_tokens > 3 * 50 and 3 <= cost.completion_tokens <= 12  # llama.cpp's own counts
    again = expert(server.url, tmp_path).label([2, 1, 0])
    assert (again.cost.calls, again.cost.cache_hits) == (0, 3)
    np.testing.assert_array_equal(again.probs, answer.probs[::-1])


def test_a_server_that_dies_mid_round_keeps_what_was_answered(servers, smollm2_gguf, tmp_path):
    port = free_port()
    server = servers(smollm2_gguf, port)

    def kill_after_two(done: int, needed: int) -> None:
        if done == 2:
            server.kill()

    started = time.perf_counter()
    with pytest.raises(ExpertError) as failed:
        expert(server.url, tmp_path, kill_after_two).label([0, 1, 2, 3, 4])
    message = str(failed.value)
    assert "no answer after 2 attempts" in message and "2 of the round's 5 answers are cached" in message
    assert len(ResponseCache(tmp_path)) == 2
    assert time.perf_counter() - started < 120
    # The same endpoint back (same address): the next run asks only for the three rows not yet answered.
    revived = servers(smollm2_gguf, port)
    answer = expert(revived.url, tmp_path).label([0, 1, 2, 3, 4])
    assert (answer.cost.cache_hits, answer.cost.calls) == (2, 3)
    np.testing.assert_allclose(answer.probs.sum(axis=1), 1)


def test_train_py_runs_the_expert_loop_against_the_endpoint_and_never_pays_twice(servers, smollm2_gguf, tmp_path,
                                                                                 monkeypatch):
    """`train.py --method active_loop --expert openai --expert-url ... --expert-model ...` on the smoke data, as the
    README shows it: each queried row is one paid call; the same run again reads every answer from the cache."""
    import json  # noqa: PLC0415

    from tuning import train  # noqa: PLC0415 (torch)

    server = servers(smollm2_gguf)
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path / "cache"))
    args = ["--method", "active_loop", "--smoke-test", "--expert", "openai", "--expert-url", server.url,
            "--expert-model", "smollm2", "--expert-price", "0.5", "--set", "initial_pool_size=16",
            "--set", "query_size=2", "--set", "max_iterations=1", "--set", "epochs=1", "--set", "bf16=false"]
    metrics = []
    for out in (tmp_path / "run", tmp_path / "again"):  # train.py never trains over a checkpoint
        assert train.main([*args, "--out", str(out)]) == 0
        metrics.append(json.loads((out / "run_config.json").read_text())["metrics"])
    first, second = metrics
    assert (first["expert_calls"], first["expert_cache_hits"], first["expert_paid"]) == (2, 0, 1.0)
    assert (second["expert_calls"], second["expert_cache_hits"], second["expert_paid"]) == (0, 2, 0.0)
    assert first["expert_queries"] == 2 and first["expert_priced_cost"] == second["expert_priced_cost"] == 1.0
    assert first["expert_tokens"] > 2 * 50  # llama.cpp's own token counts, summed
    assert first["test_accuracy"] == second["test_accuracy"]  # the same answers train the same student
