"""Torch threads of a job that shares the machine with other jobs of its sweep.

joblib runs `hydra.launcher.n_jobs` jobs at once on one machine: each gets cores / n_jobs torch
threads (at least one), so that they do not fight over the cores. Other launchers leave torch's
default (every core), which is right for one job per machine (basic, Slurm)."""

from __future__ import annotations

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


def set_job_threads() -> int | None:
    """Sets torch's threads for a job of a joblib sweep; returns them (None: not one)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    launcher = HydraConfig.get().launcher
    if "JoblibLauncher" not in str(launcher.get("_target_", "")):
        return None
    cores = usable_cores()
    threads = max(1, cores // concurrent_jobs(int(launcher.n_jobs), cores))
    torch.set_num_threads(threads)
    return threads
