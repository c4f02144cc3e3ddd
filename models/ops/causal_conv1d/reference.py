"""Mamba's short causal depthwise convolution (and its SiLU) in plain PyTorch: nn.Conv1d's
arithmetic, the oracle of the `causal_conv1d` op and its form on GPUs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = (None, "silu")


def check_activation(activation: str | None) -> str | None:
    """activation itself, or a ValueError naming it when the op has no such activation."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"causal_conv1d: activation {activation!r}; choose from {ACTIVATIONS}")
    return activation


def causal_conv1d_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str | None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """x: (B, L, C); weight: (C, K); bias: (C,) or None; activation: None | 'silu'; mask: (B, L)
    bool or None. Returns (B, L, C): y[t] = act(bias + sum_k weight[:, k] x[t - (K - 1) + k]),
    zeros before 0, and y = 0 where mask is False."""
    check_activation(activation)
    length, width = x.shape[1], weight.shape[1]
    y = F.conv1d(x.transpose(1, 2), weight.unsqueeze(1), bias, padding=width - 1, groups=x.shape[2])
    y = y[..., :length].transpose(1, 2)
    y = F.silu(y) if activation == "silu" else y
    return y if mask is None else y * mask[..., None].to(y.dtype)
