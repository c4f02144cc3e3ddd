"""AdamW with parameter groups, and the learning-rate schedules LRA and its successors use.

A parameter may carry its own settings (models/parameter_tags.py: state-space parameters train
with their own learning rate and no weight decay, learned position tables without decay).
Norm weights and biases (any parameter with fewer than 2 dimensions) are never decayed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from models.parameter_tags import optimizer_settings


def parameter_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Groups of parameters sharing (lr, weight_decay), in a stable order."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    names: dict[tuple[float, float], list[str]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        settings = {"lr": lr, "weight_decay": weight_decay}
        if param.ndim < 2:
            settings["weight_decay"] = 0.0
        settings.update(optimizer_settings(param))
        key = (float(settings["lr"]), float(settings["weight_decay"]))
        groups.setdefault(key, []).append(param)
        names.setdefault(key, []).append(name)
    return [
        {"params": params, "lr": key[0], "weight_decay": key[1], "names": names[key]}
        for key, params in groups.items()
    ]


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-9,
) -> torch.optim.AdamW:
    groups = parameter_groups(model, lr, weight_decay)
    return torch.optim.AdamW(
        [{k: v for k, v in g.items() if k != "names"} for g in groups], betas=betas, eps=eps
    )


def constant(step: int, warmup: int, total: int) -> float:
    """1 after a linear warmup."""
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1 over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_linear(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1 over `warmup` steps, then linear decay to 0 at `total` (fairseq's
    `linear_decay`, Mega's LRA schedule)."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, 1.0 - (step - warmup) / max(1, total - warmup))


def rsqrt(step: int, warmup: int, total: int) -> float:
    """LRA's `constant * linear_warmup * rsqrt_decay`: min(1, s/w) / sqrt(max(s, w)), with s
    counted from 1. The factor multiplies the base rate, so the peak is base / sqrt(warmup)
    (0.05 / sqrt(1000) = 1.58e-3 for LRA ListOps)."""
    s = step + 1
    w = max(1, warmup)
    return min(1.0, s / w) / math.sqrt(max(s, w))


SCHEDULES: dict[str, Callable[[int, int, int], float]] = {
    "constant": constant,
    "cosine": warmup_cosine,
    "linear": warmup_linear,
    "rsqrt": rsqrt,
}


def build_scheduler(
    optimizer: torch.optim.Optimizer, name: str, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    if name not in SCHEDULES:
        raise ValueError(f"trainer.schedule={name!r}; choose from {sorted(SCHEDULES)}")
    factor = SCHEDULES[name]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step, warmup, total))
