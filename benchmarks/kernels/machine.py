"""The header of a kernels benchmark: what machine, software and code the numbers come from."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import re
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lra_bench.environment import cpu_name, git_state  # noqa: E402


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe(device: torch.device) -> dict:
    """Device, CPU, threads, versions, git commit and dirty flag, date, load average."""
    git = git_state()
    header = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": _version("triton"),
        "python": sys.version.split()[0],
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if hasattr(os, "getloadavg"):
        header["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    return header


def default_tag(device: torch.device) -> str:
    """The results folder's name: e.g. 'cpu-2core' or 'nvidia-h200'."""
    if device.type == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cpu-{os.cpu_count()}core"
