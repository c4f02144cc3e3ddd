"""Position encodings added to token embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.parameter_tags import tag


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim) fixed sinusoidal encodings (Vaswani et al., 2017), sin in the even columns
    and cos in the odd ones, as the LRA Transformer uses."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class SinusoidalPositions(nn.Module):
    """Adds fixed sinusoidal encodings. forward(x: (B, L, D)) -> (B, L, D), L <= max_length."""

    def __init__(self, max_length: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoid_table(max_length, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]].to(x.dtype)


class LearnedPositions(nn.Module):
    """Adds a learned (max_length, D) table, initialised N(0, 0.02) as in LRA's `learn_pos_emb`.
    forward(x: (B, L, D)) -> (B, L, D)."""

    def __init__(self, max_length: int, d_model: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(max_length, d_model) * 0.02)
        tag(self.table, weight_decay=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]]


class NoPositions(nn.Module):
    """For mixers that encode order themselves (state-space models, convolutions)."""

    def __init__(self, max_length: int, d_model: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


POSITIONS = {"sinusoidal": SinusoidalPositions, "learned": LearnedPositions, "none": NoPositions}
