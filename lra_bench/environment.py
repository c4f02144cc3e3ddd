"""Facts about where a run happens: seeding, device, versions, git state, peak memory, memory
limits. The training runner and the speed protocol both take them from here."""

from __future__ import annotations

import os
import platform
import random
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from lra_bench import REPO_ROOT

GIGABYTE = 1e9


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} was asked for, but torch sees no CUDA device")
    return device


# The harness's own outputs: runs rewrite the leaderboards and records committed there, so a
# change under it says nothing about the code that ran.
OUTPUTS = "results"


def git_state(root: Path = REPO_ROOT) -> dict:
    """{'commit': sha or None, 'dirty': bool or None} of the repository at `root` (the one
    holding this code); dirty: a tracked file differs from the commit outside results/ (a run
    that writes into the repository's results/ leaves its successors clean)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){OUTPUTS}")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> dict:
    """What a run record or a speed row says about where it ran."""
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "pid": os.getpid(),
    }
    return info


def _status_kib(field: str) -> int:
    """A `kB` field of /proc/self/status (Linux)."""
    with open("/proc/self/status") as handle:
        match = re.search(rf"^{field}:\s+(\d+) kB", handle.read(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {field}")
    return int(match.group(1))


class PeakMemory:
    """Peak memory of this process from `reset()` on (`absolute=True`: including what the
    process held at reset, i.e. its whole footprint; the speed protocol counts only the growth).

    CUDA: the caching allocator's peak of allocated bytes (tensors; not the CUDA context).
    CPU (Linux): the resident-set high-water mark above the resident set at reset; writing "5"
    to /proc/self/clear_refs sets the mark (VmHWM) back to the current RSS. Where that fails the
    un-resettable ru_maxrss is used, which is right only when the measurement's peak exceeds the
    start-up peak; `method` says which one was used.
    """

    def __init__(self, device: torch.device, absolute: bool = False) -> None:
        self.device = device
        self.absolute = absolute
        self.baseline = 0
        self.method = "cuda allocator peak" if device.type == "cuda" else ""

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self.baseline = _status_kib("VmRSS") * 1024
            self.method = "VmHWM - VmRSS at reset"
        except OSError:
            self.baseline = _status_kib("VmRSS") * 1024 if sys.platform == "linux" else 0
            self.method = "ru_maxrss - RSS at start (not resettable)"

    def peak_bytes(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        baseline = 0 if self.absolute else self.baseline
        if self.method.startswith("VmHWM"):
            return _status_kib("VmHWM") * 1024 - baseline
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024 - baseline


def apply_memory_limit(device: torch.device, gigabytes: float) -> str:
    """Caps what this process may allocate from now on at `gigabytes` more; returns how.

    CUDA: the allocator's per-process fraction of the device. CPU: RLIMIT_DATA (private writable
    memory: heap and anonymous mappings) at its current size plus the cap, so that an
    allocation past it fails with an out-of-memory error instead of swapping or being killed.
    """
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, gigabytes * GIGABYTE / total), device)
        return f"cuda memory fraction {min(1.0, gigabytes * GIGABYTE / total):.4f}"
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = _status_kib("VmData") * 1024 + int(gigabytes * GIGABYTE)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return f"RLIMIT_DATA {limit} bytes"


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA OOM, Python's MemoryError, or torch's CPU allocator failing (a RuntimeError)."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        phrase in text for phrase in ("can't allocate memory", "not enough memory", "out of memory")
    )
