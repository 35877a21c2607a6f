"""A local Ray instance's own services (GCS, raylet, workers) listen on every interface: Ray 2.60 has no setting
that binds them to loopback (its dashboard, off here unless asked for, would listen on 127.0.0.1). What keeps
other machines out is Ray's token authentication, on by default: checked on the session's instance, started as
start_ray starts one (address="local", no dashboard), by a process that calls its GCS without the token, with a
wrong one, and, so that the test tells refusal from failure, with this machine's own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import sys
from ray._raylet import GcsClient
client = GcsClient(address=sys.argv[1], cluster_id=sys.argv[2])
try:
    client.internal_kv_get(b"any key", None, timeout=10)
    print("answered")
except Exception as error:
    print("refused:", type(error).__name__, error)
"""


def gcs_answers(ray_session, env: dict) -> str:
    address = ray_session.get_runtime_context().gcs_address
    cluster_id = ray_session._private.worker.global_worker.node.cluster_id.hex()
    done = subprocess.run([sys.executable, "-c", PROBE, address, cluster_id], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.parametrize("token", ["none", "wrong"])
def test_the_local_ray_instance_answers_only_calls_with_its_token(ray_session, token, tmp_path):
    assert gcs_answers(ray_session, dict(os.environ)) == "answered"  # this machine's token (~/.ray/auth_token)
    stranger = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    stranger["HOME"] = str(tmp_path)  # no ~/.ray/auth_token there
    if token == "wrong":
        stranger.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
    said = gcs_answers(ray_session, stranger)
    assert said.startswith("refused: AuthenticationError") and "InvalidAuthToken" in said, said
