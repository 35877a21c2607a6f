"""What the project uses of its libraries beyond their public APIs, each kept in one place, with the reason
beside it, and behind a version pin in pyproject.toml that names it (issue 21, point 4). When an upgrade
removes one, its test here fails with the name, the installed version and the pin, instead of the project
going quietly wrong (a progress table back in every sweep's output, an epoch logged twice after a resume,
every CPU taken for one without native bfloat16)."""

from __future__ import annotations

import inspect
import os
import tomllib
import typing
import warnings
from importlib.metadata import version
from types import SimpleNamespace

import pytest
import torch
from ray.tune.experiment import Trial

from tests.conftest import ROOT
from trainables import precision
from tuning.trials import tuner
from tuning.trials.replayed_reports import restored_iteration


def pin(package: str) -> str:
    """The requirement pyproject.toml declares for `package`, e.g. 'ray[tune]>=2.60,<2.61'."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(requirement for requirement in dependencies if requirement.startswith(package))


def gone(what: str, user: str, package: str) -> str:
    return (f"{what} is gone from {package} {version(package)}: {user} relies on it. pyproject.toml pins "
            f"{pin(package)!r}, the versions it was tested with; find its replacement before widening the pin.")


def test_the_pins_name_the_minor_versions_tested():
    """Narrow on purpose: a new minor version of Ray or torch may drop what the tests below check."""
    assert pin("ray") == "ray[tune]>=2.60,<2.61"
    assert pin("torch") == "torch>=2.13,<2.14"


def test_tune_still_switches_its_reporter_by_RAY_AIR_NEW_OUTPUT(monkeypatch):
    """tuning/trials/tuner.py: library_output keeps Tune's newer reporter (its experiment table, printed even
    at verbose=0) off unless --verbose. Tuner.fit asks get_air_verbosity which reporter to use: None is the
    older one, silent at verbose=0."""
    monkeypatch.delenv(tuner.NEW_OUTPUT, raising=False)
    try:
        from ray.tune.experimental.output import get_air_verbosity  # noqa: PLC0415 (its absence is the failure)
    except ImportError:
        pytest.fail(gone("ray.tune.experimental.output.get_air_verbosity (reads RAY_AIR_NEW_OUTPUT)",
                         "tuning/trials/tuner.py library_output", "ray"))
    with tuner.library_output(verbose=False):
        assert os.environ[tuner.NEW_OUTPUT] == "0"
        assert get_air_verbosity(0) is None, gone("the RAY_AIR_NEW_OUTPUT=0 switch", "tuning/trials/tuner.py", "ray")
    with tuner.library_output(verbose=True):
        assert get_air_verbosity(0) is not None, gone("the RAY_AIR_NEW_OUTPUT=1 switch", "tuning/trials/tuner.py",
                                                      "ray")
    assert tuner.NEW_OUTPUT not in os.environ  # put back as it was


@pytest.mark.parametrize(("attribute", "user"), [
    ("latest_checkpoint_result", "tuning/trials/replayed_reports.py restored_iteration"),
    ("path", "tuning/trials/replayed_reports.py"),
    ("local_path", "tuning/trials/replayed_reports.py"),
    ("checkpoint", "tuning/tracking/mlflow_logger.py log_trial_end"),
])
def test_tune_trials_still_have_the_properties_the_callbacks_read(attribute, user):
    """Tune hands callbacks its Trial, a DeveloperAPI ("may change across minor Ray releases")."""
    assert isinstance(getattr(Trial, attribute, None), property), gone(f"Trial.{attribute}", user, "ray")


def test_a_trials_checkpoint_result_still_carries_the_metrics_it_was_saved_with():
    """restored_iteration reads latest_checkpoint_result.metrics["training_iteration"]: no public API names
    the report a trial's checkpoint came with, and Ray's type for it is private (_TrainingResult)."""
    returned = typing.get_type_hints(Trial.latest_checkpoint_result.fget)["return"]
    kinds = [kind for kind in typing.get_args(returned) if kind is not type(None)] or [returned]
    assert len(kinds) == 1 and "metrics" in inspect.signature(kinds[0]).parameters, gone(
        "the metrics of Trial.latest_checkpoint_result", "tuning/trials/replayed_reports.py", "ray")
    result = kinds[0](checkpoint=None, metrics={"training_iteration": 3, "epoch": 3})
    assert restored_iteration(SimpleNamespace(latest_checkpoint_result=result)) == 3


def test_a_stub_trial_still_has_its_id_config_and_status():
    """ProgressLines and the sweep's progress lines read these of every trial."""
    trial = Trial("stand_in", config={"method": "kd"}, stub=True)
    assert trial.config == {"method": "kd"} and trial.status == Trial.PENDING and str(trial).endswith(trial.trial_id)


def test_torch_still_says_whether_onednn_computes_bfloat16_natively():
    """trainables/precision.py native_bf16: torch.ops.mkldnn._is_mkldnn_bf16_supported is private, and the
    public torch.cpu.get_capabilities() reports the CPU, not what oneDNN will use (ONEDNN_MAX_CPU_ISA=AVX2
    makes the first False and leaves the second True). precision.py falls back to float32 without it, which
    would make every CPU look like one without bfloat16."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    assert check is not None, gone("torch.ops.mkldnn._is_mkldnn_bf16_supported", "trainables/precision.py", "torch")
    assert isinstance(check(), bool) and precision.native_bf16() is check()


@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning])
def test_a_deprecation_raised_during_a_test_fails_it(category):
    """pyproject.toml's filterwarnings: what a library announces about a call the project makes is an error
    here, not a line in a summary nobody reads (it used to be ignored outright)."""
    with pytest.raises(category, match="announced"):
        warnings.warn("announced", category, stacklevel=1)
