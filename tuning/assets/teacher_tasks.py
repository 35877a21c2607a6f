"""Teachers fine-tuned as Ray tasks: one task per teacher with a trial's CPUs, so teachers train side by
side on one machine and on separate nodes of a cluster, and the driver needs no big CPU. Each task gets
its teacher's blueprint and tokenized data through the object store and returns the fine-tuned model and
its logits the same way; the driver writes the cache (trainables/teachers.py: same keys, atomic writes,
a lock per entry)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from trainables.teachers import Runner, TeacherJob, fine_tune_and_predict, flushed_print


def ray_runner(cpus: int, start_ray: Callable[[], None]) -> Runner:
    """A Runner that starts (or joins) Ray through `start_ray` only when a teacher must be fine-tuned
    (a warm cache starts nothing), then runs one task of `cpus` CPUs per teacher."""
    def run(jobs: list[TeacherJob], progress: Callable = print) -> list[tuple[object, dict]]:
        import ray  # noqa: PLC0415 (slow import: only when there is work)
        from ray.experimental import tqdm_ray  # noqa: PLC0415

        start_ray()
        # The function lives in trainables/, which travels with a cluster job (tuning.trials.ray_session).
        task = ray.remote(num_cpus=cpus, max_retries=0)(fine_tune_and_predict)
        progress(f"teachers: {len(jobs)} Ray task(s) of {cpus} CPU(s) each, {_cluster_cpus(ray)} CPU(s) in Ray")
        # num_threads is the task's own CPUs; the cache key keeps the settings the driver was given.
        refs = [task.remote(replace(job, settings=replace(job.settings, num_threads=cpus)), flushed_print,
                            tqdm_ray.tqdm) for job in jobs]
        return ray.get(refs)

    return run


def _cluster_cpus(ray) -> int:
    return int(ray.cluster_resources().get("CPU", 0))
