"""The URL an endpoint expert is given (`--expert-url`), checked the same way wherever it is read.

The key goes in each request's Authorization header (endpoint.py), so the URL must not expose it:
  - plain http only to this machine (localhost, 127.0.0.0/8, ::1), where the request never crosses a network;
    anywhere else https, or the key travels readable by anyone on the way;
  - no user:password@ and no query string: the URL is written wherever the run is recorded (run_config.json,
    MLflow, the answer cache's records) and shown in error messages, so a secret in it would be too. The key is
    read from an environment variable instead (OPENAI_API_KEY). A query string that holds no secret is refused
    as well: requests go to URL + "/chat/completions", which would land inside it.
A refused URL is never shown whole in the message (`shown`): the secret it holds would be printed.

Standard library only: trainables/config.py checks the URL with this before Ray starts or torch loads.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit

from trainables.errors import UsageError

DEFAULT_KEY_ENV = "OPENAI_API_KEY"  # what OpenAI's own clients read; a local server needs no key
EXAMPLE = "https://api.openai.com/v1"
# Query parameter names that carry a credential: api-key, api_key, key, access_token, token, secret, password, auth,
# sig (Azure's signed URLs), ...
SECRET_NAME = re.compile(r"key|token|secret|passw|auth|credential|sig", re.IGNORECASE)


def check_endpoint_url(url: str, key_env: str = DEFAULT_KEY_ENV) -> None:
    """A UsageError, one line, when `url` is not an http(s) base URL that keeps the key safe (see the module)."""
    if any(c.isspace() or not c.isprintable() for c in url):
        raise UsageError(f"--expert-url {shown(url)} contains spaces or control characters")
    try:
        parsed = urlsplit(url)
        host = parsed.hostname
        parsed.port  # noqa: B018 (a port that is no number raises only when read)
    except ValueError:  # its text may quote a piece of a password ("Port could not be cast ... 'pw'")
        raise UsageError(f"--expert-url {shown(url)} is not a URL (its port or [IPv6 address] is unreadable)") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise UsageError(f"--expert-url must be an http(s) URL such as {EXAMPLE}, got {shown(url)}")
    if "@" in parsed.netloc:
        raise UsageError(f"--expert-url {shown(url)} holds a user name or password: it would be written to "
                         f"run_config.json, MLflow and the answer cache; give the key in the environment "
                         f"variable {key_env} instead")
    secrets = [name for name, _ in parse_qsl(parsed.query, keep_blank_values=True) if SECRET_NAME.search(name)]
    if secrets:
        raise UsageError(f"--expert-url {shown(url)} carries {secrets[0]!r} in its query string: it would be written "
                         f"to run_config.json, MLflow and the answer cache; give the key in the environment "
                         f"variable {key_env} instead")
    if parsed.query or parsed.fragment:
        raise UsageError(f"--expert-url {shown(url)}: give the API's base URL without ?query or #fragment "
                         "(requests go to URL/chat/completions)")
    if parsed.scheme == "http" and not is_loopback(host):
        raise UsageError(f"--expert-url {shown(url)}: plain http would send the key unencrypted to {host}; use "
                         "https (http is taken only to this machine: localhost, 127.0.0.0/8, ::1)")


def is_loopback(host: str) -> bool:
    """localhost or an address of 127.0.0.0/8 or ::1: a request there stays on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False


def shown(url: str) -> str:
    """The URL as a message may print it: what stands before an '@' and the query string left out (either may
    hold a secret)."""
    cut = re.search(r"[?#]", url)
    base = url[:cut.start()] if cut else url
    base = re.sub(r"^([a-z][a-z0-9+.-]*://)?.*@", r"\1...@", base, flags=re.IGNORECASE)
    return repr(base + ("?..." if cut else ""))
