"""Luna attention (Ma, Kong, Wang, Zhou, May, Ma & Zettlemoyer, 2021, "Luna: Linear Unified
Nested Attention").

Two nested softmax attentions through a length-p sequence P:
- pack:   Y_P = Attn(P, X)   (the p rows of P attend to the input; padded keys masked),
- unpack: Y_X = Attn(X, Y_P) (each position attends to the p packed rows),
so the cost is O(L p) instead of O(L^2). P is carried up the stack as in the paper: the first
layer starts from a learned P (p, D), and every layer passes on P + Y_P (the pre-norm form of
the authors' encoder layer, which normalises P before packing, as our blocks normalise X). The
backbone threads it through `forward_carry`; the causal Luna of the paper needs a different,
cumulative pack, so this mixer is bidirectional only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.projections import merge_heads, split_heads


class LunaAttention(nn.Module):
    """Multi-head pack-and-unpack attention.

    d_model: D.  n_heads: H.  qkv_dim: total q/k/v width of both attentions (default D).
    packed_length: p.  dropout: on attention probabilities.  bias: biases in the projections.
    layer_index: the block's depth; only layer 0 owns the initial P (later layers receive it).

    forward_carry(x: (B, L, D), mask: (B, L) bool, True = real, carry: P (B, p, D) or None)
        -> (y (B, L, D), the next layer's P (B, p, D)); None = start from the learned P.
    forward(x, mask) -> (B, L, D): a single layer from the learned P.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        packed_length: int = 256,
        dropout: float = 0.0,
        bias: bool = False,
        layer_index: int = 0,
        n_layers: int = 1,
    ) -> None:
        super().__init__()
        qkv_dim = qkv_dim or d_model
        if qkv_dim % n_heads:
            raise ValueError(f"qkv_dim {qkv_dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        # N(0, D^-1/2), the initialisation of the paper's projected embeddings; one P for the
        # whole stack, so only the first layer holds it.
        self.packed_queries = (
            nn.Parameter(torch.randn(packed_length, d_model) * d_model**-0.5)
            if layer_index == 0
            else None
        )
        self.packed_norm = nn.LayerNorm(d_model)  # pre-norm of the carried P
        self.pack_q = nn.Linear(d_model, qkv_dim, bias=bias)
        self.pack_kv = nn.Linear(d_model, 2 * qkv_dim, bias=bias)
        self.pack_out = nn.Linear(qkv_dim, d_model, bias=bias)
        self.unpack_q = nn.Linear(d_model, qkv_dim, bias=bias)
        self.unpack_kv = nn.Linear(d_model, 2 * qkv_dim, bias=bias)
        self.out = nn.Linear(qkv_dim, d_model, bias=bias)
        for layer in (self.pack_q, self.pack_kv, self.pack_out, self.unpack_q, self.unpack_kv):
            nn.init.xavier_uniform_(layer.weight)
        nn.init.xavier_uniform_(self.out.weight)

    def initial_packed(self, batch: int, dtype: torch.dtype) -> torch.Tensor:
        """The learned P of the first layer, (batch, p, D)."""
        if self.packed_queries is None:
            raise ValueError("a Luna layer with layer_index > 0 needs the P of the layer below")
        return self.packed_queries.to(dtype).expand(batch, -1, -1)

    def pack(self, x: torch.Tensor, mask: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Y_P: (B, p, D), the rows of p (B, p, D) attending to x (B, L, D) over its real
        positions."""
        q = split_heads(self.pack_q(p), self.n_heads)
        k, v = (split_heads(t, self.n_heads) for t in self.pack_kv(x).chunk(2, dim=-1))
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.pack_out(merge_heads(y))

    def forward_carry(
        self, x: torch.Tensor, mask: torch.Tensor, carry: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.initial_packed(x.shape[0], x.dtype) if carry is None else carry
        packed = self.pack(x, mask, self.packed_norm(p))
        q = split_heads(self.unpack_q(x), self.n_heads)
        k, v = (split_heads(t, self.n_heads) for t in self.unpack_kv(packed).chunk(2, dim=-1))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(merge_heads(y)), p + packed  # the residual update of P

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.forward_carry(x, mask, None)[0]
