"""Attention masks as additive biases: 0 where a pair is allowed, -inf where not.

Why not scores.masked_fill(~allowed, -inf): out of place it copies the whole (B, H, L, L) score
tensor and fills it, and its backward copies and fills the gradient again; `scores + bias`
writes once and passes the gradient through untouched (the bias needs none). It is also what
LRA's Flax attention does (a bias of 0 / -1e10 added to the logits).
"""

from __future__ import annotations

import torch


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """allowed: bool, any shape (e.g. (B, 1, 1, L) keys, (B, 1, L, L) with a causal part) ->
    float of that shape and `dtype`: 0 where allowed, -inf elsewhere. Broadcast-add it to the
    scores."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill_(~allowed, float("-inf"))
