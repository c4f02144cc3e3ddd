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
from lra_bench.records import RECORD_NAME, SCHEMA_VERSION, read_record, write_record


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


def execute(cfg: DictConfig, run_dir: Path) -> dict:
    """Runs the experiment and returns its record (any failure becomes a record too)."""
    started = time.time()
    record: dict = {
        "schema": SCHEMA_VERSION,
        "task": cfg.task.name,
        "model": cfg.model.name,
        "profile": cfg.profile.name,
        "seed": int(cfg.seed),
        "status": "failed",
        "error": None,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "config_hash": config_hash(cfg),
        "variant": config_hash(cfg, include_seed=False),
        **{f"git_{k}": v for k, v in git_state().items()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
    }
    memory = PeakMemory(torch.device("cpu"), absolute=True)
    try:
        seed_everything(int(cfg.seed))
        device = choose_device(cfg.device)
        memory = PeakMemory(device, absolute=True)
        ops.configure(**OmegaConf.to_container(cfg.kernels, resolve=True))
        record["environment"] = device_description(device)
        data = instantiate(cfg.task.data).load(Path(cfg.data_root), progress=cfg.progress)
        record.update(
            data_fingerprint=data.fingerprint,
            validation_is_test=data.validation_is_test,
            split_sizes={name: len(split) for name, split in data.splits.items()},
            test_majority_rate=data.splits["test"].majority_rate(),
        )
        model = build_model(cfg, data)
        record["parameters"] = sum(p.numel() for p in model.parameters())
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
        record.update(
            status=result.status,
            error="training loss became non-finite" if result.status == "diverged" else None,
            best_step=result.best_step,
            best_val_accuracy=result.best_val_accuracy,
            val_accuracy=result.val_accuracy,
            test_accuracy=result.test_accuracy,
            steps=result.steps,
            train_seconds=result.train_seconds,
            steps_per_second=result.steps_per_second,
            final_train_loss=result.final_train_loss,
            history=result.history,
            kernel_backends=model.kernel_backends(),  # what ran, read after the run
        )
    except torch.OutOfMemoryError as error:
        record.update(status="oom", error=f"{type(error).__name__}: {error}")
    except Exception as error:  # recorded, then reported by the caller
        record.update(status="failed", error=f"{type(error).__name__}: {error}")
        record["traceback"] = traceback.format_exc()
    record["peak_memory_bytes"] = memory.peak_bytes()
    record["wall_seconds"] = time.time() - started
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_record(record, run_dir)
    return record


def run(cfg: DictConfig) -> dict:
    """Runs (or skips, or resumes) the run `cfg` identifies, then refreshes the leaderboard."""
    run_dir = run_dir_for(cfg)
    with RunLock(run_dir):
        previous = run_dir / RECORD_NAME
        record = read_record(previous) if previous.exists() and not cfg.force else None
        if record is not None and record["status"] == "ok":
            print(f"already finished: {run_dir} (force=true runs it again)")
        else:
            print(f"run directory: {run_dir}")
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
            record = execute(cfg, run_dir)
    table = write_leaderboard(Path(cfg.results_dir))
    row = table[
        (table.task == record["task"])
        & (table.model == record["model"])
        & (table.profile == record["profile"])
        & (table.variant == record["variant"])
    ]
    if record["status"] != "ok":
        print(f"run {record['status']}: {record['error']}", file=sys.stderr)
        if "traceback" in record:
            print(record["traceback"], file=sys.stderr)
    else:
        print(
            f"this run: test accuracy {100 * record['test_accuracy']:.2f}% "
            f"(majority class {100 * record['test_majority_rate']:.2f}%), "
            f"best validation step {record['best_step']}, {record['steps_per_second']:.1f} steps/s"
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
    if record["status"] in ("failed", "oom") and not multirun:
        sys.exit(1)


if __name__ == "__main__":
    main()
