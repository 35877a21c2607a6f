"""Shared fixtures. Ray starts once per test session (about 4 s) and is always shut down.

Every pytest run imports this file, also one of a single light test file: what pulls in Ray, torch or
transformers is imported inside the fixture that needs it."""

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tuning import cli, run

ROOT = Path(__file__).resolve().parents[1]
# The commands tests run in fresh processes: library chatter stays out of their captured stderr (several tests
# read it line by line), but deprecations and announced changes are shown there, where a failing test prints
# them. In the test process itself they fail the test (pyproject.toml's filterwarnings).
SUBPROCESS_WARNINGS = "ignore,default::DeprecationWarning,default::FutureWarning"
# Teachers fine-tuned in the test process get one thread (prepare(..., teacher_threads=...)): the driver's
# default, every core, thrashes on a shared 2-core machine.
TEACHER_THREADS = 1


def pytest_collection_modifyitems(items):
    """A test that needs Ray (ray_session, or a fixture built on it such as the shared smoke sweep) is slow: it
    runs in `make test`, not in `make test-fast`. Tests that run sweeps in subprocesses carry the mark by hand."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One asset/token/teacher cache for the whole session: tests never touch the user's cache."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["EXPERT_LOOP_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def smollm2_gguf(session_cache) -> Path:
    """The catalogue's SmolLM2 GGUF file in the session's cache (a 93 MB download once per session): the local
    language model of the LLM expert's tests and the model llama.cpp's server serves in the endpoint's."""
    from tuning.assets import catalog  # noqa: PLC0415 (light, but only the slow tests need it)

    return catalog.fetch_llm("smollm2", progress=lambda *a: None)


@pytest.fixture(scope="session")
def smollm2_loaded(smollm2_gguf):
    """(model, tokenizer) of the SmolLM2 file, loaded once for the session (some 15 s each time otherwise)."""
    from trainables.experts.llm import load_gguf  # noqa: PLC0415 (torch, transformers)

    return load_gguf(smollm2_gguf)


@pytest.fixture
def reuse_smollm2(smollm2_loaded, smollm2_gguf, monkeypatch):
    """Experts built during the test (runtime.CachedLocalLLM) get the session's loaded SmolLM2 for its file instead
    of loading it again; any other file still loads for real."""
    import trainables.experts.llm as llm  # noqa: PLC0415

    real = llm.load_gguf
    monkeypatch.setattr(llm, "load_gguf", lambda path: smollm2_loaded if Path(path) == smollm2_gguf else real(path))


@pytest.fixture(scope="session")
def ray_session(session_cache):
    import ray  # noqa: PLC0415 (Ray: see the module's docstring)

    # address="local": always a fresh instance of its own, never a Ray cluster already running here
    # (a user's sweep, or a study in the background).
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="error", log_to_driver=False)
    yield ray
    ray.shutdown()


def smoke_prepared(tmp_path_factory, need_teachers: bool, **settings):
    """prepare() on the smoke data (SMOKE_SETTINGS, changed by `settings`) in a cache of its own; teachers
    fine-tuned on TEACHER_THREADS threads."""
    from tuning.assets.prepare import SMOKE_SETTINGS, DataSettings, prepare  # noqa: PLC0415 (torch, transformers)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPERT_LOOP_CACHE", str(tmp_path_factory.mktemp("cache")))
        return prepare(DataSettings(**{**SMOKE_SETTINGS, **settings}), need_teachers=need_teachers,
                       progress=lambda *a: None, teacher_threads=TEACHER_THREADS)


@pytest.fixture(scope="session")
def random_teachers(tmp_path_factory):
    """The smoke data and tiny student; fixed random logits stand in for two teachers (nothing that uses them
    depends on their quality), so no teacher is fine-tuned."""
    from trainables.prepared import TeacherOutputs  # noqa: PLC0415 (torch, transformers)

    ready = smoke_prepared(tmp_path_factory, need_teachers=False)
    rng = np.random.default_rng(0)
    logits = {split: rng.normal(size=(2, len(ready.encoded[split]), ready.num_labels)).astype(np.float32)
              for split in ("train", "validation", "test")}
    return dataclasses.replace(ready, teachers=TeacherOutputs(("a", "b"), logits, teacher_labels=96))


@pytest.fixture
def fake_ray(monkeypatch):
    """trainables/functions.py without Ray (with tests/fake_tune.py for ray.tune): every report comes from
    node-1. A trial marks its process as a trial's (IN_TRIAL_ENV); the mark goes when the test ends."""
    import trainables.functions as functions  # noqa: PLC0415 (Ray, torch, transformers)

    monkeypatch.setattr(functions, "ray", SimpleNamespace(
        get_runtime_context=lambda: SimpleNamespace(get_node_id=lambda: "node-1")))
    monkeypatch.delenv(functions.IN_TRIAL_ENV, raising=False)
    yield
    os.environ.pop(functions.IN_TRIAL_ENV, None)


@pytest.fixture
def no_ray(monkeypatch):
    """Bad input is refused before Ray starts: starting it (for a sweep or a study) fails the test."""
    def tripwire(*args, **kwargs):
        raise AssertionError("Ray was started for bad input")

    monkeypatch.setattr("tuning.trials.ray_session.start_ray", tripwire)


def exit_and_line(main: Callable, argv: list[str], capsys) -> tuple[int, str]:
    """A command's exit status and the one line it wrote on stderr (more than one, e.g. a traceback, fails)."""
    with pytest.raises(SystemExit) as stopped:
        cli.main_guard(lambda: main(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    return stopped.value.code, err[0]


@pytest.fixture(scope="session")
def tiny_bert_task(tmp_path_factory):
    """The smoke task encoded for the tiny BERT (blueprint, encoded splits, number of labels), built once;
    the blueprint is read-only, so tests that train build their own model from it."""
    from trainables.data import smoke_task_data  # noqa: PLC0415 (these four: torch, transformers)
    from trainables.encode import encode_task  # noqa: PLC0415
    from trainables.models import make_blueprint  # noqa: PLC0415
    from tuning.assets.prepare import resolve_model  # noqa: PLC0415

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPERT_LOOP_CACHE", str(tmp_path_factory.mktemp("cache")))
        data = smoke_task_data(0)
        blueprint = make_blueprint("tiny-bert", resolve_model("tiny-bert", progress=lambda *a: None),
                                   data.task, data.num_labels)
    return blueprint, encode_task(blueprint.tokenizer, data, 32, None), data.num_labels


def run_cli(script: str, *args: str, cache: Path, timeout: float = 300,
            python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run tuning/<script> as a user would, in a fresh process (python_flags: e.g. -X importtime)."""
    env = {**os.environ, "EXPERT_LOOP_CACHE": str(cache), "PYTHONWARNINGS": SUBPROCESS_WARNINGS}
    return subprocess.run([sys.executable, *python_flags, str(ROOT / "tuning" / script), *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="session")
def smoke_mlflow_store(tmp_path_factory) -> Path:
    """The local MLflow store (a folder) the session's smoke sweep logs its trials to."""
    return tmp_path_factory.mktemp("mlruns")


@pytest.fixture(scope="session")
def smoke_sweeps_root(ray_session, tmp_path_factory, smoke_mlflow_store) -> Path:
    """One `--method all` smoke sweep for the whole session (about a minute), under <root>/smoke, each
    trial logged to MLflow too; tests that only read it share it instead of sweeping again."""
    root = tmp_path_factory.mktemp("ray_results")
    assert run.main(["--method", "all", "--smoke-test", "--num-samples", "2", "--storage-path", str(root),
                     "--name", "smoke", "--tracker", "mlflow", "--tracking-uri", str(smoke_mlflow_store)]) == 0
    return root
