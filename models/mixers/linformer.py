"""Linformer attention (Wang, Li, Khabsa, Fang & Ma, 2020, "Linformer: Self-Attention with Linear
Complexity").

Keys and values are projected along the sequence to k rows before attention:
softmax(Q (E K)^T / sqrt(d)) (F V), with learned E, F of shape (k, max_length), so the
attention matrix is (L, k) instead of (L, L). A batch shorter than max_length uses the first L
columns (as the LRA implementation slices its kernel). Padded keys and values are zeroed
before the projection, so they add nothing to the k projected rows; the projection cannot be
causal, since every projected row mixes the whole sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.projections import attention_projections, merge_heads, split_heads


class LinformerAttention(nn.Module):
    """Multi-head Linformer attention.

    d_model: D.  max_length: longest sequence (columns of E and F).  n_heads: H.
    qkv_dim: total q/k/v width (default D).  projected_length: k.  share_kv: one projection
    for keys and values (E = F, the "key-value sharing" of the paper, and LRA's setting); the
    projection is shared by the heads of a layer ("headwise sharing").  dropout: on attention
    probabilities.  bias: biases in the q/k/v/out projections.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D), L <= max_length.
    """

    def __init__(
        self,
        d_model: int,
        max_length: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        projected_length: int = 256,
        share_kv: bool = True,
        dropout: float = 0.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.max_length = max_length
        self.dropout = dropout
        self.qkv, self.out = attention_projections(d_model, n_heads, qkv_dim, bias)
        # LeCun-normal over the sequence axis (LRA's kernel init): a projected row of a full
        # length sequence keeps the scale of a single key.
        std = max_length**-0.5
        self.key_projection = nn.Parameter(torch.randn(projected_length, max_length) * std)
        self.value_projection = (
            None if share_kv else nn.Parameter(torch.randn(projected_length, max_length) * std)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.max_length:
            raise ValueError(f"sequence length {length} exceeds max_length {self.max_length}")
        q, k, v = (split_heads(t, self.n_heads) for t in self.qkv(x).chunk(3, dim=-1))
        real = mask[:, None, :, None].to(k.dtype)
        e = self.key_projection[:, :length].to(k.dtype)
        f = e if self.value_projection is None else self.value_projection[:, :length].to(v.dtype)
        projected_k = torch.einsum("kl,bhld->bhkd", e, k * real)  # (B, H, k, d)
        projected_v = torch.einsum("kl,bhld->bhkd", f, v * real)
        y = F.scaled_dot_product_attention(
            q, projected_k, projected_v, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(merge_heads(y))
