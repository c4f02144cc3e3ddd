"""The Hydra callback of every multirun (conf/config.yaml, hydra.callbacks.sweep).

In the launching process: on_multirun_start starts the live monitor (monitor.py);
on_multirun_end stops it, prints the summary (summary.py), writes it to `<sweep dir>/summary.txt`
and ends the process with exit status 1 when a job failed or died (0 when every job ran or was
skipped), so that `make sweep` and scripts can tell. When the launcher itself gives up (joblib does
when a worker process is killed, e.g. by the out-of-memory killer), Hydra never calls
on_multirun_end: the summary is then printed at exit instead, from the outcomes there are.

In each job's process (wherever the launcher runs it): on_job_start writes the job's `started`
outcome; on_job_end writes a `crashed` one if the app raised without writing a final one. Single
runs are left alone; in a job that several Slurm tasks run together, rank 0 alone writes.
"""

from __future__ import annotations

import atexit
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lra_bench.distributed import world_from_env
from lra_bench.sweep.outcome import OUTCOME_NAME, Job, JobOutcome, current_job, read_outcomes
from lra_bench.sweep.summary import outcome_name, summary_text

SUMMARY_NAME = "summary.txt"


def expected_jobs(config: DictConfig) -> int | None:
    """How many jobs the basic sweeper will launch (the product of the sweep overrides'
    lengths); None for other sweepers (Optuna decides as it goes)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    return math.prod(
        len(list(o.sweep_string_iterator())) for o in overrides if o.is_sweep_override()
    )


def record_crash(job: Job, job_return: JobReturn) -> None:
    """A job whose app raised gets the outcome `crashed` with the exception, unless the app
    wrote a final outcome before raising (a run stopped by a signal: `stopped`)."""
    if job_return.status != JobStatus.FAILED:
        return
    path = job.folder / OUTCOME_NAME
    if path.exists() and JobOutcome.read(path).finished:
        return
    error = job_return._return_value  # the exception; `return_value` would raise it
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    job.fail("crashed", text)


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.monitor = None
        self.started = time.time()
        self.sweep_dir: Path | None = None

    # --- the launching process -------------------------------------------------------------------

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from lra_bench.sweep.monitor import SweepMonitor

        self.started = time.time()
        launcher = str(config.hydra.launcher.get("_target_", ""))
        self.monitor = SweepMonitor(
            Path(str(config.hydra.sweep.dir)),
            expected=expected_jobs(config),
            relay_logs="submitit" in launcher,
        )
        self.monitor.start()
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        atexit.register(self._summarise_unfinished)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.unregister(self._summarise_unfinished)
        if self.summarise(Path(str(config.hydra.sweep.dir))):
            sys.exit(1)

    def summarise(self, sweep_dir: Path) -> bool:
        """Stops the monitor, prints and writes the summary; True when a job failed or died."""
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor = None
        outcomes = read_outcomes(sweep_dir)
        text = summary_text(outcomes, time.time() - self.started)
        print(text, flush=True)
        if sweep_dir.is_dir():
            (sweep_dir / SUMMARY_NAME).write_text(text + "\n")
            print(f"summary: {sweep_dir / SUMMARY_NAME}", flush=True)
        return any(outcome_name(o) in ("failed", "died") for o in outcomes)

    def _summarise_unfinished(self) -> None:
        print("the sweep ended early (see the error above); what its jobs did:", file=sys.stderr)
        self.summarise(self.sweep_dir)

    # --- each job's process ------------------------------------------------------------------------

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        job = current_job()
        if job is not None and world_from_env().is_main:  # rank 0 of a multi-task job
            job.started().write(job.folder)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        job = current_job()
        if job is not None and world_from_env().is_main:
            record_crash(job, job_return)

    def __getstate__(self) -> dict:
        """Launchers pickle the callbacks into their jobs: the monitor thread stays here."""
        return {"started": self.started, "monitor": None, "sweep_dir": self.sweep_dir}
