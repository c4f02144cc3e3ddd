"""Luna attention (Ma, Kong, Wang, Zhou, May, Ma & Zettlemoyer, 2021, "Luna: Linear Unified
Nested Attention").

Two nested softmax attentions through a length-p sequence P:
- pack:   Y_P = Attn(P, X)   (the p rows of P attend to the input; padded keys masked),
- unpack: Y_X = Attn(X, Y_P) (each position attends to the p packed rows),
so the cost is O(L p) instead of O(L^2).

Choice for this interface: in the paper each layer also returns LayerNorm(Y_P + P) as the next
layer's P, so the packed memory is carried up the stack. A mixer here maps (B, L, D) to
(B, L, D) and layers do not see each other, so each layer has its own learned P (p, D) and
nothing is carried. This deviates from the paper's Luna-256 of the LRA tables, which carries
P; numbers from this mixer are for the per-layer form. The causal Luna of the paper needs a
different, cumulative pack; this mixer is bidirectional only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.mixers.kernel_attention import merge_heads, split_heads


class LunaAttention(nn.Module):
    """Multi-head pack-and-unpack attention.

    d_model: D.  n_heads: H.  qkv_dim: total q/k/v width of both attentions (default D).
    packed_length: p.  dropout: on attention probabilities.  bias: biases in the projections.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        packed_length: int = 256,
        dropout: float = 0.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        qkv_dim = qkv_dim or d_model
        if qkv_dim % n_heads:
            raise ValueError(f"qkv_dim {qkv_dim} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        # N(0, D^-1/2), the initialisation of the paper's projected embeddings.
        self.packed_queries = nn.Parameter(torch.randn(packed_length, d_model) * d_model**-0.5)
        self.pack_q = nn.Linear(d_model, qkv_dim, bias=bias)
        self.pack_kv = nn.Linear(d_model, 2 * qkv_dim, bias=bias)
        self.pack_out = nn.Linear(qkv_dim, d_model, bias=bias)
        self.unpack_q = nn.Linear(d_model, qkv_dim, bias=bias)
        self.unpack_kv = nn.Linear(d_model, 2 * qkv_dim, bias=bias)
        self.out = nn.Linear(qkv_dim, d_model, bias=bias)
        for layer in (self.pack_q, self.pack_kv, self.pack_out, self.unpack_q, self.unpack_kv):
            nn.init.xavier_uniform_(layer.weight)
        nn.init.xavier_uniform_(self.out.weight)

    def pack(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Y_P: (B, p, D), the learned P attending to x (B, L, D) over its real positions."""
        batch = x.shape[0]
        p = self.packed_queries.to(x.dtype).expand(batch, -1, -1)
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

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        packed = self.pack(x, mask)
        q = split_heads(self.unpack_q(x), self.n_heads)
        k, v = (split_heads(t, self.n_heads) for t in self.unpack_kv(packed).chunk(2, dim=-1))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(merge_heads(y))
