"""The query/key/value and output projections that every multi-head attention mixer shares."""

from __future__ import annotations

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
