"""A job of a joblib sweep, in the loky worker process that runs it.

joblib runs `hydra.launcher.n_jobs` jobs at once on one machine, each in a worker process of
its loky pool. Before the run, `prepare_joblib_job` sets that process up:

- torch threads: cores / n_jobs (at least one), so that the jobs do not fight over the cores.
  Other launchers leave torch's default (every core), which is right for one job per machine
  (basic, Slurm);
- the multiprocessing start method: loky makes its own ('loky') the worker's global one, which
  a process that the run spawns cannot find (it exits at start-up, `multiprocessing.Pool`
  replaces it, and the pool waits forever). The data generators spawn pools, so the worker goes
  back to the platform's default.
"""

from __future__ import annotations

import multiprocessing
import os

import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under Slurm or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def concurrent_jobs(n_jobs: int, cores: int) -> int:
    """joblib's meaning of n_jobs: N jobs, or for N < 0, cores + 1 + N (-1 = one per core)."""
    return max(1, n_jobs if n_jobs > 0 else cores + 1 + n_jobs)


def job_threads(n_jobs: int, cores: int) -> int:
    """Torch threads of each of the concurrent jobs: an equal share of the cores."""
    return max(1, cores // concurrent_jobs(n_jobs, cores))


def restore_default_start_method() -> None:
    """The platform's default start method, in place of one only loky's workers know."""
    if multiprocessing.get_start_method(allow_none=True) not in (
        None,
        "fork",
        "spawn",
        "forkserver",
    ):
        multiprocessing.set_start_method(None, force=True)


def prepare_joblib_job() -> int | None:
    """Sets up this process for a job of a joblib sweep; returns its torch threads (None: this
    is not a joblib job, nothing was changed)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    launcher = HydraConfig.get().launcher
    if "JoblibLauncher" not in str(launcher.get("_target_", "")):
        return None
    restore_default_start_method()
    threads = job_threads(int(launcher.n_jobs), usable_cores())
    torch.set_num_threads(threads)
    return threads
