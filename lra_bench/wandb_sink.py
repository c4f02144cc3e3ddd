"""`logger=wandb`: a run's metrics, config, record and plots in Weights & Biases.

Offline unless the user sets WANDB_MODE=online (or another mode W&B knows): nothing leaves the
machine by default, and `wandb sync <dir>` uploads an offline run later. The run's W&B files go
to $WANDB_DIR when set, else to `<results_dir>/.wandb/`. Settings: conf/logger/wandb.yaml.

What is logged: the resolved config (as the run's W&B config); every metrics row
(lra_bench/metrics_log.py) as `train/loss`, `train/lr`, `train/grad_norm`,
`train/steps_per_second` and `val/accuracy` at its step; at the end the record's results in the
summary (status, accuracies, best step, steps/s, parameters, peak memory), the record file
itself, and the learning-curve plot as an image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from omegaconf import OmegaConf

# A metrics row's columns under W&B's names (grouped into panels by their prefix).
KEYS = {
    "loss": "train/loss",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "steps_per_second": "train/steps_per_second",
    "val_accuracy": "val/accuracy",
}
SUMMARY_FIELDS = (
    "status",
    "error",
    "best_step",
    "best_val_accuracy",
    "val_accuracy",
    "test_accuracy",
    "test_majority_rate",
    "steps",
    "steps_per_second",
    "train_seconds",
    "wall_seconds",
    "parameters",
    "peak_memory_bytes",
    "config_hash",
    "variant",
)


def wandb_run_id(run_dir: Path) -> str:
    """A W&B run id per run directory: the same run, resumed, logs to the same W&B run; two
    result sets holding the same experiment do not."""
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    return f"{Path(run_dir).name}-{digest}"


class WandbSink:
    """One W&B run for one lra-bench run, opened when the loop starts."""

    def __init__(self, cfg, run_dir: Path, identity: dict) -> None:
        self.settings = OmegaConf.to_container(cfg.logger, resolve=True)
        self.config = OmegaConf.to_container(cfg, resolve=True)
        self.run_dir = Path(run_dir)
        self.identity = identity
        self.directory = Path(os.environ.get("WANDB_DIR") or Path(cfg.results_dir) / ".wandb")
        self.run = None

    def start(self, step: int) -> None:
        import wandb

        self.directory.mkdir(parents=True, exist_ok=True)
        who = self.identity
        self.run = wandb.init(
            project=self.settings.get("project") or "lra-bench",
            entity=self.settings.get("entity"),
            group=self.settings.get("group") or f"{who['task']}-{who['model']}-{who['profile']}",
            tags=list(self.settings.get("tags") or []),
            name=f"{who['task']}-{who['model']}-{who['profile']}-seed{who['seed']}",
            id=wandb_run_id(self.run_dir),
            resume="allow",
            dir=str(self.directory),
            config=self.config,
            mode=os.environ.get("WANDB_MODE", "offline"),
        )
        self.run.summary["resumed_from_step"] = step

    def write(self, row: dict) -> None:
        values = {KEYS[k]: v for k, v in row.items() if k in KEYS and v is not None}
        self.run.log(values, step=int(row["step"]))

    def finish(self, record, files: list[Path]) -> None:
        import wandb

        if self.run is None:  # the run failed before training started: nothing was logged
            return
        if record is not None:
            data = record.to_dict()
            self.run.summary.update({k: data[k] for k in SUMMARY_FIELDS if k in data})
            record_path = self.run_dir / "record.json"
            if record_path.exists():  # a copy: the record beside the run may be rewritten
                copy = Path(self.run.dir) / record_path.name
                shutil.copyfile(record_path, copy)
                self.run.save(str(copy), base_path=self.run.dir, policy="now")
        images = {f"plots/{path.stem}": wandb.Image(str(path)) for path in files}
        if images:
            self.run.log(images)
        self.run.finish()
