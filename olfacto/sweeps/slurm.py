"""SLURM job arrays without a scheduler process: a sweep's parts as one submitit array.

``olfacto sweep … --executor slurm --array N`` submits N tasks, task i running part i of N
(``--part``) of the sweep into the same store; re-submitting runs only the missing points
(finished points are verified and skipped). ``--executor local`` runs the same array as local
processes (submitit's local executor), which is how it is tested.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ConfigError


def check_options(executor: str, n_tasks: int, time_min: int, gpus: int) -> None:
    """Refuse, before any work or output, what the array cannot run: no SLURM for ``slurm`` (submitit
    would fall back to local processes and still report SLURM tasks), no tasks, no time, negative GPUs."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("submitit") is None:  # looked up, not imported (that is left to the submission)
        raise ConfigError("--executor: needs submitit (pip install 'olfacto[slurm]')")
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--executor slurm: SLURM is not available here (no sbatch on PATH); run on a SLURM "
                          "login node, or use --executor local (the same array as local processes)")
    if n_tasks < 1:
        raise ConfigError(f"--array {n_tasks}: allowed: an integer ≥ 1 (tasks of the job array)")
    if time_min < 1:
        raise ConfigError(f"--time {time_min}: allowed: an integer ≥ 1 (minutes per task)")
    if gpus < 0:
        raise ConfigError(f"--gpus {gpus}: allowed: an integer ≥ 0")


def _part_job(base: dict[str, Any], grid: dict[str, list[Any]], out: str, part: tuple[int, int],
               batch_size: int | None, cache: str | None) -> int:
    """One array task: the ``part``-th part of the sweep into the shared store; returns points done there."""
    from ..engine import runtime
    from .runner import run_sweep

    runtime.cpu_scheduler_workaround()
    runtime.compilation_cache(cache)
    ds = run_sweep(base, grid, out, part=part, batch_size=batch_size, progress=False, log=print)
    return int(ds.done.sum())


def submit_array(base: dict[str, Any], grid: dict[str, list[Any]], out: Path, n_tasks: int, executor: str = "slurm",
                 partition: str | None = None, time_min: int = 60, gpus: int = 0, batch_size: int | None = None,
                 cache: str | None = None, wait: bool = False, log=print) -> list[Any]:
    """Submit the sweep as a job array of ``n_tasks`` ``--part`` parts with submitit (``executor``:
    ``slurm``, or ``local`` to run the same array as local processes). Returns the jobs; with ``wait``,
    waits for them (a failed task is a one-line error naming its log)."""
    check_options(executor, n_tasks, time_min, gpus)
    import submitit

    # %j is the job id in submitit's SLURM paths; the local executor would make a folder literally named %j
    folder = out / "slurm" / ("%j" if executor == "slurm" else "local")
    ex = submitit.AutoExecutor(folder=folder, cluster=executor)
    params: dict[str, Any] = {"timeout_min": time_min, "slurm_array_parallelism": n_tasks}
    if executor == "slurm":
        if partition:
            params["slurm_partition"] = partition
        if gpus:
            params["gpus_per_node"] = gpus
    ex.update_parameters(**params)
    args = [(base, grid, str(out), (i, n_tasks), batch_size, cache) for i in range(n_tasks)]
    jobs = ex.map_array(_part_job, *zip(*args))
    log(f"submitted {len(jobs)} {executor} task(s): {jobs[0].job_id.split('_')[0] if jobs else ''} "
        f"(logs in {out / 'slurm'}); progress: olfacto sweep --status {out}")
    if wait:
        for job in jobs:
            try:
                job.result()
            except Exception as exc:  # noqa: BLE001 - submitit wraps the task's failure
                first = str(exc).strip().splitlines()
                raise ConfigError(f"task {job.job_id} failed: {first[-1] if first else exc} "
                                  f"(log: {job.paths.stderr})") from None
    return jobs
