"""The query/key/value and output projections that every multi-head attention mixer shares, and
the one head layout they all use: a projection of width H*E is H heads of width E, head-major."""

from __future__ import annotations

import torch
from torch import nn


def attention_projections(
    d_model: int, n_heads: int, qkv_dim: int | None = None, bias: bool = False
) -> tuple[nn.Linear, nn.Linear]:
    """(qkv, out): Linear(D, 3 * qkv_dim) and Linear(qkv_dim, D), Xavier-uniform as in LRA, no
    biases by default. qkv_dim (default D) must split evenly into n_heads heads. The same names
    and layout in every mixer let weights copy between them (the exactness tests rely on it)."""
    qkv_dim = qkv_dim or d_model
    if qkv_dim % n_heads:
        raise ValueError(f"qkv_dim {qkv_dim} is not divisible by n_heads {n_heads}")
    qkv = nn.Linear(d_model, 3 * qkv_dim, bias=bias)
    out = nn.Linear(qkv_dim, d_model, bias=bias)
    nn.init.xavier_uniform_(qkv.weight)
    nn.init.xavier_uniform_(out.weight)
    return qkv, out


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, L, H*E) -> (B, H, L, E)."""
    return x.unflatten(-1, (n_heads, -1)).transpose(1, 2)


def split_fused_heads(projected: torch.Tensor, parts: int, n_heads: int) -> torch.Tensor:
    """A fused projection (B, L, parts*H*E), e.g. qkv with parts = 3 -> (parts, B, H, L, E):
    the same as split_heads of each of its `parts` equal chunks."""
    return projected.unflatten(-1, (parts, n_heads, -1)).permute(2, 0, 3, 1, 4)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, E) -> (B, L, H*E), the inverse of split_heads."""
    return x.transpose(1, 2).flatten(2)
