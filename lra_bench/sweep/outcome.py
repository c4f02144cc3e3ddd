"""What one job of a sweep did, in `<job folder>/outcome.json`.

The job's process writes `started` before the run (the callback's on_job_start), then its final
outcome (the Hydra app, or the callback's on_job_end when the app raised):

- `ran`: trained now and ended ok;
- `skipped`: a run that had finished before (status ok), not trained again;
- `failed`: trained now and did not end ok (`status` says failed, diverged or oom), or never
  started training (`status` refused: settings refused, another process running it; `error`
  says which), or the app raised (`status` crashed).

An outcome still `started` after the sweep belongs to a process that died without a word (killed,
e.g. by the kernel's out-of-memory killer); the summary calls it `died`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from tasks.files import replaced_atomically

OUTCOME_NAME = "outcome.json"
FINAL = ("ran", "skipped", "failed")


@dataclass
class JobOutcome:
    job: int
    overrides: list = field(default_factory=list)  # the job's own Hydra overrides
    outcome: str = "started"  # started | ran | skipped | failed
    status: str | None = None  # the record's status, or refused / crashed
    error: str | None = None
    task: str | None = None
    model: str | None = None
    profile: str | None = None
    seed: int | None = None
    variant: str | None = None
    result_set: str | None = None  # the folder whose leaderboard holds the run
    run_dir: str | None = None
    best_val_accuracy: float | None = None
    test_accuracy: float | None = None
    seconds: float | None = None  # this job's wall time (a skipped run's is ~0)
    started_at: float = field(default_factory=time.time)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    submitit_job: str | None = None  # the submitit job id, which names its log folder

    @property
    def finished(self) -> bool:
        return self.outcome in FINAL

    def write(self, job_dir: Path) -> Path:
        path = Path(job_dir) / OUTCOME_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path) as tmp:
            tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2, default=str) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> JobOutcome:
        data = json.loads(Path(path).read_text())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def submitit_job_id() -> str | None:
    """The id submitit gave this job (its log folder's name), when submitit started it."""
    if os.environ.get("SUBMITIT_EXECUTOR") == "local":
        return os.environ.get("SUBMITIT_LOCAL_JOB_ID")
    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        if array:
            return f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
        return os.environ.get("SLURM_JOB_ID")
    return None


def read_outcomes(sweep_dir: Path) -> list[JobOutcome]:
    """Every job's outcome under `sweep_dir`, by job number (unreadable files are skipped: a
    job writes its file atomically, so one only half there was never written by us)."""
    found = []
    for path in Path(sweep_dir).glob(f"*/{OUTCOME_NAME}"):
        try:
            found.append(JobOutcome.read(path))
        except (ValueError, TypeError, OSError):
            continue
    return sorted(found, key=lambda o: o.job)


@dataclass(frozen=True)
class Job:
    """The multirun job this process runs: its number, its own overrides and its folder."""

    number: int
    overrides: list
    folder: Path

    def started(self) -> JobOutcome:
        return JobOutcome(job=self.number, overrides=self.overrides, submitit_job=submitit_job_id())

    def finish(
        self,
        record,
        skipped: bool,
        result_set: Path,
        run_dir: Path,
        started_at: float,
    ) -> JobOutcome:
        """Writes the final outcome of a run that has a record."""
        outcome = JobOutcome(
            job=self.number,
            overrides=self.overrides,
            outcome="skipped" if skipped else ("ran" if record.status == "ok" else "failed"),
            status=record.status,
            error=record.error,
            task=record.task,
            model=record.model,
            profile=record.profile,
            seed=record.seed,
            variant=record.variant,
            result_set=str(result_set),
            run_dir=str(run_dir),
            best_val_accuracy=record.best_val_accuracy,
            test_accuracy=record.test_accuracy,
            seconds=time.time() - started_at,
            started_at=started_at,
            submitit_job=submitit_job_id(),
        )
        outcome.write(self.folder)
        return outcome

    def fail(self, status: str, error: str, started_at: float | None = None) -> JobOutcome:
        """Writes the outcome of a job that ended without a record of its own (refused: bad
        settings or another process running it; crashed: the app raised)."""
        started_at = time.time() if started_at is None else started_at
        outcome = JobOutcome(
            job=self.number,
            overrides=self.overrides,
            outcome="failed",
            status=status,
            error=error,
            seconds=time.time() - started_at,
            started_at=started_at,
            submitit_job=submitit_job_id(),
        )
        outcome.write(self.folder)
        return outcome


def current_job() -> Job | None:
    """The multirun job this process runs, or None (a single run, or outside the Hydra app)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        return None
    return Job(int(hydra.job.num), list(hydra.overrides.task), Path(hydra.runtime.output_dir))
