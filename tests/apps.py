"""Running the Hydra app as a user does, in a subprocess: `python -m lra_bench.run ...`, alone,
under torchrun, or as a multirun with a launcher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def app_env(**extra: str) -> dict:
    """The environment of an app process: this checkout first on the path, one torch thread
    (tiny shapes; several processes share the machine), no colour codes in Optuna's log."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def app_command(*overrides: str, torchrun: int = 0) -> list[str]:
    """The command line of the app (under torchrun with that many processes, when not 0)."""
    if torchrun:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={torchrun}"]
        return [sys.executable, *launcher, "-m", "lra_bench.run", *overrides]
    return [sys.executable, "-m", "lra_bench.run", *overrides]


def run_app(*overrides: str, torchrun: int = 0, timeout: float = 600, **env: str):
    """The finished process (stdout and stderr together in `.stdout`)."""
    return subprocess.run(
        app_command(*overrides, torchrun=torchrun),
        cwd=REPO,
        env=app_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def smoke_args(results: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        "profile=smoke",
        f"results_dir={results}",
        f"data_root={data_root}",
        "progress=false",
        *extra,
    ]


def sweep_summary(results: Path) -> tuple[Path, str]:
    """The newest sweep folder under a results folder, and its summary."""
    sweeps = sorted((Path(results) / ".hydra" / "multirun").iterdir())
    return sweeps[-1], (sweeps[-1] / "summary.txt").read_text()
