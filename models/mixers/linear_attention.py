"""Linear Transformer attention (Katharopoulos, Vyas, Pappas & Fleuret, 2020, "Transformers are
RNNs: Fast Autoregressive Transformers with Linear Attention").

softmax(q k^T) is replaced by the kernel phi(q) . phi(k) with phi(x) = elu(x) + 1, which makes
attention linear in L: bidirectional through one (E, E) state per head, causal through chunked
prefix sums of that state (models/layers/kernel_attention.py).
"""

from __future__ import annotations

import torch
from torch import nn

from models.layers.kernel_attention import (
    elu_feature_map,
    kernelised_attention,
)
from models.layers.projections import attention_projections, merge_heads, split_heads


class LinearAttention(nn.Module):
    """Multi-head linear attention with the elu(x)+1 feature map.

    d_model: D.  n_heads: H.  qkv_dim: total width of queries/keys/values (default D).
    causal: position i attends to j <= i only.  chunk_size: chunk length of the causal form.
    eps: floor of the normaliser (the reference implementation adds 1e-6).  bias: biases in
    the projections.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D). Padded keys get zero
    features, so real positions do not depend on padding.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        causal: bool = False,
        chunk_size: int = 128,
        eps: float = 1e-6,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.causal = causal
        self.chunk_size = chunk_size
        self.eps = eps
        self.qkv, self.out = attention_projections(d_model, n_heads, qkv_dim, bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.n_heads) for t in self.qkv(x).chunk(3, dim=-1))
        real = mask[:, None, :, None].to(x.dtype)  # (B, 1, L, 1)
        # elu(0) + 1 = 1, so padded keys must be zeroed after the feature map, not before.
        y = kernelised_attention(
            elu_feature_map(q),
            elu_feature_map(k) * real,
            v * real,
            self.causal,
            self.eps,
            self.chunk_size,
        )
        return self.out(merge_heads(y))
