"""Reformer's LSH attention (Kitaev, Kaiser & Levskaya, 2020, "Reformer: The Efficient
Transformer").

Queries and keys share one projection; a key is its query scaled to unit length. Per hashing
round, angular LSH (a random rotation R, bucket = argmax[xR; -xR]) puts every position in one of
n_buckets buckets; positions are sorted by (bucket, position) and cut into chunks; each chunk
attends to itself and the previous chunk, only to keys in the query's bucket, and a position
attends to itself only when nothing else is available (its score is lowered by 1e5). The rounds
are combined with weights exp(lse_r - logsumexp_r lse_r), and each (i, j) score is lowered by
log N_ij, N_ij = the number of rounds in which j is in i's set, which makes the result the exact
softmax over the union of the rounds' sets (the paper's multi-round formula).

Padding is exact: padded positions get their own bucket (n_buckets), which sorts after every real
one, and are masked as keys, so real positions hash, sort and chunk exactly as without padding.
Rotations are redrawn at every training forward and fixed (a buffer) in eval mode.

Memory is O(n_hashes * L * chunk_size). The causal form masks j > i; as in the paper, which keys
share a query's chunk still depends on how later positions hash (the pattern, not the values).
"""

from __future__ import annotations

import torch
from torch import nn

from models.ops.attention.blocked import attend, neighbour_blocks, pad_to_multiple
from models.ops.lsh_bias import lsh_bias
from models.ops.lsh_bias.reference import SELF_PENALTY

__all__ = ["SELF_PENALTY", "LSHAttention"]


class LSHAttention(nn.Module):
    """Multi-head LSH attention with shared query/key projections.

    d_model: width D.  n_heads: H.  qkv_dim: total query/key and value width (default D).
    n_buckets: buckets per round (even; about L / chunk_size makes a bucket about a chunk long).
    n_hashes: hashing rounds.  chunk_size: positions per chunk.  dropout: on attention
    probabilities.  causal: j <= i.  bias: projection biases.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    backend = "torch.lsh"
    ops = ("lsh_bias",)  # the pairs' additive bias

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        n_buckets: int = 32,
        n_hashes: int = 2,
        chunk_size: int = 64,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        qkv_dim = qkv_dim or d_model
        if qkv_dim % n_heads:
            raise ValueError(f"qkv_dim {qkv_dim} is not divisible by n_heads {n_heads}")
        if n_buckets < 2 or n_buckets % 2:
            raise ValueError(f"n_buckets must be even and >= 2, got {n_buckets}")
        if n_hashes < 1 or chunk_size < 1:
            raise ValueError("need n_hashes >= 1 and chunk_size >= 1")
        self.n_heads = n_heads
        self.n_buckets = n_buckets
        self.n_hashes = n_hashes
        self.chunk_size = chunk_size
        self.dropout = dropout
        self.causal = causal
        self.qk = nn.Linear(d_model, qkv_dim, bias=bias)
        self.v = nn.Linear(d_model, qkv_dim, bias=bias)
        self.out = nn.Linear(qkv_dim, d_model, bias=bias)
        for linear in (self.qk, self.v, self.out):
            nn.init.xavier_uniform_(linear.weight)
        head_dim = qkv_dim // n_heads
        # Eval-mode rotations (H, E, rounds, n_buckets / 2); persistent so checkpoints keep them.
        self.register_buffer("rotations", torch.randn(n_heads, head_dim, n_hashes, n_buckets // 2))

    def buckets(
        self, qk: torch.Tensor, mask: torch.Tensor, rotations: torch.Tensor
    ) -> torch.Tensor:
        """Bucket of every position per round: qk (B, H, L, E), mask (B, L), rotations
        (H, E, R, n_buckets/2) -> (B, H, R, L) long; padded positions get bucket n_buckets."""
        with torch.autocast(qk.device.type, enabled=False):
            rotated = torch.einsum("bhle,herk->bhrlk", qk.detach().float(), rotations.float())
        buckets = torch.cat([rotated, -rotated], dim=-1).argmax(-1)
        return buckets.masked_fill(~mask[:, None, None, :], self.n_buckets)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        # Shared QK in float32 even under autocast: the hash is discontinuous in it, and bf16
        # rounding would move positions across buckets (the attention itself still autocasts).
        with torch.autocast(x.device.type, enabled=False):
            qk = self.qk(x.float()).view(batch, length, self.n_heads, -1).transpose(1, 2)
        v = self.v(x).view(batch, length, self.n_heads, -1).transpose(1, 2)
        rotations = torch.randn_like(self.rotations) if self.training else self.rotations
        y = self.lsh_attend(qk, v, mask, rotations)
        return self.out(y.transpose(1, 2).reshape(batch, length, -1))

    def lsh_attend(
        self, qk: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, rotations: torch.Tensor
    ) -> torch.Tensor:
        """qk, v: (B, H, L, E); mask: (B, L) -> (B, H, L, E)."""
        length, chunk = qk.shape[2], self.chunk_size
        qk, v = (pad_to_multiple(t, 2, chunk) for t in (qk, v))
        mask = pad_to_multiple(mask, 1, chunk, False)
        batch, heads, padded, dim = qk.shape
        rounds, n_chunks = self.n_hashes, padded // chunk
        buckets = self.buckets(qk, mask, rotations)  # (B, H, R, L)

        # Sort each round by (bucket, position); `rank` is each position's place in the order.
        positions = torch.arange(padded, device=qk.device)
        order = (buckets * padded + positions).argsort(-1)  # (B, H, R, L)
        rank = order.argsort(-1)

        def sort(t: torch.Tensor) -> torch.Tensor:  # (B, H, L, E) -> (B, H, R, N, W, E)
            index = order.flatten(2)[..., None].expand(-1, -1, -1, t.shape[-1])
            return t.gather(2, index).view(batch, heads, rounds, n_chunks, chunk, -1)

        keys = qk * torch.rsqrt(qk.pow(2).mean(-1, keepdim=True) + 1e-6)  # |k| = sqrt(E)
        sorted_q, sorted_k, sorted_v = sort(qk), sort(keys), sort(v)
        # Keys: own chunk and the previous one (none before the first).
        sorted_k = neighbour_blocks(sorted_k, 3, 1, 0)
        sorted_v = neighbour_blocks(sorted_v, 3, 1, 0)

        # Scored pairs are (B, H, R, N, W queries, 2W keys). Everything about a pair that is not
        # its score is one additive bias (no gradient; the lsh_bias op): -log N_ij, the self
        # penalty, and MASKED at forbidden pairs (s + MASKED == MASKED in float32), so that
        # attend adds it once instead of masking the scores (a copy forward and backward).
        bias = lsh_bias(buckets, order, self.n_buckets, chunk, self.causal)
        out, lse = attend(
            sorted_q, sorted_k, sorted_v, None, bias, self.dropout if self.training else 0.0
        )

        # Unsort each round, then weight the rounds by their share of the total softmax mass.
        out = out.flatten(3, 4).gather(3, rank[..., None].expand(-1, -1, -1, -1, dim))
        lse = lse.flatten(3, 4).gather(3, rank)  # (B, H, R, L)
        weights = torch.softmax(lse, dim=2).unsqueeze(-1).to(out.dtype)
        return (out * weights).sum(2)[:, :, :length]
