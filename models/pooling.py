"""Pooling a (B, L, D) sequence into (B, D) features, ignoring padding."""

from __future__ import annotations

import torch


def pool_cls(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first position (the prepended [CLS] token). x: (B, L, D), mask: (B, L) -> (B, D)."""
    return x[:, 0]


def pool_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real positions only. x: (B, L, D), mask: (B, L) bool -> (B, D)."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def pool_last(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last real position of each row (for causal mixers). x: (B, L, D) -> (B, D)."""
    last = mask.long().sum(1).clamp_min(1) - 1
    return x[torch.arange(x.shape[0], device=x.device), last]


POOLING = {"cls": pool_cls, "mean": pool_mean, "last": pool_last}
