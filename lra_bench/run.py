"""The Hydra app: one run = compose config -> load task -> build model -> train -> record ->
leaderboard.

    python -m lra_bench.run task=listops model=transformer profile=mini seed=0 results_dir=results
    python -m lra_bench.run -m model=transformer seed=0,1,2          # a multirun sweep

A finished run (record with status ok) is skipped when asked again (`force=true` reruns it); an
interrupted one resumes from its last evaluation.
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

import models.ops as ops
from lra_bench.compose import CONF_DIR
from lra_bench.engine import TrainerConfig, train_and_evaluate
from lra_bench.environment import (
    PeakMemory,
    choose_device,
    device_description,
    git_state,
    seed_everything,
)
from lra_bench.identity import RunLock, config_hash, run_dir_for
from lra_bench.leaderboard import format_row, write_leaderboard
from lra_bench.records import RECORD_NAME, RunRecord


def build_model(cfg: DictConfig, data) -> torch.nn.Module:
    """The backbone of `cfg.model`, sized by the task's vocabulary, classes and length; in
    two-tower mode for a pair task (Retrieval)."""
    return instantiate(
        cfg.model.backbone,
        vocab_size=data.vocab_size,
        num_classes=data.num_classes,
        max_length=data.max_length,
        **({"pair": True} if data.pair else {}),
    )


def command_overrides() -> list[str]:
    """The Hydra overrides of the command that started this run ([] outside the Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def execute(cfg: DictConfig, run_dir: Path) -> RunRecord:
    """Runs the experiment and returns its record (any failure becomes a record too)."""
    started = time.time()
    git = git_state()
    record = RunRecord(
        task=cfg.task.name,
        model=cfg.model.name,
        profile=cfg.profile.name,
        seed=int(cfg.seed),
        config_hash=config_hash(cfg),
        variant=config_hash(cfg, include_seed=False),
        config=OmegaConf.to_container(cfg, resolve=True),
        overrides=command_overrides(),
        git_commit=git["commit"],
        git_dirty=git["dirty"],
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
    )
    memory = PeakMemory(torch.device("cpu"), absolute=True)
    try:
        seed_everything(int(cfg.seed))
        device = choose_device(cfg.device)
        memory = PeakMemory(device, absolute=True)
        ops.configure(**OmegaConf.to_container(cfg.kernels, resolve=True))
        record.environment = device_description(device)
        data = instantiate(cfg.task.data).load(Path(cfg.data_root), progress=cfg.progress)
        record.data_fingerprint = data.fingerprint
        record.validation_is_test = data.validation_is_test
        record.split_sizes = {name: len(split) for name, split in data.splits.items()}
        record.test_majority_rate = data.splits["test"].majority_rate()
        model = build_model(cfg, data)
        record.parameters = sum(p.numel() for p in model.parameters())
        memory.reset()
        result = train_and_evaluate(
            model,
            data,
            TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True)),
            run_dir,
            device,
            seed=int(cfg.seed),
            progress=cfg.progress,
        )
        record.status = result.status
        record.error = "training loss became non-finite" if result.status == "diverged" else None
        record.best_step = result.best_step
        record.best_val_accuracy = result.best_val_accuracy
        record.val_accuracy = result.val_accuracy
        record.test_accuracy = result.test_accuracy
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


def run(cfg: DictConfig) -> RunRecord:
    """Runs (or skips, or resumes) the run `cfg` identifies, then refreshes the leaderboard."""
    run_dir = run_dir_for(cfg)
    with RunLock(run_dir):
        previous = run_dir / RECORD_NAME
        record = RunRecord.read(previous) if previous.exists() and not cfg.force else None
        if record is not None and record.status == "ok":
            print(f"already finished: {run_dir} (force=true runs it again)")
        else:
            print(f"run directory: {run_dir}")
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            record = execute(cfg, run_dir)
    table = write_leaderboard(Path(cfg.results_dir))
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
    if not row.empty:
        print("leaderboard: " + format_row(row.iloc[0]))
    print(
        f"record: {run_dir / RECORD_NAME}\nleaderboard: {Path(cfg.results_dir) / 'leaderboard.csv'}"
    )
    return record


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    record = run(cfg)
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    # A sweep goes on past a failed run (it is recorded and counted); a single run exits non-zero.
    if record.status in ("failed", "oom") and not multirun:
        sys.exit(1)


if __name__ == "__main__":
    main()
