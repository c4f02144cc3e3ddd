"""The one training loop: AdamW + schedule, gradient accumulation and clipping, bf16 autocast on
CUDA, evaluation every N steps, the best validation checkpoint kept, then test on that checkpoint.
What it optimises is an objective (lra_bench/objectives.py): classification for the supervised
run, masked or next-element modelling for self-pretraining; the loop is the same.

The run directory holds the checkpoints (lra_bench/checkpoints.py): `last.pt` (everything
needed to resume, written every `checkpoint_every` steps, at each evaluation, and on SIGTERM /
SIGUSR1), `previous.pt` (the state before it) and `best.pt` (the best-validation weights). A run
that resumes goes on bit for bit as if it had never stopped.

Two seams lead out of the loop: `world` (lra_bench/distributed.py), the processes training one
run together under torchrun or Slurm (each takes its share of every batch; rank 0 alone writes
checkpoints and shows progress), and `metrics` (lra_bench/metrics_log.py), told of every step
and every evaluation, which it turns into metrics.csv and, with logger=wandb, W&B.
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

from lra_bench.checkpoints import Checkpoints, copy_weights
from lra_bench.distributed import World
from lra_bench.metrics_log import MetricsLog, gradient_norm
from lra_bench.objectives import CLASSIFICATION, Objective, classification_loss
from lra_bench.optim import SCHEDULES, build_optimizer, build_scheduler
from lra_bench.preemption import Preempted, StopSignals
from tasks.base import Split, TaskData

PRECISIONS = ("auto", "fp32", "bf16")


def _setting(default, **allowed):
    """A trainer field with what `lra_bench/settings_check.py` allows for it: at_least / above
    (a bound), choices, each_within (an inclusive-exclusive range for every item)."""
    return field(default=default, metadata=allowed)


@dataclass
class TrainerConfig:
    """Mirrors `trainer:` in conf/config.yaml, where every field is documented. The annotations
    and the bounds here are what the settings check holds every run to before it starts."""

    batch_size: int = _setting(32, at_least=1)
    grad_accum: int = _setting(1, at_least=1)
    max_steps: int = _setting(1000, at_least=1)
    eval_every: int = _setting(100, at_least=1)
    eval_batch_size: int = _setting(128, at_least=1)
    lr: float = _setting(1e-3, above=0.0)
    weight_decay: float = _setting(0.0, at_least=0.0)
    betas: tuple[float, float] = _setting((0.9, 0.98), each_within=(0.0, 1.0))
    eps: float = _setting(1e-9, above=0.0)
    schedule: str = _setting("cosine", choices=tuple(SCHEDULES))
    warmup_steps: int = _setting(0, at_least=0)
    grad_clip: float | None = _setting(None, above=0.0)
    precision: str = _setting("auto", choices=PRECISIONS)  # auto: bf16 on CUDA, else fp32

    def evaluates_after(self, step: int) -> bool:
        """Whether the loop evaluates after `step`: every eval_every steps, and the last."""
        return step % self.eval_every == 0 or step == self.max_steps


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
    # Wall time of earlier processes of this run (up to their last checkpoint), and one entry
    # per time a process took over from an earlier one.
    earlier_wall_seconds: float = 0.0
    resumes: list[dict] = field(default_factory=list)


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
    reduce: Callable[[float], float] | None = None,
) -> float:
    """One optimizer step, the same in training and in the speed protocol: forward and backward
    over `accumulate` micro-batches, each one's loss `loss_fn(model, batch, device)` (by default
    the cross-entropy of (tokens (B, L) or (B, 2, L), lengths, labels (B,))); clipping; the
    optimizer step. Returns the mean loss; when it is not finite no step is taken (the caller
    decides what that means).

    A DistributedDataParallel model averages the gradients of the ranks after the last
    micro-batch only (`no_sync` before it); `reduce` (World.mean) then makes the loss the mean
    over the ranks, so that every rank takes the same decision on a non-finite one."""
    optimizer.zero_grad(set_to_none=True)
    loss_sum = 0.0
    skip_sync = getattr(model, "no_sync", None)
    for index, batch in enumerate(micro_batches):
        local = skip_sync() if skip_sync and index < accumulate - 1 else contextlib.nullcontext()
        with local:
            with autocast_context(device, precision):
                loss = loss_fn(model, batch, device)
            (loss / accumulate).backward()
        loss_sum += loss.item()
    loss_value = loss_sum / accumulate
    if reduce is not None:
        loss_value = reduce(loss_value)
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
    world: World | None = None,
    progress: str | None = None,
) -> float:
    """The objective's score of `model` on every example of `split` (accuracy by default), in
    eval mode; with several ranks they share the work (see the objective). `progress`: a bar
    with that name (rank 0)."""
    was_training = model.training
    model.eval()
    with autocast_context(device, precision):
        score = objective.score(model, split, batch_size, device, world or World(), progress)
    model.train(was_training)
    return score


class Stopwatch:
    """Training time without evaluations and checkpoint writes: `lap()` returns the seconds since
    the last `restart()` (or creation)."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self._since = time.perf_counter()

    def lap(self) -> float:
        return time.perf_counter() - self._since


def train_and_evaluate(
    model: nn.Module,
    data: TaskData,
    config: TrainerConfig,
    run_dir: Path,
    device: torch.device,
    seed: int,
    progress: bool = True,
    checkpoint_every: int = 0,
    started: float | None = None,
    log: Callable[[str], None] = print,
    objective: Objective = CLASSIFICATION,
    world: World | None = None,
    metrics: MetricsLog | None = None,
) -> TrainResult:
    """Trains `model` on data.splits['train'] for `objective`, selects on its score on 'val'
    (TrainResult's `*_val_accuracy` hold that score), reports 'test' when the objective does.

    Resumes from the run's checkpoint when there is one. checkpoint_every: steps between
    checkpoints besides those at evaluations (0: only at evaluations). started: when this
    process began the run (time.time()), for the wall time a checkpoint carries. A SIGTERM ends
    training with a checkpoint and `Preempted`. world: this process among those training the
    run together (default: the only one). metrics: told of every step and evaluation."""
    started = time.time() if started is None else started
    world = world or World()
    model.to(device)
    optimizer = build_optimizer(
        model, config.lr, config.weight_decay, tuple(config.betas), config.eps
    )
    scheduler = build_scheduler(optimizer, config.schedule, config.warmup_steps, config.max_steps)
    micro_batch, remainder = divmod(config.batch_size, config.grad_accum)
    if remainder:  # the settings check refuses this before a run starts; kept for direct callers
        raise ValueError(
            f"trainer.batch_size={config.batch_size} is not divisible by "
            f"trainer.grad_accum={config.grad_accum}"
        )
    world.check_batch(micro_batch)
    batches = objective.train_batches(data.splits["train"], micro_batch, seed)
    val_key = f"val_{objective.metric}"

    def validate(split: str, bar_name: str) -> float:
        return evaluate(
            model,
            data.splits[split],
            config.eval_batch_size,
            device,
            config.precision,
            objective,
            world,
            progress=bar_name if progress else None,
        )

    checkpoints = Checkpoints(run_dir, model, optimizer, scheduler, device, config.max_steps)
    # Rank 0 resumes first: it alone sets a damaged checkpoint aside; the others then read
    # what it left.
    resumed = checkpoints.resume() if world.is_main else None
    world.barrier()
    resumed = resumed or checkpoints.resume()
    for message in resumed.messages if world.is_main else ():
        log(message)
    state, best_weights = resumed.progress, resumed.best_weights
    earlier_wall = state.wall_seconds
    trained = world.wrap(model, device)  # after the resume: DDP starts from rank 0's weights
    if metrics is not None:
        metrics.start(state.step)

    def save_checkpoint() -> None:
        state.wall_seconds = earlier_wall + (time.time() - started)
        if world.is_main:
            checkpoints.save(state, best_weights)

    def evaluate_and_keep_best(loss_value: float) -> None:
        nonlocal best_weights
        val = validate("val", "evaluate val")
        state.history.append({"step": state.step, "train_loss": loss_value, val_key: val})
        if metrics is not None:
            metrics.evaluation(state.step, val)
        if state.best_val is None or val > state.best_val:
            state.best_val, state.best_step = val, state.step
            best_weights = copy_weights(model)
            if world.is_main:
                checkpoints.save_best(best_weights, state.step)
        bar.set_postfix(loss=f"{loss_value:.3f}", val=f"{val:.3f}", best=f"{state.best_val:.3f}")

    status = "ok"
    bar = tqdm(
        total=config.max_steps,
        initial=state.step,
        desc=f"train {data.name}",
        unit="step",
        disable=not progress or not world.is_main,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    model.train()
    watch = Stopwatch()
    with StopSignals() as signals:
        while state.step < config.max_steps:
            micro_batches = (
                batches.batch(state.step * config.grad_accum + micro, world.rank, world.size)
                for micro in range(config.grad_accum)
            )
            world.seed_step(seed, state.step)
            lr = optimizer.param_groups[0]["lr"]  # the rate this step takes
            tic = time.perf_counter()
            loss_value = train_step(
                trained,
                optimizer,
                micro_batches,
                config.grad_accum,
                device,
                config.precision,
                config.grad_clip,
                loss_fn=objective.loss,
                reduce=world.mean if world.distributed else None,
            )
            if not math.isfinite(loss_value):
                status, state.last_loss = "diverged", loss_value
                break
            scheduler.step()
            state.step += 1
            state.last_loss = loss_value
            bar.update(1)
            if metrics is not None:
                metrics.step(
                    state.step,
                    loss_value,
                    lr,
                    time.perf_counter() - tic,
                    grad_norm=lambda: gradient_norm(model),
                )

            # A signal reaches the ranks at different steps: they act on it together.
            stop_signal, checkpoint_requested = world.maximum(
                signals.stop_signal or 0, int(signals.checkpoint_requested)
            )
            evaluate_now = config.evaluates_after(state.step)
            checkpoint_now = (
                evaluate_now
                or (checkpoint_every > 0 and state.step % checkpoint_every == 0)
                or checkpoint_requested
                or stop_signal
            )
            if not checkpoint_now:
                continue
            state.train_seconds += watch.lap()  # evaluations and checkpoints are not training
            if evaluate_now:
                evaluate_and_keep_best(loss_value)
            save_checkpoint()
            signals.checkpoint_requested = False
            if stop_signal:
                bar.close()
                raise Preempted(stop_signal, state.step)
            watch.restart()
    state.train_seconds += watch.lap()  # steps since the last checkpoint (or a break)
    bar.close()

    val_acc = test_acc = None
    if best_weights is not None:
        model.load_state_dict(best_weights)
        val_acc = validate("val", "evaluate val (best step)")
        test_acc = validate("test", "evaluate test (best step)") if objective.reports_test else None
    return TrainResult(
        status=status,
        steps=state.step,
        best_step=state.best_step,
        best_val_accuracy=state.best_val,
        val_accuracy=val_acc,
        test_accuracy=test_acc,
        train_seconds=state.train_seconds,
        steps_per_second=state.step / state.train_seconds if state.train_seconds > 0 else 0.0,
        final_train_loss=state.last_loss,
        history=state.history,
        earlier_wall_seconds=earlier_wall,
        resumes=state.resumes,
    )
