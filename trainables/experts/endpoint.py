"""Any OpenAI-compatible chat endpoint as the expert (`--expert openai --expert-url URL --expert-model NAME`).

Each row is one chat request (prompts.PromptBuilder's message, temperature 0). When the server returns the
answer tokens' top log-probabilities, those of the token where the answer names its label (or of its first token,
when the text names none) give the soft label (prompts.first_token_probs); when it does not, the answer's text
must name one label, which gets probability 1. An answer that does neither is garbage: an ExpertError, never a
guess; so is an answer of another shape than OpenAI's (a log-probability that is null or above 0, tokens that are
not objects, usage that is not token counts), never a traceback that would lose the answers in flight.

The key is read from an environment variable (OPENAI_API_KEY unless settings say otherwise) when a request is
sent, and goes nowhere but its Authorization header: no message, log or cache file holds it. So the URL is https,
or plain http to this machine only, and holds no user:password@ or query string (url.py); a redirect ends the
request, never followed, so the header goes to that URL alone. Requests that fail for a reason that may pass (no
connection, a timeout, HTTP 429 or 5xx) are tried again after a back-off that doubles (a server's Retry-After,
when given in seconds, is honoured up to the cap); other failures end the round at once. At most `concurrency`
requests are in flight. Every understood answer is cached on disk as it arrives (cache.py), so a round that fails
keeps what it was paid for, and the next run asks only for the rest.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import urljoin

import numpy as np

from trainables.data import Examples
from trainables.errors import ExpertError, UsageError
from trainables.experts.base import Cost, ExpertAnswer, as_rows
from trainables.experts.cache import ResponseCache, cache_key
from trainables.experts.prompts import PromptBuilder, first_token_probs, label_position, parse_answer
from trainables.experts.url import DEFAULT_KEY_ENV, check_endpoint_url, shown

TRANSIENT_HTTP = frozenset({408, 409, 425, 429, 500, 502, 503, 504})  # worth another try after a pause
Progress = Callable[[int, int], None]  # (answers so far, answers needed) after each answer this round


@dataclass(frozen=True)
class Pricing:
    """What one answer costs, in the user's currency: a fixed price per call plus token prices."""

    per_call: float = 0.0
    per_million_prompt_tokens: float = 0.0
    per_million_completion_tokens: float = 0.0

    def __post_init__(self) -> None:
        if min(self.per_call, self.per_million_prompt_tokens, self.per_million_completion_tokens) < 0:
            raise UsageError("expert prices must be >= 0")

    def of(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (self.per_call + prompt_tokens * self.per_million_prompt_tokens / 1e6
                + completion_tokens * self.per_million_completion_tokens / 1e6)


@dataclass(frozen=True)
class EndpointSettings:
    url: str  # the API's base, as OpenAI clients take it: https://api.openai.com/v1, http://127.0.0.1:8080/v1
    model: str
    key_env: str = DEFAULT_KEY_ENV
    timeout: float = 60.0  # seconds per request: a long answer from a busy server, not a hung connection
    retries: int = 4  # further attempts after a transient failure (5 in all)
    backoff: float = 1.0  # seconds before the first retry, doubled before each next one
    max_backoff: float = 30.0
    concurrency: int = 4  # requests in flight at once: what rate limits of small accounts allow
    top_logprobs: int = 20  # OpenAI's maximum; the labels beyond the top share what is left
    max_tokens: int = 16  # enough for a label's name; the first token decides when log-probabilities come
    pricing: Pricing = field(default_factory=Pricing)

    def __post_init__(self) -> None:
        check_endpoint_url(self.url, self.key_env)  # https, or http to loopback; no secret in it (url.py)
        if not self.model.strip():
            raise UsageError("--expert openai needs --expert-model (the model's name on that endpoint)")
        if self.timeout <= 0 or self.backoff < 0 or self.retries < 0 or self.concurrency < 1:
            raise UsageError("expert endpoint: timeout > 0, backoff >= 0, retries >= 0 and concurrency >= 1")

    @property
    def answer_settings(self) -> dict:
        """The request's fields besides the model and the messages. They shape the answer (max_tokens cuts it,
        top_logprobs sets how many alternatives come), so they are part of its cache key: one dict for both."""
        return {"temperature": 0, "max_tokens": self.max_tokens, "logprobs": True, "top_logprobs": self.top_logprobs}

    @property
    def chat_url(self) -> str:
        return self.url.rstrip("/") + "/chat/completions"


class _Transient(Exception):
    """A failure another attempt may get past; `wait` is the server's Retry-After in seconds, if it gave one."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Every redirect ends the request. urllib's own handler follows one with the Authorization header, even to
    another host or from https to plain http, and the answer it finds there would be cached under this URL."""

    def http_error_302(self, req, fp, code, msg, headers):
        fp.close()  # the redirect's body is not read: closed here, not left to the garbage collector
        location = headers.get("Location")
        where = f"to {shown(urljoin(req.full_url, location))}" if location else "without saying where"
        raise ExpertError(f"endpoint {req.full_url} redirected (HTTP {code}) {where}: redirects are not followed, "
                          "so that the key goes nowhere else; give that URL, less /chat/completions, as --expert-url "
                          "if you trust it")

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_RefuseRedirects)  # urllib's defaults (proxies, https) but for redirects


def post_json(url: str, body: dict, key: str | None, timeout: float) -> dict:
    """One POST; the parsed JSON answer. _Transient for what may pass, ExpertError for what will not."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:  # http(s): EndpointSettings checked
            raw = response.read()
    except urllib.error.HTTPError as error:
        if error.code in TRANSIENT_HTTP:
            raise _Transient(f"HTTP {error.code}", _retry_after(error.headers.get("Retry-After"))) from None
        hint = " (is the key in the environment variable right?)" if error.code in (401, 403) else ""
        raise ExpertError(f"endpoint {url} refused the request: HTTP {error.code} {error.reason}{hint}") from None
    except (OSError, http.client.HTTPException) as error:  # no connection, a timeout, a server gone mid-answer
        raise _Transient(str(getattr(error, "reason", None) or error) or type(error).__name__) from None
    try:
        answer = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ExpertError(f"endpoint {url} answered something that is not JSON: {raw[:80]!r}") from None
    if not isinstance(answer, dict):
        raise ExpertError(f"endpoint {url} answered JSON that is not an object: {raw[:80]!r}")
    return answer


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the doubling back-off serves as well


class _Unreadable(Exception):
    """A part of an answer is not of the shape OpenAI's API gives it; the message says which, as the end of
    "the endpoint's answer ..."."""


# What reading a shape no check foresaw raises (a list where an object was due, a huge number): still the answer's
# fault, so still an ExpertError that shows it, never a traceback that loses the round's answers in flight.
UNFORESEEN = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError)
LOGPROB_SLACK = 1e-4  # a log-probability may pass 0 by a server's rounding, no more: it is the log of a probability


def answer_probs(response: dict, label_names) -> np.ndarray:
    """Probabilities over the labels from one chat completion (see the module's docstring). An answer of another
    shape is an ExpertError that says what is wrong and shows the answer's start."""
    try:
        return _answer_probs(response, label_names)
    except _Unreadable as error:
        reason = str(error)
    except UNFORESEEN as error:
        reason = f"cannot be read ({type(error).__name__}: {error})"
    raise ExpertError(f"the endpoint's answer {reason}: {excerpt(response)}")


def excerpt(response, length: int = 160) -> str:
    text = json.dumps(response, ensure_ascii=False)
    return text if len(text) <= length else text[:length] + " ..."


def _answer_probs(response: dict, label_names) -> np.ndarray:
    try:
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise _Unreadable("has no choices[0].message") from None
    if not isinstance(text, str):
        raise _Unreadable("has content that is not text")
    label = parse_answer(text, label_names)
    probs = _from_logprobs(choice.get("logprobs"), label_names, text, label)
    if probs is not None:
        return probs
    if label is None:
        raise ExpertError(f"the endpoint's answer {text[:80]!r} names none of the labels "
                          f"({', '.join(label_names)}) and came without log-probabilities that do")
    return np.eye(len(label_names))[label]


def _from_logprobs(logprobs, label_names, text: str, label: int | None) -> np.ndarray | None:
    """The alternatives at the answer token where the model commits to a label: the token in which the label its
    text names begins ("The subject is Surgery": at " Surgery", where the model weighs the other subjects), or,
    when the text names none, the first token with text (a leading space or quote token is skipped)."""
    tokens = _tokens(logprobs.get("content") if isinstance(logprobs, dict) else None, "logprobs.content")
    if not tokens:
        return None
    at = label_position(text, label_names[label]) if label is not None else None
    chosen = _token_at(tokens, at) if at is not None else None
    if chosen is None:
        chosen = next((t for t in tokens if _has_text(t)), None)
    if chosen is None:
        return None
    top = _tokens(chosen.get("top_logprobs"), "top_logprobs") or [chosen]
    return first_token_probs([(_text(t), _logprob(t)) for t in top], label_names)


def _tokens(tokens, what: str) -> list[dict]:
    """A list of token objects, each with its text as a string; [] for none."""
    if not tokens:
        return []
    if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
        raise _Unreadable(f"has {what} that is not a list of token objects")
    for token in tokens:
        _text(token)
    return tokens


def _text(token: dict) -> str:
    text = token.get("token", "")
    if not isinstance(text, str):
        raise _Unreadable(f"has a token whose text is not a string ({text!r})")
    return text


def _logprob(token: dict) -> float:
    """The token's log-probability: a number, not NaN, at most 0 (-inf, a probability of 0, is one)."""
    value = token.get("logprob")
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value > LOGPROB_SLACK:
        raise _Unreadable(f"gives token {_text(token)!r} the log-probability {value!r}, not a number <= 0")
    return float(value)


def _token_at(tokens: list[dict], offset: int) -> dict | None:
    """The first token with text that ends after character `offset` of the answer (the tokens' texts, in order,
    are the answer): the one in which the text at `offset` begins, past a token of spaces alone."""
    end = 0
    for token in tokens:
        end += len(_text(token))
        if offset < end and _has_text(token):
            return token
    return None


def _has_text(token: dict) -> bool:
    return bool(_text(token).strip(" \t\n\"'*`:"))


def served(response: dict) -> dict:
    """What the server says answered: the model it ran (llama.cpp names the file it loaded, whatever the request's
    model) and OpenAI's system_fingerprint, for the cache's record."""
    return {name: response[name] for name in ("model", "system_fingerprint") if response.get(name) is not None}


def tokens_used(response: dict) -> tuple[int, int]:
    """(prompt, completion) tokens from the answer's usage, 0 for what it leaves out (not every server counts).
    Counts that are not whole numbers >= 0 make the answer garbage: its price would be a guess."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    counts = [usage.get(name) or 0 for name in ("prompt_tokens", "completion_tokens")]
    if not all(isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) and c >= 0
               and float(c).is_integer() for c in counts):
        raise ExpertError(f"the endpoint's answer reports usage that is not token counts: {excerpt({'usage': usage})}")
    return int(counts[0]), int(counts[1])


class EndpointExpert:
    """Labels rows of `examples` by asking an OpenAI-compatible endpoint, through a ResponseCache."""

    name = "openai"
    sunk_gold_labels = 0  # a model made elsewhere: none of this task's gold labels

    def __init__(self, settings: EndpointSettings, examples: Examples, prompts: PromptBuilder, cache: ResponseCache,
                 progress: Progress | None = None) -> None:
        self.settings, self.examples, self.prompts, self.cache = settings, examples, prompts, cache
        self.progress = progress
        self.answered_by: str | None = None  # the model the server names in this run's answers (one_model)

    def messages(self, row: int) -> list[dict]:
        return [{"role": "user", "content": self.prompts.message(self.examples, row)}]

    def key(self, row: int) -> str:
        settings = self.settings
        return cache_key(settings.url, settings.model, self.messages(row), settings.answer_settings)

    def label(self, rows) -> ExpertAnswer:
        rows = as_rows(rows)
        started = time.perf_counter()
        keys = [self.key(int(r)) for r in rows]
        answers = {key: response for key in set(keys) if (response := self.cache.get(key)) is not None}
        missing = {key: int(row) for key, row in zip(keys, rows, strict=True) if key not in answers}
        paid = self._ask_all(missing, answers, len(set(keys)))
        self.one_model(answers[key] for key in keys)
        # Counted per row, as the local model counts: a row whose prompt needed a request is a call (paid.calls,
        # one per missing prompt), every other row a cache hit, read back from disk or answered by the request
        # of an earlier row of the same text in this round. So calls + hits = rows.
        hits = len(rows) - len(missing)
        probs = np.array([answer_probs(answers[key], self.prompts.label_names) for key in keys]).reshape(
            len(rows), len(self.prompts.label_names))
        return ExpertAnswer(probs, paid + Cost(cache_hits=hits, seconds=time.perf_counter() - started))

    def one_model(self, responses) -> None:
        """One model's answers in a run. The cache knows the model by the name it was asked by (--expert-model),
        but a server may ignore that name (llama.cpp answers with the file it loaded): restarted with another model
        under the same name, it would have the cache's answers of the first model mixed with its own. Its answers
        say which model gave them; two names among them end the round with an ExpertError (this round's new
        answers are cached already: they were paid for)."""
        for response in responses:
            model = response.get("model")
            if not isinstance(model, str):
                continue  # a server that does not say
            if self.answered_by is None:
                self.answered_by = model
            elif model != self.answered_by:
                raise ExpertError(
                    f"expert endpoint {self.settings.url} (model {self.settings.model}): answers of two models under "
                    f"one name, {self.answered_by!r} and {model!r} (the server now runs another model than the one "
                    f"whose answers {self.cache.folder} holds?): give the new model another --expert-model name, or "
                    "delete that cache folder")

    def _ask_all(self, missing: dict[str, int], answers: dict[str, dict], needed: int) -> Cost:
        """Ask for every missing answer, at most `concurrency` in flight (a request is sent only when one
        returns); each one understood is cached as it comes. After the first failure nothing more is sent,
        the requests in flight are awaited and their answers kept (they are paid for), and the round ends
        with an ExpertError."""
        cost, failure = Cost(), None
        queue = iter(missing.items())
        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="expert-endpoint") as pool:
            in_flight: dict = {}

            def send_next() -> None:
                if (item := next(queue, None)) is not None:
                    in_flight[pool.submit(self._ask, self.messages(item[1]))] = item[0]

            for _ in range(self.settings.concurrency):
                send_next()
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    key = in_flight.pop(future)
                    try:
                        response, attempts, seconds = future.result()
                        answer_probs(response, self.prompts.label_names)  # garbage is never cached
                        call = self._cost(response, attempts)
                    except (ExpertError, _Transient) as error:
                        failure = failure or f"row {missing[key]}: {error}"
                        continue
                    self.cache.put(key, self.settings.url, self.settings.model, self.messages(missing[key]), response,
                                   {**call.to_dict(), "seconds": seconds},  # each call's cost, on disk beside it
                                   self.settings.answer_settings, served(response))
                    answers[key] = response
                    cost = cost + call  # the round's seconds are its wall time, counted by label()
                    if self.progress:
                        self.progress(len(answers), needed)
                    if failure is None:
                        send_next()
        if failure is not None:
            raise ExpertError(f"expert endpoint {self.settings.url} (model {self.settings.model}): {failure}; "
                              f"{len(answers)} of the round's {needed} answers are cached in {self.cache.folder} "
                              "and will not be asked for again")
        return cost

    def _ask(self, messages: list[dict]) -> tuple[dict, int, float]:
        """One answer, with retries: (response, attempts made, seconds from the first attempt to the answer)."""
        settings, started = self.settings, time.perf_counter()
        body = {"model": settings.model, "messages": messages, **settings.answer_settings}
        delay = settings.backoff
        for attempt in range(1, settings.retries + 2):
            try:
                response = post_json(settings.chat_url, body, os.environ.get(settings.key_env), settings.timeout)
                return response, attempt, time.perf_counter() - started
            except _Transient as failure:
                if attempt > settings.retries:
                    tries = f"{attempt} attempts" if attempt > 1 else "1 attempt"
                    raise _Transient(f"no answer after {tries} (last: {failure})") from None
                time.sleep(min(settings.max_backoff, failure.wait if failure.wait is not None else delay))
                delay *= 2
        raise AssertionError("unreachable")  # the loop returns or raises

    def _cost(self, response: dict, attempts: int) -> Cost:
        prompt, completion = tokens_used(response)
        return Cost(calls=1, prompt_tokens=prompt, completion_tokens=completion, retries=attempts - 1,
                    price=self.settings.pricing.of(prompt, completion))
