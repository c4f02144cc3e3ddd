"""The Hydra app: one run = compose config -> load task -> build model -> train -> record ->
leaderboard.

    python -m lra_bench.run task=listops model=transformer profile=mini seed=0 results_dir=results
    python -m lra_bench.run -m model=transformer seed=0,1,2          # a multirun sweep
    python -m lra_bench.run model=transformer pretrain=masked        # self-pretrained first

A finished run (record with status ok) is skipped when asked again (`force=true` reruns it); an
interrupted one resumes from its last evaluation. With `pretrain=masked|causal` the run first
finds or trains its pretraining run (lra_bench/pretraining.py), a run of its own that several
supervised runs share; `force` reruns the supervised stage only.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import lra_bench.pretraining as pretraining
import models.ops as ops
from lra_bench.compose import CONF_DIR
from lra_bench.engine import train_and_evaluate
from lra_bench.environment import (
    PeakMemory,
    choose_device,
    device_description,
    git_state,
    seed_everything,
)
from lra_bench.identity import RunLock, run_dir_for
from lra_bench.leaderboard import format_row, write_leaderboard
from lra_bench.pretraining import Pretrained
from lra_bench.published.accuracy import SCRATCH
from lra_bench.records import RECORD_NAME, RunRecord
from lra_bench.stages import PretrainingStage, Stage, SupervisedStage, build_model  # noqa: F401


class PretrainingRefused(ValueError):
    """Pretraining settings that cannot run (a causal objective for a mixer without a causal
    form, ...): refused before anything is read or written."""


def command_overrides() -> list[str]:
    """The Hydra overrides of the command that started this run ([] outside the Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def execute(cfg: DictConfig, run_dir: Path, stage: Stage | None = None) -> RunRecord:
    """Runs one stage of the experiment (by default the supervised run) and returns its record
    (any failure becomes a record too)."""
    stage = SupervisedStage(cfg) if stage is None else stage
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
    try:
        seed_everything(stage.seed)
        device = choose_device(cfg.device)
        memory = PeakMemory(device, absolute=True)
        ops.configure(**OmegaConf.to_container(cfg.kernels, resolve=True))
        record.environment = device_description(device)
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
            objective=stage.objective,
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
        record.kernel_backends = model.kernel_backends()  # what ran, read after the run
    except torch.OutOfMemoryError as error:
        record.status, record.error = "oom", f"{type(error).__name__}: {error}"
    except Exception as error:  # recorded, then reported by the caller
        record.status, record.error = "failed", f"{type(error).__name__}: {error}"
        record.traceback = traceback.format_exc()
    record.peak_memory_bytes = memory.peak_bytes()
    record.wall_seconds = time.time() - started
    record.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    problems = record.problems()
    if problems:  # e.g. "ok" without a test accuracy: never published as a result
        record.status, record.error = "failed", f"invalid result: {'; '.join(problems)}"
    record.write(run_dir)
    return record


def pretrain_first(cfg: DictConfig) -> tuple[Pretrained, bool]:
    """The pretraining run this run starts from, and whether it was there already: found
    finished (several supervised runs share one), else trained (or resumed) now. Concurrent jobs
    of a sweep wait on its lock, then find it finished, so it is trained once."""
    run_dir = pretraining.pretraining_dir_for(cfg)
    with RunLock(run_dir, wait=True):
        path = run_dir / RECORD_NAME
        record = RunRecord.read(path) if path.exists() else None
        if record is not None and record.status == "ok":
            return Pretrained(record, run_dir), True
        print(f"pretraining directory: {run_dir}")
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        record = execute(cfg, run_dir, PretrainingStage(cfg))
        record.write(run_dir)
    return Pretrained(record, run_dir), False


def run(cfg: DictConfig) -> RunRecord:
    """Runs (or skips, or resumes) the run `cfg` identifies, after its pretraining run when it
    asks for one, then refreshes the leaderboard. PretrainingRefused: nothing was written."""
    refused = pretraining.problems(cfg)
    if refused:
        raise PretrainingRefused("; ".join(refused))
    run_dir = run_dir_for(cfg)
    pretrained = None
    with RunLock(run_dir):
        previous = run_dir / RECORD_NAME
        record = RunRecord.read(previous) if previous.exists() and not cfg.force else None
        if record is not None and record.status == "ok":
            print(f"already finished: {run_dir} (force=true runs it again)")
        else:
            if pretraining.requested(cfg):
                pretrained, reused = pretrain_first(cfg)
                print(pretrained.summary(reused))
            print(f"run directory: {run_dir}")
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            record = execute(cfg, run_dir, SupervisedStage(cfg, pretrained))
    table = write_leaderboard(Path(cfg.results_dir))
    report(record, table)
    print(
        f"record: {run_dir / RECORD_NAME}\nleaderboard: {Path(cfg.results_dir) / 'leaderboard.csv'}"
    )
    return record


def report(record: RunRecord, table) -> None:
    """What the run did and its leaderboard row; for a self-pretrained run, the same model's
    row from scratch beside it when there is one (the answer without pretraining)."""
    row = table[
        (table.task == record.task)
        & (table.model == record.model)
        & (table.profile == record.profile)
        & (table.variant == record.variant)
    ]
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
    if record.pretrained_from is not None:
        print("pretraining: " + pretraining.format_reference(record.pretrained_from))
    if not row.empty:
        print("leaderboard: " + format_row(row.iloc[0]))
    if record.protocol != SCRATCH:
        scratch = table[
            (table.task == record.task)
            & (table.model == record.model)
            & (table.profile == record.profile)
            & (table.protocol == SCRATCH)
            & table.selected
        ]
        if scratch.empty:
            print("from scratch: no run yet (the same command without pretrain= makes one)")
        for _, other in scratch.iterrows():
            print("from scratch: " + format_row(other))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        record = run(cfg)
    except PretrainingRefused as error:
        print(f"lra_bench.run: error: {error}", file=sys.stderr)
        sys.exit(2)
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    # A sweep goes on past a failed run (it is recorded and counted); a single run exits non-zero.
    if record.status in ("failed", "oom") and not multirun:
        sys.exit(1)


if __name__ == "__main__":
    main()
