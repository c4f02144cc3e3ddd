"""Softmax attention over a pattern (full, sliding window, blocks, plus global keys; causal or
not) with a key padding mask: the op of `transformer`, `sliding_window`, `local_attention` and
`longformer`.

Backends: `reference` (explicit (L, L) scores, the oracle), `chunked` (torch's fused SDPA; for
windows and blocks one fused call over query blocks that gather only their keys).
"""

from __future__ import annotations

import torch

from models.ops.attention.pattern import FULL, AttentionPattern
from models.ops.dispatch import Backend, KernelOp

OP = KernelOp(
    "attention",
    [
        Backend("reference", "models.ops.attention.reference:attention_reference"),
        Backend("chunked", "models.ops.attention.chunked:attention_chunked"),
    ],
    auto={"cuda": ("chunked",), "cpu": ("chunked",)},
)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_valid: torch.Tensor,
    pattern: AttentionPattern = FULL,
    dropout: float = 0.0,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """q, k: (B, H, L, E), v: (B, H, L, Ev), key_valid: (B, L) bool (False = padding).
    pattern: which keys each query may see.  dropout: on the attention probabilities (pass 0 in
    evaluation).  backend: None = the run's kernel settings.  Returns (B, H, L, Ev); a query
    with no allowed key (only ever a padded one) has unspecified output."""
    return OP(q, k, v, key_valid, pattern, dropout, backend=backend)


__all__ = ["AttentionPattern", "attention"]
