"""The one training loop: AdamW + schedule, gradient accumulation and clipping, bf16 autocast on
CUDA, evaluation every N steps, the best validation checkpoint kept, then test on that checkpoint.
What it optimises is an objective (lra_bench/objectives.py): classification for the supervised
run, masked or next-element modelling for self-pretraining; the loop is the same.

A run directory holds `last.pt` (everything needed to resume, rewritten at each evaluation) and
`best.pt` (the model weights at the best validation accuracy so far).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from lra_bench.objectives import CLASSIFICATION, Objective, classification_loss
from lra_bench.optim import build_optimizer, build_scheduler
from tasks.base import Split, TaskData
from tasks.files import replaced_atomically


@dataclass
class TrainerConfig:
    """Mirrors `trainer:` in conf/profile/*.yaml; every field is documented there."""

    batch_size: int = 32
    grad_accum: int = 1
    max_steps: int = 1000
    eval_every: int = 100
    eval_batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    schedule: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = None
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere; or fp32 / bf16


@dataclass
class TrainResult:
    status: str  # ok | diverged
    steps: int
    best_step: int | None
    best_val_accuracy: float | None
    val_accuracy: float | None
    test_accuracy: float | None
    train_seconds: float
    steps_per_second: float
    final_train_loss: float | None
    history: list[dict] = field(default_factory=list)


def autocast_context(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Iterable[tuple],
    accumulate: int,
    device: torch.device,
    precision: str,
    grad_clip: float | None = None,
    loss_fn: Callable[[nn.Module, tuple, torch.device], torch.Tensor] = classification_loss,
) -> float:
    """One optimizer step, the same in training and in the speed protocol: forward and backward
    over `accumulate` micro-batches, each one's loss `loss_fn(model, batch, device)` (by default
    the cross-entropy of (tokens (B, L) or (B, 2, L), lengths, labels (B,))); clipping; the
    optimizer step. Returns the mean loss; when it is not finite no step is taken (the caller
    decides what that means)."""
    optimizer.zero_grad(set_to_none=True)
    loss_sum = 0.0
    for batch in micro_batches:
        with autocast_context(device, precision):
            loss = loss_fn(model, batch, device)
        (loss / accumulate).backward()
        loss_sum += loss.item()
    loss_value = loss_sum / accumulate
    if not math.isfinite(loss_value):
        return loss_value
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss_value


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    batch_size: int,
    device: torch.device,
    precision: str,
    objective: Objective = CLASSIFICATION,
) -> float:
    """The objective's score of `model` on every example of `split` (accuracy by default), in
    eval mode."""
    was_training = model.training
    model.eval()
    with autocast_context(device, precision):
        score = objective.score(model, split, batch_size, device)
    model.train(was_training)
    return score


def _save_atomically(obj: dict, path: Path) -> None:
    with replaced_atomically(path) as tmp:
        torch.save(obj, tmp)


def train_and_evaluate(
    model: nn.Module,
    data: TaskData,
    config: TrainerConfig,
    run_dir: Path,
    device: torch.device,
    seed: int,
    progress: bool = True,
    objective: Objective = CLASSIFICATION,
) -> TrainResult:
    """Trains `model` on data.splits['train'] for `objective`, selects on its score on 'val'
    (TrainResult's `*_val_accuracy` hold that score), reports 'test' when the objective does."""
    model.to(device)
    optimizer = build_optimizer(
        model, config.lr, config.weight_decay, tuple(config.betas), config.eps
    )
    scheduler = build_scheduler(optimizer, config.schedule, config.warmup_steps, config.max_steps)
    micro_batch = config.batch_size // config.grad_accum
    if micro_batch * config.grad_accum != config.batch_size:
        raise ValueError(
            f"trainer.batch_size={config.batch_size} is not divisible by "
            f"trainer.grad_accum={config.grad_accum}"
        )
    batches = objective.train_batches(data.splits["train"], micro_batch, seed)
    val_key = f"val_{objective.metric}"

    def validate(split: str) -> float:
        return evaluate(
            model, data.splits[split], config.eval_batch_size, device, config.precision, objective
        )

    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    step, best_step, best_val, history, train_seconds = 0, None, None, [], 0.0
    if last_path.exists():  # resume where the previous process of this run stopped
        state = torch.load(last_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, best_step, best_val = state["step"], state["best_step"], state["best_val"]
        history, train_seconds = state["history"], state["train_seconds"]
        torch.set_rng_state(state["torch_rng"])

    status, loss_value = "ok", None
    bar = tqdm(
        total=config.max_steps,
        initial=step,
        desc=f"train {data.name}",
        unit="step",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    model.train()
    tic = time.perf_counter()
    while step < config.max_steps:
        micro_batches = (
            batches.batch(step * config.grad_accum + micro) for micro in range(config.grad_accum)
        )
        loss_value = train_step(
            model,
            optimizer,
            micro_batches,
            config.grad_accum,
            device,
            config.precision,
            config.grad_clip,
            loss_fn=objective.loss,
        )
        if not math.isfinite(loss_value):
            status = "diverged"
            break
        scheduler.step()
        step += 1
        bar.update(1)

        if step % config.eval_every == 0 or step == config.max_steps:
            train_seconds += time.perf_counter() - tic
            val = validate("val")
            history.append({"step": step, "train_loss": loss_value, val_key: val})
            if best_val is None or val > best_val:
                best_val, best_step = val, step
                _save_atomically({"model": model.state_dict(), "step": step}, best_path)
            _save_atomically(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": step,
                    "best_step": best_step,
                    "best_val": best_val,
                    "history": history,
                    "train_seconds": train_seconds,
                    "torch_rng": torch.get_rng_state(),
                },
                last_path,
            )
            bar.set_postfix(loss=f"{loss_value:.3f}", val=f"{val:.3f}", best=f"{best_val:.3f}")
            tic = time.perf_counter()
    train_seconds += time.perf_counter() - tic  # steps since the last evaluation (or a break)
    bar.close()

    val_acc = test_acc = None
    if best_path.exists():
        model.load_state_dict(
            torch.load(best_path, map_location=device, weights_only=False)["model"]
        )
        val_acc = validate("val")
        test_acc = validate("test") if objective.reports_test else None
    return TrainResult(
        status=status,
        steps=step,
        best_step=best_step,
        best_val_accuracy=best_val,
        val_accuracy=val_acc,
        test_accuracy=test_acc,
        train_seconds=train_seconds,
        steps_per_second=step / train_seconds if train_seconds > 0 else 0.0,
        final_train_loss=loss_value,
        history=history,
    )
