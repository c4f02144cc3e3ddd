"""Mamba's short causal depthwise convolution with its SiLU (the `causal_conv1d` of Mamba's
repository): y[t] = silu(bias + sum_k w[:, k] x[t - (K - 1) + k]) per channel, on channels-last
(B, L, C) inputs, zeros before the first step.

Backends: `reference` (nn.Conv1d's arithmetic, plain PyTorch, any device), `cpu` (a compiled,
vectorised C++ kernel, forward and backward, channels-last, the SiLU fused; built on first use,
passed over with one line where it cannot be built).
"""

from __future__ import annotations

import torch

from models.ops.cpu_build import compiled_cpu_backend
from models.ops.dispatch import Backend, KernelOp

OP = KernelOp(
    "causal_conv1d",
    [
        Backend("reference", "models.ops.causal_conv1d.reference:causal_conv1d_reference"),
        compiled_cpu_backend("models.ops.causal_conv1d.cpu:causal_conv1d_cpu"),
    ],
    auto={"cuda": ("reference",), "cpu": ("cpu", "reference")},
)


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None = "silu",
    mask: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """x: (B, L, C).  weight: (C, K) (nn.Conv1d's (C, 1, K) without its middle axis).  bias:
    (C,) or None.  activation: 'silu' or None.  mask: (B, L) bool or None: the output is zeroed
    where it is False (padding), fused on CPU.  backend: None = the run's kernel settings.
    Returns (B, L, C) in x's dtype."""
    return OP(x, weight, bias, activation, mask, backend=backend)
