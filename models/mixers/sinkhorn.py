"""Sparse Sinkhorn attention (Tay, Bahri, Yang, Metzler & Juan, 2020, "Sparse Sinkhorn
Attention").

The sequence is cut into N blocks of b positions. A meta sorting network reads a summary of every
block (the sum of its keys, per head) and scores it against every block: R = W_2 relu(W_1 s + c_1)
+ c_2, an (N, N) matrix per head (W_2 has one output per block up to max_length / b). Sinkhorn
normalisation (alternating row and column log-normalisation, after Gumbel noise in training and a
temperature) turns R into a soft permutation P; the sorted blocks are K' = P K, V' = P V. Each
query block then attends, in one softmax, to its sorted block and to its own block (local).

Causal form (the paper's causal Sinkhorn balancing): block i may only be sorted with blocks
j < i, its summary is its first key (so no later position in the block leaks in), and the column
normalisation of entry (i, j) sums over rows <= i only; the own block is attended causally.

Lengths that are not a multiple of b: the sequence is padded internally to whole blocks. Padded
positions have zero keys and values, are never attended to, do not enter the block summaries,
and blocks without a real position are excluded from the sorting (their rows and columns of P
are zero), so real outputs are the same as without the padding. A sorted slot gets no attention
when none of the blocks mixed into it has a real position at that offset.

Memory is O(L * b) for the scores plus O(N^2) per head for P.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.layers.blocked_attention import BlockedAttention
from models.ops.attention.blocked import MASKED, Blocked, blocked_sdpa, pad_to_multiple


def sinkhorn(
    log_alpha: torch.Tensor, allowed: torch.Tensor, iters: int, causal: bool
) -> torch.Tensor:
    """Soft permutation exp(S(log_alpha)) after `iters` row-then-column log-normalisations.

    log_alpha: (..., N, N) float; allowed: bool, broadcastable (forbidden entries end at 0).
    causal: the column normaliser of entry (i, j) uses rows <= i only. -> (..., N, N)."""
    log_alpha = log_alpha.masked_fill(~allowed, MASKED)
    for _ in range(iters):
        log_alpha = log_alpha - log_alpha.logsumexp(-1, keepdim=True)
        log_alpha = log_alpha.masked_fill(~allowed, MASKED)
        if causal:
            log_alpha = log_alpha - log_alpha.logcumsumexp(-2)
        else:
            log_alpha = log_alpha - log_alpha.logsumexp(-2, keepdim=True)
        # Re-mask: a row or column with no allowed entry would otherwise normalise to 1s.
        log_alpha = log_alpha.masked_fill(~allowed, MASKED)
    return torch.exp(log_alpha).masked_fill(~allowed, 0.0)


class SinkhornAttention(BlockedAttention):
    """Multi-head Sparse Sinkhorn attention.

    block_size: b.  max_length: the longest sequence it will see (the backbone passes it); sizes
    the sorting network's output (one score per block).  sinkhorn_iters: normalisation rounds.
    temperature: divides the scores before normalisation.  Other arguments as SoftmaxAttention.

    forward(x: (B, L, D), mask: (B, L) bool, True = real) -> (B, L, D).
    """

    backend = "torch.sdpa.blocked"  # one fused SDPA call over all query blocks

    def __init__(
        self,
        d_model: int,
        n_heads: int = 8,
        qkv_dim: int | None = None,
        block_size: int = 16,
        max_length: int = 4096,
        sinkhorn_iters: int = 5,
        temperature: float = 0.75,
        dropout: float = 0.0,
        causal: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__(d_model, n_heads, qkv_dim, dropout, causal, bias)
        if block_size < 1 or sinkhorn_iters < 1 or temperature <= 0:
            raise ValueError("need block_size >= 1, sinkhorn_iters >= 1, temperature > 0")
        self.block_size = block_size
        self.sinkhorn_iters = sinkhorn_iters
        self.temperature = temperature
        self.max_blocks = math.ceil(max_length / block_size)
        head_dim = self.qkv.out_features // 3 // n_heads
        # The meta sorting network, shared by the heads: block summary -> a score per block.
        self.sort_net = nn.Sequential(
            nn.Linear(head_dim, head_dim), nn.ReLU(), nn.Linear(head_dim, self.max_blocks)
        )

    def sort_matrix(self, k: torch.Tensor, block_real: torch.Tensor) -> torch.Tensor:
        """The soft block permutation P (B, H, N, N): row i mixes the blocks sorted into slot i.
        k: (B, H, N, W, E) keys, zero at padding; block_real: (B, N) bool."""
        n_blocks = k.shape[2]
        if n_blocks > self.max_blocks:
            raise ValueError(
                f"{n_blocks} blocks of {self.block_size} exceed the max_length this Sinkhorn "
                f"layer was built for ({self.max_blocks} blocks)"
            )
        summary = k[:, :, :, 0] if self.causal else k.sum(3)  # (B, H, N, E)
        scores = self.sort_net(summary)[..., :n_blocks].float()  # (B, H, N, N)
        if self.training:
            uniform = torch.rand_like(scores).clamp(1e-9, 1 - 1e-9)
            scores = scores - torch.log(-torch.log(uniform))  # Gumbel noise
        allowed = block_real[:, :, None] & block_real[:, None, :]  # (B, N, N)
        if self.causal:
            earlier = torch.ones(n_blocks, n_blocks, dtype=torch.bool, device=k.device).tril(-1)
            allowed = allowed & earlier
        return sinkhorn(
            scores / self.temperature, allowed[:, None], self.sinkhorn_iters, self.causal
        )

    def attend(self, q, k, v, mask, x):
        length, width = q.shape[2], self.block_size
        valid = pad_to_multiple(mask, 1, width, False).unflatten(1, (-1, width))  # (B, N, W)
        real = valid[:, None, :, :, None].to(k.dtype)
        q, k, v = (pad_to_multiple(t, 2, width).unflatten(2, (-1, width)) for t in (q, k, v))
        k, v = k * real, v * real  # padded keys and values are exactly zero
        perm = self.sort_matrix(k, valid.any(-1))  # (B, H, N, N)

        sorted_k = torch.einsum("bhij,bhjwe->bhiwe", perm.to(k.dtype), k)
        sorted_v = torch.einsum("bhij,bhjwe->bhiwe", perm.to(v.dtype), v)
        # A sorted slot is attendable where some mixed-in block has a real position.
        sorted_real = torch.einsum("bhij,bjw->bhiw", perm, valid.float()) > 0  # (B, H, N, W)
        own_real = valid[:, None].expand_as(sorted_real)
        if self.causal:
            q_pos = torch.arange(width, device=q.device)
            own = own_real[..., None, :] & (q_pos[None, :] <= q_pos[:, None])  # (B, H, N, W, W)
            allowed = torch.cat([sorted_real[..., None, :].expand_as(own), own], dim=-1)
        else:
            allowed = torch.cat([sorted_real, own_real], dim=-1)[..., None, :]
        keys, values = torch.cat([sorted_k, k], dim=3), torch.cat([sorted_v, v], dim=3)
        blocked = Blocked(q, keys, values, allowed, length)
        return blocked_sdpa(blocked, mask, self.attention_dropout)
