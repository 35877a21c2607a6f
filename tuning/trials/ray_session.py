"""One command's use of Ray, for the sweep and the study alike: connect to a cluster or start a local
instance when first needed (by the teachers' tasks or by the Tuner), and shut it down at the end when this
command started it. Ray is imported only when it starts, so the settings serve the command line's checks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RaySettings:
    """How a command reaches Ray (--address, --dashboard, --verbose)."""

    address: str | None = None  # an existing cluster: auto or HOST:6379; None: a new local instance
    dashboard: bool = False  # Ray's dashboard, on 127.0.0.1 only
    verbose: bool = False  # Ray's own informational output in the terminal


class RaySession:
    """Started (or joined) by `start`, from wherever Ray is first needed; `with session:` ends it. Ray is
    shut down only when this session started it: a Ray the caller had running (a test's, a notebook's)
    stays up."""

    def __init__(self, settings: RaySettings):
        self.settings = settings
        self.started_here = False

    def start(self) -> None:
        import ray  # noqa: PLC0415 (slow import: only when Ray is needed)

        if not ray.is_initialized():
            self.started_here = True
        start_ray(self.settings.address, self.settings.dashboard, verbose=self.settings.verbose)

    def __enter__(self) -> RaySession:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.started_here:
            import ray  # noqa: PLC0415 (as in start)

            ray.shutdown()
            self.started_here = False


def start_ray(address: str | None, dashboard: bool, num_cpus: int | None = None, verbose: bool = False) -> None:
    """Connect to a cluster (`address`) or start a local instance on this machine's CPUs.
    The dashboard stays off unless asked for, and then listens on loopback only. Unless `verbose`, the
    trials' processes keep Ray's informational logs to themselves (quiet_worker_logs)."""
    import ray  # noqa: PLC0415 (as in RaySession.start)

    if ray.is_initialized():
        return
    # One checkpoint per epoch is the design; Ray's warning about frequent snapshots is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    project_root = str(Path(__file__).resolve().parents[2])
    runtime_env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}
    if not address:  # one machine: its 'auto' precision decided here once, for every worker (a cluster's nodes differ)
        from trainables import precision  # noqa: PLC0415 (torch: once a session starts)

        runtime_env["env_vars"].update(precision.decided_env())
    if not verbose:
        runtime_env["worker_process_setup_hook"] = quiet_worker_logs(QUIET_LOGGERS)
    if address:
        # Code travels with the job, so cluster nodes need only the dependencies, not this checkout.
        runtime_env["py_modules"] = [os.path.join(project_root, p) for p in ("trainables", "search_spaces")]
    ray.init(address=address or "local", num_cpus=None if address else num_cpus,
             include_dashboard=dashboard, dashboard_host="127.0.0.1",
             runtime_env=runtime_env, log_to_driver=True, configure_logging=True, logging_level="warning")


# Loggers whose INFO lines reach the terminal from every trial process: ray.train logs "Checkpoint
# successfully created at: ..." once per report (ray/train/_internal/storage.py).
QUIET_LOGGERS = ("ray.train", "ray.tune")


def quiet_worker_logs(names: tuple[str, ...]):
    """A worker_process_setup_hook that lifts these loggers to WARNING in each Ray worker process. Ray ships
    the hook to the workers by value (a closure), so a cluster node needs no copy of tuning/."""
    def setup() -> None:
        import logging  # noqa: PLC0415 (inside the hook Ray ships by value to every worker)

        for name in names:
            logging.getLogger(name).setLevel(logging.WARNING)

    return setup
