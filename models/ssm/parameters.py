"""Parameter helpers shared by the state-space kernels."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.parameter_tags import tag


def ssm_parameter(value: torch.Tensor, lr: float) -> nn.Parameter:
    """A state-space parameter (A, B, dt, ...): trained with its own learning rate and no weight
    decay, as S4, S5 and the LRU train them."""
    return tag(nn.Parameter(value), lr=lr, weight_decay=0.0)


def log_uniform(shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    """log(x) with x log-uniform in [low, high]: the step-size initialisation of S4 and S5."""
    return torch.rand(shape) * (math.log(high) - math.log(low)) + math.log(low)


def as_complex(param: torch.Tensor) -> torch.Tensor:
    """A complex view of a real (..., 2) parameter. Complex values are stored as (real, imag)
    pairs, as the S4 and DSS code stores them, so the optimiser sees two real numbers."""
    return torch.view_as_complex(param)
