"""A real two-node Ray cluster on this machine, started like two machines would start it: a head node and
a worker node (`ray start` each, separate processes, separate temp folders), then a kd smoke sweep
driven by `tuning/run.py --address`.

What it proves:
- trials run on both nodes (each report carries the node id);
- no trial reads the driver's disk: each trial process sets EXPERT_LOOP_IN_TRIAL, which makes
  tuning.assets.catalog.cache_dir() raise, and the nodes' EXPERT_LOOP_CACHE points at folders that must still not
  exist afterwards; data, student weights and teacher logits travel through Ray's object store;
- the code travels with the job: on both nodes `tuning`, `trainables` and `search_spaces` are shadowed
  by packages that refuse to import, so a trial works only with the copies `start_ray` ships as
  py_modules (and without `tuning` at all);
- the sweep ends with 0 errored trials, and both nodes are stopped afterwards, also when the test fails
  (only this cluster's processes: found by its unique temp folder, never with `ray stop`).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ray import tune

from tests.conftest import ROOT, SUBPROCESS_WARNINGS
from tests.ray_processes import remove_temp_dir, short_temp_dir, stop_processes, wait_until_gone
from tuning.assets import catalog as assets

RAY = str(Path(sys.executable).with_name("ray"))
SHADOWED = ("tuning", "trainables", "search_spaces")


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_shadow_packages(folder: Path) -> None:
    """Packages named like the project's that fail on import: first on a node's PYTHONPATH, they hide the
    editable install, so only code shipped with the job (py_modules) can be imported by a trial."""
    for name in SHADOWED:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('{name} was imported from the node, not shipped with the job')\n")


def node_ports() -> list[str]:
    """Every port a node would otherwise take from a fixed default (another Ray on this machine may hold it)."""
    agent, agent_grpc, metrics, runtime_env, node_manager, object_manager = free_ports(6)
    return [f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
            f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}"]


def ray_start(args: list[str], env: dict) -> None:
    result = subprocess.run([RAY, "start", *args, "--num-cpus=1", "--object-store-memory=100000000",
                             "--disable-usage-stats", *node_ports()],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"ray start {args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


@pytest.fixture
def cluster(tmp_path):
    """(address, driver env, node caches): a head and a worker node; both stopped at teardown."""
    root = short_temp_dir("rc-")  # socket paths under it must stay short
    shadow = Path(root) / "shadow"
    write_shadow_packages(shadow)
    caches = [Path(root) / "no-cache-head", Path(root) / "no-cache-worker"]
    (port,) = free_ports(1)
    # Token authentication as on a real cluster, with this cluster's own token (never the user's ~/.ray).
    token = Path(root) / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    ray_env = {**os.environ, "RAY_TMPDIR": root, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    ray_env.pop("RAY_AUTH_TOKEN", None)
    ray_env.pop("EXPERT_LOOP_CACHE", None)
    base = {**ray_env, "PYTHONPATH": str(shadow), "TOKENIZERS_PARALLELISM": "false"}
    try:
        ray_start(["--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=false",
                   f"--temp-dir={root}/head"],
                  {**base, "EXPERT_LOOP_CACHE": str(caches[0])})
        ray_start([f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", f"--temp-dir={root}/worker"],
                  {**base, "EXPERT_LOOP_CACHE": str(caches[1])})
        driver_env = {**ray_env, "PYTHONWARNINGS": SUBPROCESS_WARNINGS}
        yield f"127.0.0.1:{port}", driver_env, caches
    finally:
        stopped = stop_processes(root)
        left = wait_until_gone(root, timeout=10)
        remove_temp_dir(root)
        assert not left, f"processes of the test cluster survived: {left}"
        print(f"stopped {len(stopped)} processes of the test cluster")


@pytest.mark.slow
def test_kd_sweep_runs_on_both_nodes_without_the_driver_disk(cluster, tmp_path, session_cache):
    address, env, node_caches = cluster
    storage = tmp_path / "results"
    env["EXPERT_LOOP_CACHE"] = str(session_cache)  # the driver's cache: the driver alone may read it
    result = subprocess.run(
        [sys.executable, str(ROOT / "tuning" / "run.py"), "--method", "kd", "--smoke-test", "--num-samples", "2",
         "--max-concurrent", "2", "--address", address, "--storage-path", str(storage), "--name", "cluster"],
        cwd=tmp_path,  # not the checkout: Ray puts the driver's working folder on the workers' sys.path
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    grid = tune.ResultGrid(tune.ExperimentAnalysis(str(storage / "cluster")))
    assert len(grid) == 2 and grid.num_errors == 0, [str(r.error)[:500] for r in grid if r.error]
    reports = [json.loads(line) for path in (storage / "cluster").glob("*/result.json")
               for line in path.read_text().splitlines() if line.strip()]
    trials = {report["trial_id"] for report in reports}
    assert len(trials) == 2
    assert len({report["node_id"] for report in reports}) == 2, "the trials did not use both nodes"
    for cache in node_caches:
        assert not cache.exists(), f"something on a node created {cache}"


def test_the_driver_cache_refuses_a_trial(monkeypatch, tmp_path):
    """The guard the cluster test relies on: inside a trial (EXPERT_LOOP_IN_TRIAL set by student_trial)
    the driver's cache folder is never opened, not even created."""
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EXPERT_LOOP_IN_TRIAL", "1")
    with pytest.raises(RuntimeError, match="a trial must not read the driver's cache"):
        assets.cache_dir()
    assert not (tmp_path / "cache").exists()
    monkeypatch.delenv("EXPERT_LOOP_IN_TRIAL")
    assert assets.cache_dir() == tmp_path / "cache"
