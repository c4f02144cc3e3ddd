"""Softmax attention with an explicit (L, L) score matrix: the oracle of every other form of the
attention op. Scores and softmax in float32 at least; a query with no allowed key gets zeros.

Axis letters: B batch, H heads, L length, E head width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.ops.attention.pattern import FULL, AttentionPattern


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_valid: torch.Tensor,
    pattern: AttentionPattern = FULL,
    dropout: float = 0.0,
) -> torch.Tensor:
    """q, k: (B, H, L, E), v: (B, H, L, Ev), key_valid: (B, L) bool (False = padding) -> (B, H,
    L, Ev) = softmax(q k^T / sqrt(E) over the pattern's allowed real keys) v."""
    allowed = pattern.allowed(q.shape[2], q.device) & key_valid[:, None, None, :]
    work = torch.promote_types(q.dtype, torch.float32)  # bf16 / fp16 inputs are upcast
    q, k = q.to(work), k.to(work)
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows with no allowed key: zeros
    if dropout > 0.0:
        weights = F.dropout(weights, dropout)
    return torch.matmul(weights, v.to(work)).to(v.dtype)
