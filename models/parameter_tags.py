"""Optimizer settings carried by a parameter (the mamba / S4 convention): the one way a model
says that a parameter trains with its own learning rate or without weight decay.
lra_bench.optim.parameter_groups reads the tag; nothing else does."""

from __future__ import annotations

from torch import nn

TAG = "_optim"  # the attribute parameter_groups reads: {"lr": ..., "weight_decay": ...}


def tag(param: nn.Parameter, lr: float | None = None, weight_decay: float | None = None):
    """Gives `param` its own learning rate and/or weight decay (None: the run's); returns it.
    State-space parameters: tag(p, lr=ssm_lr, weight_decay=0.0)."""
    settings = dict(getattr(param, TAG, {}))
    if lr is not None:
        settings["lr"] = lr
    if weight_decay is not None:
        settings["weight_decay"] = weight_decay
    setattr(param, TAG, settings)
    return param


def optimizer_settings(param: nn.Parameter) -> dict:
    """The settings `tag` gave `param` ({} if none)."""
    return dict(getattr(param, TAG, {}))
