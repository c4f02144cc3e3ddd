"""Full multi-head softmax attention (Vaswani et al., 2017, "Attention Is All You Need"), the
LRA baseline, computed by torch's fused `scaled_dot_product_attention`, or with the L x L scores
materialised as LRA's Flax code did (the speed protocol's quadratic-memory baseline)."""

from __future__ import annotations

import torch
from torch import nn

from models.layers.additive_mask import additive_mask
from models.layers.dropout import dropout as dropout_layer
from models.layers.projections import attention_projections, merge_heads, split_fused_heads
from models.ops.attention import AttentionPattern, attention


class SoftmaxAttention(nn.Module):
    """Multi-head self-attention with a key padding mask.

    d_model: width D.  n_heads: H.  qkv_dim: total width of queries/keys/values (LRA's qkv_dim;
    default D), split into H heads.  dropout: on attention probabilities.  causal: position i
    attends to j <= i only.  bias: biases in the projections (LRA uses none).
    materialize_scores: compute softmax(QK^T/sqrt(d)) as an explicit (B, H, L, L) tensor, as the
    LRA paper's implementation did, instead of the fused kernel. The result is the same; the
    memory is not: fused kernels (flash attention, also on CPU) never store the L x L matrix, so
    their memory grows linearly in L. The speed protocol measures both.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D). Padded keys get zero
    weight, so real positions do not depend on padding.
    """

    ops = ("attention",)

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = False,
        materialize_scores: bool = False,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.materialize_scores = materialize_scores
        # The explicit form is the speed protocol's quadratic baseline, not a form of the op.
        self.backend = "torch.explicit_scores" if materialize_scores else None
        self.dropout = dropout
        self.causal = causal
        self.qkv, self.out = attention_projections(d_model, n_heads, qkv_dim, bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        q, k, v = split_fused_heads(self.qkv(x), 3, self.n_heads)  # 3 x (B, H, L, Dq/H)
        dropout = self.dropout if self.training else 0.0
        if self.materialize_scores:
            allowed = mask[:, None, None, :]  # (B, 1, 1, L): keys a query may attend to
            if self.causal:
                causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
                allowed = allowed & causal
            y = explicit_attention(q, k, v, allowed, dropout)
        else:
            y = attention(q, k, v, mask, AttentionPattern(causal=self.causal), dropout)
        return self.out(merge_heads(y))


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, dropout: float
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v with the scores stored: q, k, v (B, H, L, d); allowed a bool
    mask broadcastable to (B, H, L, L), True = may attend -> (B, H, L, d). A query with no
    allowed key gets zeros (the fused kernel returns NaN there; padded queries are discarded).

    Not `models.ops.attention.blocked.attend`: that one also takes a log-sum-exp of the scores and runs the
    softmax in float32, work and memory that a speed baseline of LRA's attention must not add."""
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, L, L)
    scores = scores + additive_mask(allowed, scores.dtype)
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    weights = dropout_layer(weights, dropout, training=dropout > 0)
    return weights @ v
