"""The Hydra app: one run = check settings -> compose config -> load task -> build model ->
train -> record -> leaderboard.

    python -m lra_bench.run task=listops model=transformer profile=mini seed=0 results_dir=results
    python -m lra_bench.run -m model=transformer seed=0,1,2          # a multirun sweep
    python -m lra_bench.run model=transformer pretrain=masked        # self-pretrained first

Settings are checked before anything is read or written (lra_bench/settings_check.py): a bad one
is refused with one line and exit status 2. A finished run (record with status ok) is skipped
when asked again; an interrupted one resumes from its last checkpoint; `force=true` trains it
again from step 0, the old record staying in place until the new one replaces it. Exit status:
0 ok or skipped, 1 failed / diverged / oom, 2 refused, 128 + N stopped by signal N (SIGTERM).

With `pretrain=masked|causal` the run first finds, resumes or trains its pretraining run
(lra_bench/pretraining.py): a run of its own, with its own directory, record and checkpoints,
that the supervised runs of a sweep share; `force` retrains the supervised stage only.

A run writes metrics.csv and learning_curve.png beside its record (logger=wandb: W&B too). Under
torchrun, or as several Slurm tasks, the processes train the run together (distributed.py); rank
0 alone locks the run, writes its files and reports. In a multirun every job leaves its outcome
for the sweep's summary (lra_bench/sweep/), and never ends the sweep: a refused or failed run is
an outcome like any other. The app returns the run's best validation accuracy, the objective of
hydra/sweeper=tune.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import lra_bench.pretraining as pretraining
import models.ops as ops
from lra_bench import allocator
from lra_bench.checkpoints import BEST, LAST, PREVIOUS, remove_leftovers, set_aside
from lra_bench.compose import CONF_DIR
from lra_bench.distributed import World, init_world, world_from_env
from lra_bench.engine import train_and_evaluate
from lra_bench.environment import (
    PeakMemory,
    choose_device,
    device_description,
    git_state,
    seed_everything,
)
from lra_bench.identity import RunLock, RunLockedError, result_set_dir, run_dir_for
from lra_bench.leaderboard import format_row, write_leaderboard
from lra_bench.metrics_log import CURVE_NAME, METRICS_NAME, MetricsLog, open_metrics_log
from lra_bench.preemption import Preempted
from lra_bench.pretraining import Pretrained
from lra_bench.records import RECORD_NAME, SCRATCH, RunRecord
from lra_bench.settings_check import SettingsError, check_settings
from lra_bench.stages import PretrainingStage, Stage, SupervisedStage, build_model  # noqa: F401
from lra_bench.sweep.joblib_worker import prepare_joblib_job
from lra_bench.sweep.outcome import current_job

# Slurm's warning before a time limit: the trainer writes a checkpoint on SIGUSR1
# (preemption.py), and `#SBATCH --signal=USR1@120` asks for it. submitit (hydra/launcher=slurm)
# asks for and handles USR2 unless told otherwise here; it reads this when it is imported, in
# this process (the batch script's --signal) and in each job (sbatch passes the environment).
os.environ.setdefault("SUBMITIT_PREEMPT_SIGNAL", "USR1")

# Where a forced rerun that did not end ok leaves its record when an ok one stays in place.
FORCED_RERUN_NAME = "forced-rerun.json"


def command_overrides() -> list[str]:
    """The Hydra overrides of the command that started this run ([] outside the Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def execute(
    cfg: DictConfig,
    run_dir: Path,
    stage: Stage | None = None,
    world: World | None = None,
    metrics: MetricsLog | None = None,
) -> RunRecord:
    """Runs one stage of the experiment (by default the supervised run, lra_bench/stages.py) and
    returns its record, not yet written (any failure becomes a record too; a signal that stops
    training raises Preempted, leaving a checkpoint). world: this process among those training
    the run; metrics: where rank 0's metrics go."""
    stage = SupervisedStage(cfg) if stage is None else stage
    world = world or World()
    started = time.time()
    git = git_state()
    record = RunRecord(
        task=cfg.task.name,
        model=cfg.model.name,
        profile=cfg.profile.name,
        seed=stage.seed,
        config_hash=stage.config_hash,
        variant=stage.variant,
        stage=stage.name,
        protocol=stage.protocol,
        pretrained_from=stage.pretrained_from,
        config=OmegaConf.to_container(cfg, resolve=True),
        overrides=command_overrides(),
        git_commit=git["commit"],
        git_dirty=git["dirty"],
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
    )
    memory = PeakMemory(torch.device("cpu"), absolute=True)
    earlier_wall_seconds = 0.0
    try:
        seed_everything(stage.seed)
        device = world.device(choose_device(cfg.device))
        memory = PeakMemory(device, absolute=True)
        ops.configure(**OmegaConf.to_container(cfg.kernels, resolve=True))
        record.environment = {**device_description(device), "malloc": allocator.describe()}
        data = instantiate(cfg.task.data).load(Path(cfg.data_root), progress=cfg.progress)
        record.data_fingerprint = data.fingerprint
        record.validation_is_test = data.validation_is_test
        record.split_sizes = {name: len(split) for name, split in data.splits.items()}
        record.test_majority_rate = data.splits["test"].majority_rate()
        model = stage.build(data)
        record.parameters = sum(p.numel() for p in model.parameters())
        memory.reset()
        result = train_and_evaluate(
            model,
            data,
            stage.trainer,
            run_dir,
            device,
            seed=stage.seed,
            progress=cfg.progress,
            checkpoint_every=int(cfg.checkpoint_every),
            started=started,
            objective=stage.objective,
            world=world,
            metrics=metrics,
        )
        record.status = result.status
        record.error = "training loss became non-finite" if result.status == "diverged" else None
        record.best_step = result.best_step
        stage.finish(record, model, data, result, device)
        record.steps = result.steps
        record.train_seconds = result.train_seconds
        record.steps_per_second = result.steps_per_second
        record.final_train_loss = result.final_train_loss
        record.history = result.history
        record.resumes = result.resumes
        earlier_wall_seconds = result.earlier_wall_seconds
        record.kernel_backends = model.kernel_backends()  # what ran, read after the run
    except Preempted:
        raise  # not finished: no record; the checkpoint lets the same command go on
    except torch.OutOfMemoryError as error:
        record.status, record.error = "oom", f"{type(error).__name__}: {error}"
    except Exception as error:  # recorded, then reported by the caller
        record.status, record.error = "failed", f"{type(error).__name__}: {error}"
        record.traceback = traceback.format_exc()
    record.peak_memory_bytes = memory.peak_bytes()
    record.wall_seconds = earlier_wall_seconds + (time.time() - started)
    record.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    problems = record.problems()
    if problems:  # e.g. "ok" without a test accuracy: never published as a result
        record.status, record.error = "failed", f"invalid result: {'; '.join(problems)}"
    return record


def read_previous_record(run_dir: Path) -> RunRecord | None:
    """The record an earlier process of this run left, if any. One that does not read as a
    record is named, moved aside (never counted, kept to look at) and treated as absent."""
    path = run_dir / RECORD_NAME
    if not path.exists():
        return None
    try:
        return RunRecord.read(path)
    except ValueError as error:
        moved = set_aside(path)
        print(f"{error}; moved aside to {moved.name}", file=sys.stderr)
        return None


def discard_training_state(run_dir: Path, previous: RunRecord | None) -> None:
    """force=true: the checkpoints of earlier processes go, so that training starts from step 0;
    the record stays until the new one replaces it."""
    removed = [name for name in (LAST, PREVIOUS, BEST) if (run_dir / name).exists()]
    for name in removed:
        (run_dir / name).unlink()
    remove_leftovers(run_dir)
    kept = f"; the earlier record (status {previous.status}) stays until this run's replaces it"
    print(
        "force=true: training from step 0"
        + (f" (removed {', '.join(removed)})" if removed else "")
        + (kept if previous is not None else "")
    )


def store_record(record: RunRecord, run_dir: Path, previous: RunRecord | None, forced: bool):
    """Writes the record. A forced rerun that did not end ok never replaces an ok record: its
    own goes to FORCED_RERUN_NAME beside it (not counted by the leaderboard)."""
    if forced and previous is not None and previous.status == "ok" and record.status != "ok":
        path = record.write(run_dir, name=FORCED_RERUN_NAME)
        print(
            f"force=true: the rerun ended {record.status}; the earlier ok record stays in "
            f"{run_dir / RECORD_NAME}; this rerun's record is {path}",
            file=sys.stderr,
        )
        return path
    return record.write(run_dir)


def refresh_leaderboard(results_dir: Path):
    """The refreshed leaderboard table, or None when it could not be written (said in one
    line: the run's record is written either way, and `lra-bench leaderboard` redoes it)."""
    try:
        table = write_leaderboard(results_dir)
    except Exception as error:
        print(f"leaderboard not refreshed: {type(error).__name__}: {error}", file=sys.stderr)
        return None
    for line in table.attrs.get("skipped", []):
        print(f"leaderboard: left out {line}", file=sys.stderr)
    return table


def pretrain_first(cfg: DictConfig, world: World | None = None) -> tuple[Pretrained, bool]:
    """The pretraining run this run starts from, and whether it was there already: found
    finished (the supervised runs of a sweep share one), else trained or resumed now. Concurrent
    jobs wait on its lock, then find it finished, so it is trained once. A pretraining that did
    not end ok is trained again (from its last checkpoint) by the next run that needs it. Under
    several processes rank 0 holds the lock and writes the record; all ranks train."""
    world = world or World()
    run_dir = pretraining.pretraining_dir_for(cfg)
    with RunLock(run_dir, wait=True) if world.is_main else contextlib.nullcontext():
        record = read_previous_record(run_dir) if world.is_main else None
        done = record is not None and record.status == "ok"
        if world.is_main and not done:
            print(f"pretraining directory: {run_dir}")
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        (done,) = world.maximum(int(done))
        world.barrier()
        if not done:
            record = execute(cfg, run_dir, PretrainingStage(cfg), world)
            if world.is_main:
                record.write(run_dir)
        world.barrier()
        if not world.is_main:  # the record rank 0 wrote, the same for every rank
            record = RunRecord.read(run_dir / RECORD_NAME)
    return Pretrained(record, run_dir), bool(done)


def report(record: RunRecord, table, run_dir: Path, results_dir: Path) -> None:
    """What the run did, its pretraining, its leaderboard row and, for a self-pretrained run, the
    same model's row from scratch (the answer without pretraining); where the files are (its
    learning curve among them)."""
    if record.status != "ok":
        print(f"run {record.status}: {record.error}", file=sys.stderr)
        if record.traceback:
            print(record.traceback, file=sys.stderr)
    else:
        print(
            f"this run: test accuracy {100 * record.test_accuracy:.2f}% "
            f"(majority class {100 * record.test_majority_rate:.2f}%), "
            f"best validation step {record.best_step}, {record.steps_per_second:.1f} steps/s"
        )
    if table is not None and not table.empty:
        row = table[
            (table.task == record.task)
            & (table.model == record.model)
            & (table.profile == record.profile)
            & (table.variant == record.variant)
        ]
        if record.pretrained_from is not None:
            print("pretraining: " + pretraining.format_reference(record.pretrained_from))
        if not row.empty:
            print("leaderboard: " + format_row(row.iloc[0]))
        if record.protocol != SCRATCH:
            report_scratch(record, table)
    print(f"record: {run_dir / RECORD_NAME}")
    for name in (METRICS_NAME, CURVE_NAME):
        if (run_dir / name).exists():
            print(f"{'metrics' if name == METRICS_NAME else 'learning curve'}: {run_dir / name}")
    print(f"leaderboard: {results_dir / 'leaderboard.csv'}")


@dataclass
class Finished:
    """What `run_once` did: the run's record, whether it was skipped (it had finished before),
    its folder and the result set it belongs to."""

    record: RunRecord
    skipped: bool
    run_dir: Path
    result_set: Path


def train(
    cfg: DictConfig,
    run_dir: Path,
    world: World,
    previous: RunRecord | None,
    stage: Stage,
) -> RunRecord:
    """Trains the run's supervised stage, writes its record (rank 0) and ends its metrics
    log."""
    metrics = None
    if world.is_main:
        identity = {
            "task": cfg.task.name,
            "model": cfg.model.name,
            "profile": cfg.profile.name,
            "seed": int(cfg.seed),
        }
        metrics = open_metrics_log(cfg, run_dir, stage.trainer.evaluates_after, identity)
    try:
        record = execute(cfg, run_dir, stage, world, metrics)
    except Preempted:
        if metrics is not None:
            metrics.finish(None)  # what was logged stays; the resumed run goes on from it
        raise
    if world.is_main:
        store_record(record, run_dir, previous, forced=bool(cfg.force))
        metrics.finish(record)
    return record


def run_once(cfg: DictConfig, choices: Mapping[str, str | None] | None = None) -> Finished:
    """Runs (or skips, or resumes) the run `cfg` identifies, then refreshes the leaderboard of
    its result set. See `run`."""
    check_settings(cfg, choices)
    run_dir = run_dir_for(cfg)
    world = init_world(choose_device(cfg.device))
    try:
        # Rank 0 holds the lock and prepares the folder while the others wait.
        with RunLock(run_dir) if world.is_main else contextlib.nullcontext():
            previous = read_previous_record(run_dir) if world.is_main else None
            skip = previous is not None and previous.status == "ok" and not cfg.force
            if world.is_main and skip:
                print(f"already finished: {run_dir} (force=true trains it again from step 0)")
            (skip,) = world.maximum(int(skip))
            if skip:
                record = previous or RunRecord.read(run_dir / RECORD_NAME)
            else:
                pretrained = None
                if pretraining.requested(cfg):
                    pretrained, reused = pretrain_first(cfg, world)
                    if world.is_main:
                        print(pretrained.summary(reused))
                if world.is_main:
                    if cfg.force:
                        discard_training_state(run_dir, previous)
                    print(f"run directory: {run_dir}")
                    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
                world.barrier()
                record = train(cfg, run_dir, world, previous, SupervisedStage(cfg, pretrained))
        results_dir = result_set_dir(cfg)
        if world.is_main:
            report(record, refresh_leaderboard(results_dir), run_dir, results_dir)
        return Finished(record, bool(skip), run_dir, results_dir)
    except Preempted:
        # The ranks stopped at the same step. None may end before rank 0 has written all it
        # writes on the way out (checkpoint, metrics, learning curve, lock): torchrun sends
        # SIGTERM to every process as soon as one has ended, and outside training that kills.
        world.barrier()
        raise
    finally:
        world.close()


def report_scratch(record: RunRecord, table) -> None:
    """The row from scratch of a self-pretrained run's task, model and profile."""
    scratch = table[
        (table.task == record.task)
        & (table.model == record.model)
        & (table.profile == record.profile)
        & (table.protocol == SCRATCH)
        & table.selected
    ]
    if scratch.empty:
        print("from scratch: no run yet (the same command without pretrain= makes one)")
    for _, row in scratch.iterrows():
        print("from scratch: " + format_row(row))


def run(cfg: DictConfig, choices: Mapping[str, str | None] | None = None) -> RunRecord:
    """Runs (or skips, or resumes) the run `cfg` identifies, then refreshes the leaderboard.

    choices: Hydra's runtime choices (which experiment file was taken), when known. Raises
    SettingsError (a refused setting: nothing was written), RunLockedError (another process
    runs it) or Preempted (a signal stopped training after a checkpoint)."""
    return run_once(cfg, choices).record


def run_job(cfg: DictConfig, choices: Mapping[str, str | None] | None, job) -> float | None:
    """One job of a multirun: the run, its outcome written for the sweep, nothing raised for
    a run that was refused or failed (the sweep goes on). Returns the objective. A job that
    several Slurm tasks run together (one rank each) has its outcome written by rank 0."""
    started = time.time()
    main = world_from_env().is_main
    threads = prepare_joblib_job()
    if threads is not None:
        print(f"job {job.number}: {threads} torch thread(s) (cores / concurrent jobs)")
    try:
        finished = run_once(cfg, choices)
    except (SettingsError, RunLockedError) as error:
        print(f"lra_bench.run: error: {error}", file=sys.stderr)
        if main:
            job.fail("refused", str(error), started)
        return None
    except Preempted as stopped:
        if main:
            job.fail("stopped", f"{stopped}; the same sweep resumes it", started)
        raise
    if main:
        job.finish(
            finished.record, finished.skipped, finished.result_set, finished.run_dir, started
        )
    return finished.record.best_val_accuracy


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    allocator.keep_freed_memory()  # before the first large tensor; lra_bench/allocator.py says why
    hydra_config = HydraConfig.get() if HydraConfig.initialized() else None
    choices = dict(hydra_config.runtime.choices) if hydra_config is not None else None
    job = current_job()
    try:
        if job is not None:
            return run_job(cfg, choices, job)
        record = run(cfg, choices)
    except SettingsError as error:
        print(f"lra_bench.run: error: {error}", file=sys.stderr)
        sys.exit(2)
    except RunLockedError as error:
        print(f"lra_bench.run: error: {error}", file=sys.stderr)
        sys.exit(2)
    except Preempted as stopped:
        print(f"{stopped}; the same command resumes the run", file=sys.stderr)
        sys.exit(128 + stopped.signal_number)
    # A single run says how it ended in its exit status.
    if record.status != "ok":
        sys.exit(1)
    return record.best_val_accuracy


if __name__ == "__main__":
    # Launchers (joblib, submitit) pickle the task function to hand it to their workers. Taken
    # from the module lra_bench.run rather than from __main__, it is pickled by reference, not
    # by value with every global it touches (some of which do not pickle).
    from lra_bench.run import main as app

    app()
