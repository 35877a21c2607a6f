"""The OpenAI-compatible endpoint expert against a fake server on loopback (the standard library's http.server,
in a thread, stopped by the fixture): log-probabilities and parsed answers, tokens and price, the on-disk
cache's hits and misses, retries with back-off, the concurrency limit, the key, and garbage answers."""

import hashlib
import json
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from trainables.data import Examples
from trainables.errors import ExpertError, UsageError
from trainables.experts.cache import ResponseCache, cache_key
from trainables.experts.endpoint import EndpointExpert, EndpointSettings, Pricing, answer_probs
from trainables.experts.prompts import PromptBuilder

LABELS = ("Dental", "Medicine", "Surgery")
ROWS = Examples(tuple(f"question number {i}" for i in range(8)), [0] * 8)
KEY = "sk-test-do-not-print-1234"


def completion(content: str, top: list[tuple[str, float]] | None = None, usage=(10, 2)) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if top is not None:
        choice["logprobs"] = {"content": [{"token": top[0][0], "logprob": top[0][1],
                                           "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}
    return {"choices": [choice], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}}


class OnLoopback:
    """A server of this test's own on 127.0.0.1, served from a thread until stop()."""

    def serve(self, server) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        self.thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class FakeServer(OnLoopback):
    """Answers POST /v1/chat/completions with whatever `reply(body)` returns: a dict (sent as JSON, 200),
    (status, bytes, headers), or "hang up" (closes the connection without a word). Records every request, its
    Authorization header, and the most requests it ever had in flight at once."""

    def __init__(self, reply):
        self.reply, self.requests, self.auth = reply, [], []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.auth.append(self.headers.get("Authorization"))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    answer = fake.reply(body)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1
                if answer == "hang up":  # no answer at all: the connection closes (a server dying mid-request)
                    self.close_connection = True
                    return
                if isinstance(answer, dict):
                    answer = (200, json.dumps(answer).encode(), {})
                status, payload, headers = answer
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # quiet
                pass

        self.serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


class Witness(OnLoopback):
    """A TCP server on loopback that answers nothing and keeps the bytes of every connection made to it: what a
    second server, where a redirect points, would have received (a request of any method, its headers)."""

    def __init__(self):
        self.received: list[bytes] = []
        witness = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(2)
                try:
                    witness.received.append(self.request.recv(65536))
                except OSError:
                    witness.received.append(b"")

        self.serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler))


@pytest.fixture
def witness():
    server = Witness()
    yield server
    server.stop()


@pytest.fixture
def serve():
    servers = []

    def start(reply) -> FakeServer:
        servers.append(FakeServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def row_of(body: dict) -> int:
    return int(body["messages"][0]["content"].split("question number ")[1].split()[0])


def expert_for(server: FakeServer, cache_dir, **settings) -> EndpointExpert:
    settings = {"backoff": 0.01, "timeout": 5.0, **settings}
    return EndpointExpert(EndpointSettings(server.url, "fake-model", **settings), ROWS, PromptBuilder(LABELS),
                          ResponseCache(cache_dir))


def test_top_logprobs_give_the_soft_label_and_usage_the_price(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = serve(lambda body: completion("Surgery", [("Sur", np.log(0.6)), ("Med", np.log(0.3))]))
    pricing = Pricing(per_call=0.001, per_million_prompt_tokens=1000, per_million_completion_tokens=2000)
    answer = expert_for(server, tmp_path, pricing=pricing).label([0, 1, 2])
    # Surgery 0.6, Medicine 0.3; Dental unreached gets 1 - 0.9 = 0.1: already a distribution.
    np.testing.assert_allclose(answer.probs, [[0.1, 0.3, 0.6]] * 3)
    cost = answer.cost
    assert (cost.calls, cost.prompt_tokens, cost.completion_tokens, cost.cache_hits, cost.retries) == (3, 30, 6, 0, 0)
    # Per call 0.001 + 10 * 1000 / 1e6 + 2 * 2000 / 1e6 = 0.015.
    assert cost.price == pytest.approx(0.045)
    records = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("*/*.json"))]
    assert len(records) == 3 and all(r["cost"]["price"] == pytest.approx(0.015) for r in records)
    assert all((r["cost"]["prompt_tokens"], r["cost"]["completion_tokens"], r["cost"]["retries"]) == (10, 2, 0)
               and r["cost"]["seconds"] > 0 and r["model"] == "fake-model" for r in records)
    assert KEY not in "".join(path.read_text() for path in tmp_path.glob("*/*.json"))  # the key is in no file
    body = server.requests[0]
    assert body["model"] == "fake-model" and body["logprobs"] is True and body["temperature"] == 0
    message = body["messages"][0]["content"]
    assert "question number" in message and "Dental, Medicine, Surgery" in message
    assert server.auth == [f"Bearer {KEY}"] * 3


def test_without_logprobs_the_parsed_answer_is_one_hot_and_no_key_sends_no_header(serve, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = serve(lambda body: completion(["Dental.", "It is medicine", "SURGERY"][row_of(body) % 3]))
    answer = expert_for(server, tmp_path).label([0, 1, 2])
    assert answer.probs.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert server.auth == [None] * 3


def test_the_cache_answers_what_was_asked_before_and_same_prompts_are_asked_once(serve, tmp_path):
    server = serve(lambda body: completion("Dental"))
    first = expert_for(server, tmp_path).label([0, 1, 2])
    assert (first.cost.calls, first.cost.cache_hits) == (3, 0)
    expert = expert_for(server, tmp_path)  # a new run: only the disk remembers
    second = expert.label([1, 2, 3, 3])
    # Counted per row, as the local model counts: rows 1 and 2 are read back from disk (2 hits), the first row 3
    # needs a request (1 call), the second row 3 has its answer from that request (1 hit): 1 + 3 = 4 rows.
    assert (second.cost.calls, second.cost.cache_hits) == (1, 3)
    assert (expert.cache.hits, expert.cache.misses) == (2, 1)  # the disk's own count: one look-up per prompt
    assert len(server.requests) == 4 and len(expert.cache) == 4
    np.testing.assert_array_equal(second.probs, [[1, 0, 0]] * 4)


def test_rows_of_the_same_text_are_asked_once_and_counted_per_row(serve, tmp_path):
    """Two rows of one text (a duplicate in the data) in one round: one request, whose answer serves both; the
    first row is a call, the second a cache hit, so calls + hits is the round's rows, as for the local model."""
    server = serve(lambda body: completion("Surgery"))
    texts = Examples(("a hernia repair", "a hernia repair", "a molar", "a hernia repair"), [0] * 4)
    expert = EndpointExpert(EndpointSettings(server.url, "fake-model", backoff=0.01), texts, PromptBuilder(LABELS),
                            ResponseCache(tmp_path))
    answer = expert.label([0, 1, 2, 3])
    assert (answer.cost.calls, answer.cost.cache_hits) == (2, 2) and len(server.requests) == 2
    again = expert.label([3, 2])
    assert (again.cost.calls, again.cost.cache_hits) == (0, 2)


def test_the_settings_that_shape_an_answer_are_part_of_its_cache_key(serve, tmp_path):
    """max_tokens and top_logprobs change what the server answers (a cut-off text, fewer alternatives): an answer
    asked with other settings is not the one wanted, so it is a miss, not a hit."""
    server = serve(lambda body: {**completion("Dental", [("Dent", np.log(0.5)), ("Med", np.log(0.4))]),
                                 "model": "smollm2-135m.gguf", "system_fingerprint": "b4567"})
    answers = {}
    for settings in ({}, {"max_tokens": 4}, {"top_logprobs": 5}, {"max_tokens": 4}, {}):
        answer = expert_for(server, tmp_path, **settings).label([0])
        answers.setdefault(json.dumps(settings), []).append((answer.cost.calls, answer.cost.cache_hits))
    assert answers == {"{}": [(1, 0), (0, 1)], '{"max_tokens": 4}': [(1, 0), (0, 1)], '{"top_logprobs": 5}': [(1, 0)]}
    assert [(body["max_tokens"], body["top_logprobs"]) for body in server.requests] == [(16, 20), (4, 20), (16, 5)]
    records = [json.loads(path.read_text()) for path in tmp_path.glob("*/*.json")]
    assert sorted((r["settings"]["max_tokens"], r["settings"]["top_logprobs"]) for r in records) == [
        (4, 20), (16, 5), (16, 20)]
    assert all(r["settings"]["temperature"] == 0 and r["settings"]["logprobs"] is True for r in records)
    # What the server says answered, beside the name it was asked by (llama.cpp answers whatever it loaded).
    assert all(r["model"] == "fake-model" and r["served"] == {"model": "smollm2-135m.gguf",
                                                               "system_fingerprint": "b4567"} for r in records)


def test_answers_of_two_models_under_one_name_end_the_round_naming_both(serve, tmp_path):
    """A server restarted with another model under the same --expert-model name (llama.cpp answers with whatever
    file it loaded): a run that reads the first model's answers from the cache and gets the second's from the
    server ends the round with an ExpertError naming both; the new answer stays cached (it was paid for)."""
    loaded = ["smollm2-135m.gguf"]
    server = serve(lambda body: {**completion("Dental"), "model": loaded[0]})
    assert expert_for(server, tmp_path).label([0, 1]).cost.calls == 2
    loaded[0] = "qwen-0.5b.gguf"
    expert = expert_for(server, tmp_path)
    with pytest.raises(ExpertError, match="answers of two models under one name, 'smollm2-135m.gguf' and "
                                          "'qwen-0.5b.gguf'.*another --expert-model name"):
        expert.label([1, 2])  # row 1 from the cache (smollm2), row 2 asked now (qwen)
    assert len(expert.cache) == 3 and len(server.requests) == 3
    with pytest.raises(ExpertError, match="two models"):  # a later round of that run: smollm2's, then qwen's
        expert.label([3])
    assert expert_for(server, tmp_path).label([3, 4]).cost.calls == 1  # one model's answers only: nothing to refuse


def test_a_key_without_settings_is_what_it_always_was():
    """The local model's answers (runtime.CachedLocalLLM) are keyed by (model file, name, prompt) alone, as before:
    its cache stays valid."""
    assert cache_key("local:abc/", "m.gguf", "a prompt") == hashlib.sha256(
        b'["local:abc","m.gguf","a prompt"]').hexdigest()


def test_transient_failures_are_retried_with_back_off(serve, tmp_path):
    replies = iter([(503, b"busy", {}), (429, b"slow down", {"Retry-After": "0.2"}), completion("Medicine")])
    server = serve(lambda body: next(replies))
    started = time.perf_counter()
    answer = expert_for(server, tmp_path, backoff=0.05).label([0])
    # Waits: 0.05 s (back-off), then the server's Retry-After of 0.2 s.
    assert time.perf_counter() - started >= 0.25
    assert (answer.cost.calls, answer.cost.retries) == (1, 2) and len(server.requests) == 3
    assert answer.probs.tolist() == [[0, 1, 0]]


def test_a_connection_closed_without_an_answer_is_tried_again(serve, tmp_path):
    replies = iter(["hang up", completion("Surgery")])
    server = serve(lambda body: next(replies))
    answer = expert_for(server, tmp_path).label([0])
    assert (answer.cost.calls, answer.cost.retries, len(server.requests)) == (1, 1, 2)


def test_a_server_that_stays_down_ends_the_round_with_a_clear_error(serve, tmp_path):
    server = serve(lambda body: (503, b"down", {}))
    with pytest.raises(ExpertError) as failed:
        expert_for(server, tmp_path, retries=2).label([0])
    assert "no answer after 3 attempts (last: HTTP 503)" in str(failed.value)
    assert "0 of the round's 1 answers are cached" in str(failed.value)
    assert len(server.requests) == 3


def test_a_request_that_takes_too_long_times_out(serve, tmp_path):
    def slow(body):
        time.sleep(0.5)
        return completion("Dental")

    server = serve(slow)
    started = time.perf_counter()
    with pytest.raises(ExpertError, match=r"no answer after 1 attempt \(last: .*timed out\)"):
        expert_for(server, tmp_path, timeout=0.1, retries=0).label([0])
    assert time.perf_counter() - started < 0.45


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_the_key_goes_nowhere_else(serve, witness, tmp_path, monkeypatch, status):
    """urllib's default redirect handler follows a 30x with the Authorization header, to another host or from
    https to plain http: the second server would get the key, and its answer be cached under the first URL."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    elsewhere = witness.url + "/chat/completions"
    server = serve(lambda body: (status, b"", {"Location": elsewhere}))
    with pytest.raises(ExpertError) as failed:
        expert_for(server, tmp_path).label([0])
    message = str(failed.value)
    assert f"redirected (HTTP {status}) to {elsewhere!r}" in message and "--expert-url" in message
    assert KEY not in message and len(message.splitlines()) == 1
    assert len(server.requests) == 1  # not retried
    time.sleep(0.1)  # a connection made would have been accepted by now
    assert witness.received == []  # no connection at all: neither the key nor the prompt
    assert len(ResponseCache(tmp_path)) == 0


def test_a_refused_key_is_not_retried_and_never_printed(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    server = serve(lambda body: (401, b'{"error": "bad key"}', {}))
    with pytest.raises(ExpertError) as failed:
        expert_for(server, tmp_path, key_env="MY_KEY").label([0, 1])
    assert "HTTP 401" in str(failed.value) and "environment variable" in str(failed.value)
    assert KEY not in str(failed.value)
    assert len(server.requests) <= 2 and server.auth[0] == f"Bearer {KEY}"


@pytest.mark.parametrize(("garbage", "message"), [
    ((200, b"<html>gateway</html>", {"Content-Type": "text/html"}), "answered something that is not JSON: b'<html>"),
    ((200, b'{"object": "error"}', {}), "the endpoint's answer has no choices[0].message"),
    (completion("I cannot answer medical questions."), "names none of the labels"),
])
def test_garbage_ends_the_round_and_the_cache_keeps_what_was_answered(serve, tmp_path, garbage, message):
    def reply(body):
        return completion("Surgery") if row_of(body) < 2 else garbage

    server = serve(reply)
    with pytest.raises(ExpertError) as failed:
        expert_for(server, tmp_path, concurrency=1).label([0, 1, 2, 3])
    assert message in str(failed.value)
    assert "2 of the round's 4 answers are cached" in str(failed.value)
    assert len(server.requests) == 3  # after the first failure nothing more is sent
    # Garbage is never cached: once the server is mended, the next run pays only for rows 2 and 3.
    server.reply = lambda body: completion("Dental")
    cached = expert_for(server, tmp_path)
    answer = cached.label([0, 1, 2, 3])
    assert (answer.cost.cache_hits, answer.cost.calls) == (2, 2)
    assert answer.labels.tolist() == [2, 2, 0, 0]


def malformed(change) -> dict:
    """An answer naming Surgery with its log-probabilities, then broken by `change(answer)`."""
    answer = completion("Surgery", [("Sur", np.log(0.6)), ("Med", np.log(0.3))])
    change(answer)
    return answer


def _set(path: str, value):
    def change(answer):
        *parents, last = path.split(".")
        target = answer
        for step in parents:
            target = target[int(step)] if step.isdigit() else target[step]
        target[last] = value
    return change


MALFORMED = {  # an answer whose every part is of the wrong shape once: (the change, what the error says)
    "logprob null": (_set("choices.0.logprobs.content.0.top_logprobs.0.logprob", None),
                     "gives token 'Sur' the log-probability None"),
    "logprob 1e6": (_set("choices.0.logprobs.content.0.top_logprobs.0.logprob", 1e6),
                    "gives token 'Sur' the log-probability 1000000.0"),
    "logprob NaN": (_set("choices.0.logprobs.content.0.top_logprobs.0.logprob", float("nan")),
                    "gives token 'Sur' the log-probability nan"),
    "tokens that are strings": (_set("choices.0.logprobs.content", ["Sur", "gery"]),
                                "has logprobs.content that is not a list of token objects"),
    "a token's text not a string": (_set("choices.0.logprobs.content.0.token", 7), "has a token whose text is not"),
    "top_logprobs an object": (_set("choices.0.logprobs.content.0.top_logprobs", {"Sur": -0.5}),
                               "has top_logprobs that is not a list of token objects"),
    "content not text": (_set("choices.0.message.content", ["Surgery"]), "has content that is not text"),
    "usage not counts": (_set("usage.prompt_tokens", "ten"), 'reports usage that is not token counts: {"usage": '
                                                             '{"prompt_tokens": "ten"'),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_answer_ends_the_round_naming_it_and_keeps_the_answers_in_flight(serve, tmp_path, case):
    """Row 1's answer is malformed and comes at once; row 0's, sound, is still on its way: it is awaited and
    cached (it is paid for), nothing more is sent, and the round ends with an ExpertError naming row 1's
    answer, as for any other garbage (no TypeError, OverflowError or ValueError traceback)."""
    change, message = MALFORMED[case]

    def reply(body):
        if row_of(body) == 1:
            return malformed(change)
        time.sleep(0.3)
        return completion("Dental")

    server = serve(reply)
    with pytest.raises(ExpertError) as failed:
        expert_for(server, tmp_path, concurrency=2).label([0, 1, 2, 3])
    text = str(failed.value)
    assert f"row 1: the endpoint's answer {message}" in text and ('"choices"' in text or "usage" in case), text
    assert "1 of the round's 4 answers are cached" in text and len(text.splitlines()) == 1
    assert len(server.requests) == 2 and len(ResponseCache(tmp_path)) == 1  # row 0's answer is kept
    server.reply = lambda body: completion("Surgery")
    answer = expert_for(server, tmp_path).label([0, 1, 2, 3])
    assert (answer.cost.cache_hits, answer.cost.calls) == (1, 3) and answer.labels.tolist() == [0, 2, 2, 2]


def test_an_answer_that_breaks_the_reading_in_a_way_no_check_foresaw_is_still_an_expert_error(monkeypatch):
    def overflow(top, label_names):
        raise OverflowError("math range error")

    monkeypatch.setattr("trainables.experts.endpoint.first_token_probs", overflow)
    with pytest.raises(ExpertError, match=r"the endpoint's answer cannot be read \(OverflowError: math range error\): "
                                          r'\{"choices"'):
        answer_probs(completion("Surgery", [("Sur", -0.5)]), LABELS)


def test_at_most_concurrency_requests_are_in_flight(serve, tmp_path):
    def slow(body):
        time.sleep(0.15)
        return completion("Dental")

    server = serve(slow)
    answer = expert_for(server, tmp_path, concurrency=2).label(np.arange(6))
    assert answer.cost.calls == 6 and server.max_in_flight == 2


def test_settings_are_checked():
    with pytest.raises(UsageError, match="http"):
        EndpointSettings("ftp://example.org/v1", "m")
    with pytest.raises(UsageError, match="--expert-model"):
        EndpointSettings("http://127.0.0.1:1/v1", " ")
    with pytest.raises(UsageError, match="concurrency"):
        EndpointSettings("http://127.0.0.1:1/v1", "m", concurrency=0)
    assert EndpointSettings("http://127.0.0.1:1/v1/", "m").chat_url == "http://127.0.0.1:1/v1/chat/completions"


@pytest.mark.parametrize(("url", "message"), [
    ("http://example.org/v1", "plain http would send the key unencrypted to example.org; use https"),
    ("http://10.0.0.7:8080/v1", "plain http would send the key unencrypted to 10.0.0.7; use https"),
    ("https://user:hunter2@example.org/v1", "holds a user name or password"),
    ("https://example.org/v1?api-key=hunter2", "carries 'api-key' in its query string"),
    ("https://example.org/v1?access_token=hunter2", "carries 'access_token' in its query string"),
    ("https://example.org/v1?api-version=hunter2", "without ?query or #fragment"),
    ("https://x:hunter2/v1@example.org/v1", "is not a URL"),  # a password with a bare '/' in it
    ("127.0.0.1:8080/v1", "must be an http(s) URL"),
])
def test_a_url_that_would_expose_the_key_is_refused_without_showing_a_secret(url, message):
    with pytest.raises(UsageError) as refused:
        EndpointSettings(url, "m")
    assert message in str(refused.value) and "hunter2" not in str(refused.value)
    if "in its query string" in message or "password" in message:
        assert "environment variable OPENAI_API_KEY" in str(refused.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/v1", "http://127.9.9.9/v1", "http://localhost:8080/v1",
                                 "http://[::1]:8080/v1", "https://example.org/v1", "https://example.org:8443/v1/"])
def test_https_anywhere_and_plain_http_to_this_machine_are_taken(url):
    assert EndpointSettings(url, "m").url == url


def test_answer_skips_leading_whitespace_tokens():
    response = completion("Dental", [(" ", -0.01)])
    response["choices"][0]["logprobs"]["content"].append(
        {"token": "Dent", "logprob": np.log(0.5), "top_logprobs": [{"token": "Dent", "logprob": np.log(0.5)},
                                                                   {"token": "Med", "logprob": np.log(0.5)}]})
    np.testing.assert_allclose(answer_probs(response, LABELS), [0.5, 0.5, 0.0])


def test_the_alternatives_are_read_where_the_answer_names_its_label():
    def token(text, top):
        return {"token": text, "logprob": top[0][1], "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}

    response = completion("The subject is Surgery.")
    response["choices"][0]["logprobs"] = {"content": [
        token("The", [("The", np.log(0.9)), ("Dental", np.log(0.05))]), token(" subject", [(" subject", 0.0)]),
        token(" is", [(" is", 0.0)]), token(" Surgery", [(" Surgery", np.log(0.6)), (" Dental", np.log(0.3))]),
        token(".", [(".", 0.0)])]}
    # At " Surgery": Surgery 0.6, Dental 0.3, Medicine unreached 0.1 (not the first token's Dental-heavy view).
    np.testing.assert_allclose(answer_probs(response, LABELS), [0.3, 0.1, 0.6])
    # A text that names no single label: the first token's alternatives (Dental 0.05, the rest 0.05 / 2 each).
    response["choices"][0]["message"]["content"] = "The subject is Surgery or Dental."
    np.testing.assert_allclose(answer_probs(response, LABELS), [0.5, 0.25, 0.25])
