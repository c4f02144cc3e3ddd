"""The shell of the multi-head attention mixers whose pattern is computed blockwise
(models/ops/attention/blocked.py): projections, heads, a pattern-specific `attend`, output."""

from __future__ import annotations

import torch
from torch import nn

from models.layers.projections import attention_projections, merge_heads, split_fused_heads


class BlockedAttention(nn.Module):
    """The shell shared by the sparse mixers: Q/K/V projections (Xavier init, no bias by default,
    as LRA), split into heads, a pattern-specific `attend`, output projection. Parameter names and
    layout match SoftmaxAttention (`qkv`, `out`), so weights copy between them.

    d_model: width D.  n_heads: H.  qkv_dim: total query/key/value width (default D).  dropout: on
    attention probabilities.  causal: position i attends to j <= i only.  bias: projection biases.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        qkv_dim: int | None,
        dropout: float,
        causal: bool,
        bias: bool,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.causal = causal
        self.qkv, self.out = attention_projections(d_model, n_heads, qkv_dim, bias)

    @property
    def attention_dropout(self) -> float:
        return self.dropout if self.training else 0.0

    def split_heads(self, projected: torch.Tensor, parts: int) -> torch.Tensor:
        """(B, L, parts*H*E) -> (parts, B, H, L, E)."""
        return split_fused_heads(projected, parts, self.n_heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split_heads(self.qkv(x), 3)
        return self.out(merge_heads(self.attend(q, k, v, mask, x)))

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor,
        x: torch.Tensor,
    ) -> torch.Tensor:
        """The pattern: q, k, v (B, H, L, E), mask (B, L), x the input (B, L, D) for mixers
        with extra projections -> (B, H, L, E)."""
        raise NotImplementedError
