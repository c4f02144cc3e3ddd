"""A run's metrics as it trains: `metrics.csv` beside the record (always), and Weights & Biases
too with `logger=wandb` (opt-in, conf/logger/).

The training loop (lra_bench/engine.py) calls one object, `MetricsLog`, where metrics are made:
`step(...)` after every optimizer step, `evaluation(step, accuracy)` after every validation.
MetricsLog turns them into rows, one every `logger.every` steps and one at every evaluation:

    step, loss, lr, grad_norm, val_accuracy, steps_per_second

`loss` is the mean training loss over the steps since the previous row, `lr` the learning rate
of the first parameter group at that step (state-space parameters may have their own),
`grad_norm` the L2 norm of all gradients of that step (after clipping, where trainer.grad_clip
clips), `steps_per_second` the optimizer steps over the time spent in them since the previous
row (evaluations and checkpoints excluded), `val_accuracy` empty except at evaluations. Each row
goes to every sink: `CsvSink` (metrics.csv) and, with logger=wandb, `WandbSink`
(lra_bench/wandb_sink.py). A resumed run drops the rows past the step it resumes from, so the
file reads as if the run had never stopped.

`finish(record)` ends the log: the learning-curve plot (lra_bench/learning_curve.py) and, for
W&B, the record and the plot.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from tasks.files import replaced_atomically

METRICS_NAME = "metrics.csv"
CURVE_NAME = "learning_curve.png"
COLUMNS = ("step", "loss", "lr", "grad_norm", "val_accuracy", "steps_per_second")


def gradient_norm(model: nn.Module) -> float:
    """The L2 norm of every parameter's gradient taken together (0 when there are none)."""
    norms = [p.grad.detach().float().norm() for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


class CsvSink:
    """Rows appended to `metrics.csv` as they come (a crash loses no row already made)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def start(self, step: int) -> None:
        """Starts the file, or keeps the rows of an earlier process up to `step` (the step a
        resumed run goes on from) and drops the rest."""
        kept = []
        if self.path.exists() and step > 0:
            with open(self.path, newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["step"]) <= step]
        with replaced_atomically(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(kept)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=COLUMNS).writerow(
                {k: _cell(row.get(k)) for k in COLUMNS}
            )

    def finish(self, record, files: list[Path]) -> None:
        """Nothing to close: every row is on disk already."""


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class MetricsLog:
    """The rows of one run, sent to every sink. `every`: steps between rows (evaluations add
    theirs); `evaluation_steps`: tells whether an evaluation follows a step, so that the row of
    that step waits for the accuracy and carries it."""

    def __init__(
        self, run_dir: Path, every: int, evaluation_steps: Callable[[int], bool], sinks=()
    ) -> None:
        if every < 1:
            raise ValueError(f"logger.every={every}: expected an integer >= 1")
        self.run_dir = Path(run_dir)
        self.every = every
        self.evaluation_steps = evaluation_steps
        self.sinks = [CsvSink(self.run_dir / METRICS_NAME), *sinks]
        self._window = [0.0, 0, 0.0]  # loss sum, steps, seconds since the last row
        self._pending: dict | None = None  # the row of a step whose evaluation is coming

    def start(self, step: int) -> None:
        """Called once the loop knows the step it starts from (0, or a resumed run's)."""
        for sink in self.sinks:
            sink.start(step)

    def step(
        self, step: int, loss: float, lr: float, seconds: float, grad_norm: Callable[[], float]
    ) -> None:
        """After optimizer step `step` (1-based), which took `seconds`. `grad_norm` is called
        only for the steps that make a row (the gradients are still in place then)."""
        self._window[0] += loss
        self._window[1] += 1
        self._window[2] += seconds
        if step % self.every and not self.evaluation_steps(step):
            return
        row = self._close_window(step)
        row.update(lr=lr, grad_norm=grad_norm())
        if self.evaluation_steps(step):
            self._pending = row
        else:
            self._write(row)

    def evaluation(self, step: int, accuracy: float) -> None:
        """The validation accuracy after step `step`: it joins that step's row."""
        if self._pending is not None and self._pending["step"] == step:
            row, self._pending = self._pending, None
        else:  # an evaluation the loop made outside the steps it announced
            row = self._close_window(step)
        row["val_accuracy"] = accuracy
        self._write(row)

    def finish(self, record) -> list[Path]:
        """Ends the log once the run's record is written: draws the learning curve and hands
        the record and the files to every sink. Returns the files written."""
        from lra_bench.learning_curve import plot_learning_curve

        if self._pending is not None:
            self._write(self._pending)
            self._pending = None
        files = []
        curve = plot_learning_curve(
            self.run_dir / METRICS_NAME, self.run_dir / CURVE_NAME, title=_title(record)
        )
        if curve is not None:
            files.append(curve)
        for sink in self.sinks:
            sink.finish(record, files)
        return files

    def _close_window(self, step: int) -> dict:
        loss_sum, steps, seconds = self._window
        self._window = [0.0, 0, 0.0]
        return {
            "step": step,
            "loss": loss_sum / steps if steps else None,
            "steps_per_second": steps / seconds if seconds > 0 else None,
        }

    def _write(self, row: dict) -> None:
        for sink in self.sinks:
            sink.write(row)


def _title(record) -> str:
    if record is None:
        return ""
    return f"{record.task} | {record.model} | {record.profile} | seed {record.seed}"


def open_metrics_log(
    cfg, run_dir: Path, evaluation_steps: Callable[[int], bool], record_identity: dict
) -> MetricsLog:
    """The MetricsLog a run's config asks for: `cfg.logger.name` csv (metrics.csv only) or
    wandb (metrics.csv and W&B). `record_identity`: task, model, profile, seed, config_hash of
    the run (W&B names and groups the run by them)."""
    sinks = []
    if cfg.logger.name == "wandb":
        from lra_bench.wandb_sink import WandbSink

        sinks.append(WandbSink(cfg, run_dir, record_identity))
    elif cfg.logger.name != "csv":
        raise ValueError(f"logger.name={cfg.logger.name!r}: expected csv or wandb")
    return MetricsLog(run_dir, int(cfg.logger.every), evaluation_steps, sinks)
