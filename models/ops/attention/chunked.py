"""The attention op in PyTorch without an (L, L) matrix: torch's fused
`scaled_dot_product_attention` for the full pattern (flash or memory-efficient kernels, on CPU
too), and for windows and blocks one fused call over query blocks that gather only their keys
(models/ops/attention/blocked.py), so memory is O(L * keys per query).

Axis letters: B batch, H heads, L length, E head width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.ops.attention.blocked import (
    blocked_sdpa,
    neighbour_blocks_of,
    window_blocks_of,
)
from models.ops.attention.pattern import FULL, AttentionPattern


def attention_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_valid: torch.Tensor,
    pattern: AttentionPattern = FULL,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Shapes as `attention_reference`. Real queries get the same result; a padded query may
    differ (it is never read)."""
    length = q.shape[2]
    if pattern.is_full:
        allowed = key_valid[:, None, None, :]  # (B, 1, 1, L)
        if pattern.causal:
            causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
            allowed = allowed & causal
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)

    n_global = min(pattern.n_global, length)
    positions = torch.arange(length, device=q.device)
    # Global keys join every block's key set; they leave the local set so no pair counts twice.
    local_valid = key_valid & (positions >= n_global) if n_global else key_valid
    if pattern.window is not None:
        blocked = window_blocks_of(q, k, v, local_valid, pattern.window, pattern.causal)
    else:
        rule = (lambda q_pos, k_pos: k_pos <= q_pos) if pattern.causal else None
        before = 1 if pattern.look_backward else 0
        blocked = neighbour_blocks_of(q, k, v, local_valid, pattern.block_size, before, 0, rule)
    if n_global:
        n_blocks, width = blocked.q.shape[2:4]
        global_k, global_v = (
            t[:, :, None, :n_global].expand(-1, -1, n_blocks, -1, -1) for t in (k, v)
        )
        to_global = key_valid[:, None, None, None, :n_global]  # (B, 1, 1, 1, G)
        if pattern.causal:
            q_pos = torch.arange(n_blocks * width, device=q.device).view(n_blocks, width, 1)
            to_global = to_global & (positions[:n_global] <= q_pos)  # (B, 1, N, W, G)
        blocked = blocked.with_keys(global_k, global_v, to_global)
    return blocked_sdpa(blocked, key_valid, dropout)
