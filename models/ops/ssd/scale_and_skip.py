"""Mamba-2's input scale and skip around the SSD recurrence, in PyTorch: the drive is dt x and
the output gains D x (models/ops/ssd/__init__.py). The compiled CPU kernel fuses both; the other
forms apply them here, before and after their recurrence."""

from __future__ import annotations

import torch


def scaled(x: torch.Tensor, dt: torch.Tensor | None) -> torch.Tensor:
    """x (b, l, h, p) times dt (b, l, h) per head and step; x itself when dt is None."""
    return x if dt is None else x * dt.unsqueeze(-1)


def with_skip(y: torch.Tensor, x: torch.Tensor, D: torch.Tensor | None) -> torch.Tensor:
    """y + D x for y, x (b, l, h, p) and D (h,); y itself when D is None."""
    return y if D is None else y + x * D[:, None]
